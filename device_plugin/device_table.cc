#include "device_plugin/device_table.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace fabric::device_plugin {

void DeviceTable::Apply(const fabric::v1::OfferSet& set) {
  std::map<std::string, std::map<std::string, Device>, std::less<>> next;
  for (const fabric::v1::Offer& offer : set.offers()) {
    std::string resource = ResourceNameFor(offer);
    if (offer.id().empty() || resource.empty()) continue;
    next[resource][offer.id()] = Device{offer.id(), resource, offer};
  }
  absl::MutexLock l(&mu_);
  // Resources seen before stay listed, even with no devices.
  for (const auto& [resource, unused] : devices_) next[resource];
  bool changed = next.size() != devices_.size();
  for (auto it = next.begin(), old = devices_.begin();
       !changed && it != next.end(); ++it, ++old) {
    changed = it->first != old->first ||
              it->second.size() != old->second.size();
    for (auto d = it->second.begin(), o = old->second.begin();
         !changed && d != it->second.end(); ++d, ++o) {
      changed = d->first != o->first ||
                !google::protobuf::util::MessageDifferencer::Equals(
                    d->second.offer, o->second.offer);
    }
  }
  if (!changed) return;
  devices_ = std::move(next);
  ++version_;
}

uint64_t DeviceTable::version() const {
  absl::MutexLock l(&mu_);
  return version_;
}

std::vector<std::string> DeviceTable::Resources() const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  for (const auto& [resource, unused] : devices_) out.push_back(resource);
  return out;
}

std::vector<Device> DeviceTable::Devices(absl::string_view resource) const {
  absl::MutexLock l(&mu_);
  std::vector<Device> out;
  auto it = devices_.find(resource);
  if (it == devices_.end()) return out;
  for (const auto& [id, device] : it->second) out.push_back(device);
  return out;
}

absl::StatusOr<Device> DeviceTable::Find(absl::string_view resource,
                                         absl::string_view id) const {
  absl::MutexLock l(&mu_);
  auto it = devices_.find(resource);
  if (it != devices_.end()) {
    auto d = it->second.find(std::string(id));
    if (d != it->second.end()) return d->second;
  }
  return absl::NotFoundError(absl::StrCat("\"", id,
                                          "\" is not a device of resource ",
                                          resource, " now"));
}

uint64_t DeviceTable::AwaitChange(uint64_t seen, absl::Time deadline) const {
  absl::MutexLock l(&mu_);
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return version_ > seen;
  };
  mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  return version_;
}

}  // namespace fabric::device_plugin
