// Which managers serve one etcd prefix, for ListManagers (`fabricctl get
// managers`, issue 14 §3).
//
// Each manager records itself under PREFIX/managers/<address> (the value a
// fabric.internal.ManagerRecord: address, store URL, start time, version),
// put with its election lease (LeaderElection::lease()), so a dead
// manager's record goes when its lease expires. Join keeps the record on
// the current lease: after a lost lease the election grants a new one, and
// the registry writes the record again on it.
//
// ListManagers reads, in one etcd transaction (one revision), every record
// and the election's leader key (the oldest key under PREFIX/leader/, as
// etcd's Election.Leader picks it); the record whose address is the
// leader's value is LEADER, the others STANDBY, each with its lease id and
// what the lease has left (Lease.LeaseTimeToLive).
//
// Plugging it into the server (the HA orchestrator):
//
//   ASSIGN_OR_RETURN(auto registry, ManagerRegistry::Open({client, prefix}));
//   RETURN_IF_ERROR(registry->Join(
//       {.address = advertised, .store = store_url, .start_time = absl::Now(),
//        .version = std::string(service::BuildVersion())},
//       [election = election.get()] { return election->lease(); }));
//   server_options.managers = registry.get();  // outlives the server
//
// Thread-safe. Destroy it before the election whose lease it reads.
#ifndef FABRIC_SERVER_HA_MANAGER_REGISTRY_H_
#define FABRIC_SERVER_HA_MANAGER_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/service/managers_source.h"
#include "server/store/etcd/etcd_client.h"

namespace fabric::ha {

struct RegistryOptions {
  store::EtcdClientOptions client;
  std::string prefix;  // as store::EtcdUrl::prefix
  // How often a joined registry checks that its record is on the current
  // lease (and retries a put that failed).
  absl::Duration refresh = absl::Milliseconds(200);
};

// What a manager records about itself (role and lease are etcd's).
struct ManagerSelf {
  std::string address;  // HOST:PORT, as clients dial it; the record's key
  std::string store;    // the store URL without credentials
  absl::Time start_time = absl::InfinitePast();
  std::string version;
};

class ManagerRegistry final : public service::ManagersSource {
 public:
  // Dials etcd (nothing is read or written yet). Errors: those of
  // store::DialEtcd.
  static absl::StatusOr<std::unique_ptr<ManagerRegistry>> Open(
      const RegistryOptions& options);

  // Stops keeping the record and deletes it (best effort; otherwise it
  // goes with its lease).
  ~ManagerRegistry() override;
  ManagerRegistry(const ManagerRegistry&) = delete;
  ManagerRegistry& operator=(const ManagerRegistry&) = delete;

  // Records `self` on the lease `lease()` returns, and keeps it on the
  // lease it returns later. `lease` is called from the registry's thread
  // and must be thread-safe. Returns once the first record is written.
  // Errors: INVALID_ARGUMENT for an empty address or one with '/', or a
  // lease of 0; FAILED_PRECONDITION when already joined; etcd's error
  // (UNAVAILABLE, DEADLINE_EXCEEDED; NOT_FOUND for an expired lease) when the
  // first put fails.
  absl::Status Join(const ManagerSelf& self, std::function<int64_t()> lease);

  // Every record, in address order, with its role and lease (see above).
  // Errors: etcd's (UNAVAILABLE, DEADLINE_EXCEEDED), prefixed by what failed.
  absl::StatusOr<std::vector<service::ManagerStatus>> ListManagers() override;

  // PREFIX/managers/ (every record's key starts with it).
  const std::string& records_prefix() const { return records_; }

 private:
  explicit ManagerRegistry(const RegistryOptions& options,
                           std::shared_ptr<grpc::Channel> channel);

  absl::Status Put(int64_t lease) ABSL_LOCKS_EXCLUDED(mu_);
  void KeepLoop();

  const RegistryOptions options_;
  const std::string records_;  // PREFIX/managers/
  const std::string leaders_;  // PREFIX/leader/
  std::unique_ptr<etcdserverpb::KV::StubInterface> kv_;
  std::unique_ptr<etcdserverpb::Lease::StubInterface> lease_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string self_key_ ABSL_GUARDED_BY(mu_);  // "" until joined
  std::string self_value_ ABSL_GUARDED_BY(mu_);
  std::function<int64_t()> lease_fn_ ABSL_GUARDED_BY(mu_);
  int64_t recorded_lease_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread keeper_;
};

}  // namespace fabric::ha

#endif  // FABRIC_SERVER_HA_MANAGER_REGISTRY_H_
