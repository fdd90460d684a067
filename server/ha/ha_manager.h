// One manager process among several on one etcd prefix (issue 14): it
// campaigns (LeaderElection), serves as a standby (StandbyServer) while
// another leads, and on taking over serves the real manager on the same
// address:
//
//   elected:  the store is fenced with the election key (EtcdStore::SetFence),
//             the state is loaded (FabricManager::Open: recovery, which
//             writes the next epoch through the fence, so generations go on
//             from the last leader's), the manager's GrpcServer binds
//             the address beside the standby server (both allow
//             SO_REUSEPORT, and Start checked that nobody else holds the
//             port), and only then the standby server stops: the port is
//             never closed, so clients are never refused a connection by
//             the switch.
//   degraded: etcd is unreachable or without quorum (the lease could not be
//             renewed for a TTL, or a write failed UNAVAILABLE): the leader
//             goes on serving reads of its memory, marked stale, and refuses
//             mutations (StoreGate, store_gate.h); it continues once etcd
//             answers with its key still there, or steps down (as lost)
//             when a write's outcome is unknown.
//   lost:     (the election noticed, or a fenced write failed) the real
//             services stop at once and Wait() returns ABORTED: the process
//             exits, and systemd (Restart=always) or the operator starts it
//             again, as a standby. Simplest safe behaviour: nothing of the
//             deposed leader's memory is reused.
//
// Thread-safe. Election events are handled on a thread of the HaManager's
// own, in order, so the election's threads never wait for a state load.
#ifndef FABRIC_SERVER_HA_HA_MANAGER_H_
#define FABRIC_SERVER_HA_HA_MANAGER_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/ha/leader_election.h"
#include "server/ha/manager_registry.h"
#include "server/ha/standby_server.h"
#include "server/ha/store_gate.h"
#include "server/service/manager.h"
#include "server/service/manager_options.h"
#include "server/service/server.h"
#include "server/store/etcd/etcd_store.h"

namespace fabric::ha {

struct HaOptions {
  // Where this manager listens (HOST:PORT; port 0 picks one, for tests),
  // as a standby and then as the leader.
  std::string listen;
  // The election's client and prefix, and TTL; its address is this
  // manager's bound listen address.
  ElectionOptions election;
  service::ManagerOptions manager;
  service::ServerOptions server;
  Clock* clock = Clock::Real();
};

class HaManager {
 public:
  enum class Role { kStandby, kLeader, kStopped };

  // Listens as a standby and starts campaigning. `store` (the EtcdStore on
  // options.election's prefix) is not owned and must outlive this.
  // Errors: those of ProbeListen (common/listen_probe.h: ALREADY_EXISTS
  // when another socket holds the port), StandbyServer::Start and
  // LeaderElection::Start.
  static absl::StatusOr<std::unique_ptr<HaManager>> Start(
      store::EtcdStore* store, HaOptions options);
  ~HaManager();  // Shutdown()

  HaManager(const HaManager&) = delete;
  HaManager& operator=(const HaManager&) = delete;

  // "HOST:PORT" as bound: what the election advertises.
  const std::string& address() const { return address_; }
  Role role() const ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until Shutdown() (OK) or until this manager stopped on its own:
  // ABORTED when it lost the leadership it held, or the error that kept it
  // from taking over (loading the state, listening).
  absl::Status Wait() ABSL_LOCKS_EXCLUDED(mu_);

  // Resigns (when leading), stops serving and every thread. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // The in-process channel of whichever server this manager runs now: the
  // leader's GrpcServer or the StandbyServer (which names the leader);
  // null once stopped. For the REST gateway (server/rest).
  std::shared_ptr<grpc::Channel> InProcessChannel() const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The leading manager's stats and the requests its server shed
  // (metrics); nullopt / 0 while this manager does not lead.
  std::optional<service::ManagerStats> Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t ShedRequests() const ABSL_LOCKS_EXCLUDED(mu_);

  // Tests only.
  LeaderElection* election() { return election_.get(); }
  service::FabricManager* manager() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Event {
    enum Kind { kElected, kLost, kStop } kind;
    store::Fence fence;  // kElected
  };

  HaManager(store::EtcdStore* store, HaOptions options)
      : store_(store), options_(std::move(options)) {}

  void Post(Event event) ABSL_LOCKS_EXCLUDED(mu_);
  void Loop();
  // Takes over with `fence`; the error that prevented it.
  absl::Status TakeOver(const store::Fence& fence);
  // Stops the real services (the leader's) or the standby's, then done.
  void Stop(absl::Status why) ABSL_LOCKS_EXCLUDED(mu_);

  store::EtcdStore* const store_;
  const HaOptions options_;
  // The leader's manager writes through it (degraded mode); reset last.
  std::unique_ptr<StoreGate> gate_;
  std::string address_;
  std::unique_ptr<LeaderElection> election_;
  // This manager's record for ListManagers (fabricctl get managers), on the
  // election's lease; destroyed before the election.
  std::unique_ptr<ManagerRegistry> registry_;

  mutable absl::Mutex mu_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  Role role_ ABSL_GUARDED_BY(mu_) = Role::kStandby;
  std::optional<absl::Status> done_ ABSL_GUARDED_BY(mu_);
  // Created and destroyed on the loop thread (and in Shutdown after it
  // ended); guarded for the accessors.
  std::unique_ptr<StandbyServer> standby_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<service::FabricManager> manager_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<service::GrpcServer> server_ ABSL_GUARDED_BY(mu_);
  std::thread loop_;
  // The serving manager and server for Stats and ShedRequests, which must
  // not take mu_ (a store write under the manager's lock may call Post,
  // which takes mu_): set after a takeover, cleared before Stop destroys
  // them. Taken with no other lock held, and only the manager's inside.
  mutable absl::Mutex serving_mu_;
  service::FabricManager* serving_manager_ ABSL_GUARDED_BY(serving_mu_) =
      nullptr;
  service::GrpcServer* serving_server_ ABSL_GUARDED_BY(serving_mu_) = nullptr;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace fabric::ha

#endif  // FABRIC_SERVER_HA_HA_MANAGER_H_
