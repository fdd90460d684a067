// Who serves this fabric: the managers ListManagers reports (issue 14,
// `fabricctl get managers`), each with its role, its store and its lease.
//
// The RPC edge asks a ManagersSource. A lone manager on SQLite is its own
// leader (SingleManagerSource, what GrpcServer uses unless
// ServerOptions::managers names another); managers sharing an etcd store
// list one another from their records in etcd (ha::ManagerRegistry,
// server/ha/manager_registry.h).
#ifndef FABRIC_SERVER_SERVICE_MANAGERS_SOURCE_H_
#define FABRIC_SERVER_SERVICE_MANAGERS_SOURCE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric_service.pb.h"

namespace fabric::service {

enum class ManagerRole { kLeader, kStandby };

// One manager as a ManagersSource sees it.
struct ManagerStatus {
  std::string address;  // HOST:PORT, as clients dial it
  ManagerRole role = ManagerRole::kLeader;
  std::string store;     // the store URL without credentials
  int64_t lease_id = 0;  // 0: no lease
  absl::Duration lease_ttl = absl::ZeroDuration();  // what the lease has left
  absl::Time start_time = absl::InfinitePast();     // InfinitePast: unknown
  std::string version;                              // "": unknown
};

// Lists the managers. Implementations are thread-safe: ListManagers is
// called from gRPC's handler threads.
class ManagersSource {
 public:
  virtual ~ManagersSource() = default;

  // Every manager, in address order. Errors: UNAVAILABLE when the store
  // that holds the managers' records cannot be read (the message names it).
  virtual absl::StatusOr<std::vector<ManagerStatus>> ListManagers() = 0;
};

// A lone manager: itself, LEADER, no lease. Thread-safe.
class SingleManagerSource final : public ManagersSource {
 public:
  explicit SingleManagerSource(ManagerStatus self) : self_(std::move(self)) {}

  // The address once the server knows it (a port 0 bound).
  void set_address(std::string address) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<std::vector<ManagerStatus>> ListManagers() override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  ManagerStatus self_ ABSL_GUARDED_BY(mu_);
};

// This build's version (the CMake project's), for ManagerStatus::version.
absl::string_view BuildVersion();

// The API's view of `status`.
v1::Manager ManagerToProto(const ManagerStatus& status);

// ListManagers's answer from `source`; UNIMPLEMENTED when it is null.
absl::StatusOr<v1::ListManagersResponse> ListManagersFrom(
    ManagersSource* source);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGERS_SOURCE_H_
