#include "server/service/managers_source.h"

#include <utility>

#include "absl/status/status.h"
#include "server/service/records.h"

#ifndef FABRIC_VERSION
#define FABRIC_VERSION ""
#endif

namespace fabric::service {

void SingleManagerSource::set_address(std::string address) {
  absl::MutexLock l(&mu_);
  self_.address = std::move(address);
}

absl::StatusOr<std::vector<ManagerStatus>> SingleManagerSource::ListManagers() {
  absl::MutexLock l(&mu_);
  ManagerStatus self = self_;
  self.role = ManagerRole::kLeader;
  return std::vector<ManagerStatus>{std::move(self)};
}

absl::string_view BuildVersion() { return FABRIC_VERSION; }

v1::Manager ManagerToProto(const ManagerStatus& status) {
  v1::Manager m;
  m.set_address(status.address);
  m.set_role(status.role == ManagerRole::kLeader ? v1::Manager::LEADER
                                                 : v1::Manager::STANDBY);
  m.set_store(status.store);
  m.set_lease_id(status.lease_id);
  m.set_lease_ttl_seconds(absl::ToInt64Seconds(status.lease_ttl));
  if (status.start_time != absl::InfinitePast()) {
    *m.mutable_start_time() = ToProtoTime(status.start_time);
  }
  m.set_version(status.version);
  return m;
}

absl::StatusOr<v1::ListManagersResponse> ListManagersFrom(
    ManagersSource* source) {
  if (source == nullptr) {
    return absl::UnimplementedError(
        "ListManagers: this server has no list of managers");
  }
  absl::StatusOr<std::vector<ManagerStatus>> managers = source->ListManagers();
  if (!managers.ok()) return managers.status();
  v1::ListManagersResponse out;
  for (const ManagerStatus& m : *managers) {
    *out.add_managers() = ManagerToProto(m);
  }
  return out;
}

}  // namespace fabric::service
