// StoreGate: the degraded mode of an HA leader whose etcd is unreachable or
// has lost quorum (issue 14). A Store decorator between the leader's
// FabricManager and its EtcdStore, so every write of the manager passes it.
//
// Healthy, it forwards everything. It becomes DEGRADED when
//   - the election could not renew the lease for a TTL
//     (LeaseUnconfirmed: LeaderElection's on_unreachable), or
//   - a write failed with UNAVAILABLE (etcd timed out, lost its leader, or
//     refused the fence): etcd may still commit such a write later, so this
//     leader's memory (which rolled it back) may lack what etcd holds; the
//     write's outcome is UNKNOWN.
// While degraded, Apply refuses every write at once with UNAVAILABLE
// "etcd has no quorum or is unreachable (<etcd's error>); mutations are
// refused, reads serve the state as of <time>" and writes nothing; reads
// (served from the manager's memory, never from the store) go on, and
// StaleNote() says since when they are stale (StaleReadsInterceptorFactory
// puts it in every response's `fabric-stale` metadata).
//
// Leaving the degraded mode, once etcd answers again:
//   - no write's outcome is unknown: LeaseConfirmed (the election's
//     on_reachable: the lease lived and the key is still ours) makes it
//     healthy; the leader simply continues (its fence was never lost);
//   - a write's outcome is unknown: the gate probes etcd (one linearizable
//     read of a key nobody writes, every probe_interval) and, once it
//     answers, calls on_step_down once and stays degraded: this memory must
//     not be used again; the owner stops (HaManager exits, to reload as a
//     standby).
// A leader whose lease expired meanwhile, or that another manager deposed,
// is told by the election (on_lost) or by its fence; the gate never
// decides leadership.
//
// Thread-safe. on_step_down runs on the gate's own probe thread, and must
// not destroy the gate.
#ifndef FABRIC_SERVER_HA_STORE_GATE_H_
#define FABRIC_SERVER_HA_STORE_GATE_H_

#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/store/store.h"

namespace fabric::ha {

// The metadata key (initial metadata) of every response of a degraded
// leader: "etcd unreachable since <RFC 3339 time>".
inline constexpr char kStaleMetadata[] = "fabric-stale";

// The key the probe reads (NOT_FOUND is an answer).
inline constexpr char kProbeTable[] = "ha_probe";

struct StoreGateOptions {
  Clock* clock = Clock::Real();  // for the "since" times; not owned
  // How often etcd is probed while a write's outcome is unknown.
  absl::Duration probe_interval = absl::Milliseconds(250);
};

class StoreGate final : public store::Store {
 public:
  // `inner` is not owned and must outlive the gate.
  StoreGate(store::Store* inner, StoreGateOptions options,
            std::function<void(const absl::Status& why)> on_step_down);
  ~StoreGate() override;  // stops the probe thread

  StoreGate(const StoreGate&) = delete;
  StoreGate& operator=(const StoreGate&) = delete;

  // Store. Apply: see above; the other calls are forwarded.
  absl::Status Apply(const store::WriteBatch& batch) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) override;
  store::StoreStats stats() const override;
  store::StoreLimits limits() const override;

  // The election could not renew the lease for a TTL; `cause` is etcd's
  // error.
  void LeaseUnconfirmed(const absl::Status& cause) ABSL_LOCKS_EXCLUDED(mu_);
  // The election's keep-alive was answered again and its key is still
  // there.
  void LeaseConfirmed() ABSL_LOCKS_EXCLUDED(mu_);

  bool degraded() const ABSL_LOCKS_EXCLUDED(mu_);
  // While degraded: "etcd unreachable since <time>"; nullopt otherwise.
  std::optional<std::string> StaleNote() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Degraded from now (if not already) because of `cause`.
  void DegradeLocked(const absl::Status& cause)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool DegradedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return lease_unconfirmed_ || outcome_unknown_;
  }
  void ProbeLoop();

  store::Store* const inner_;  // not owned
  const StoreGateOptions options_;
  const std::function<void(const absl::Status&)> on_step_down_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool lease_unconfirmed_ ABSL_GUARDED_BY(mu_) = false;
  // A write failed with UNAVAILABLE: etcd may have committed it.
  bool outcome_unknown_ ABSL_GUARDED_BY(mu_) = false;
  bool stepped_down_ ABSL_GUARDED_BY(mu_) = false;
  // While degraded: since when, and the first cause.
  absl::Time since_ ABSL_GUARDED_BY(mu_);
  absl::Status cause_ ABSL_GUARDED_BY(mu_);
  std::thread probe_;
};

// A server interceptor factory: while `gate` is degraded, every call's
// response carries `fabric-stale: <gate->StaleNote()>` in its initial
// metadata. `gate` is not owned and must outlive the server.
class StaleReadsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit StaleReadsInterceptorFactory(const StoreGate* gate) : gate_(gate) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const StoreGate* const gate_;
};

}  // namespace fabric::ha

#endif  // FABRIC_SERVER_HA_STORE_GATE_H_
