// DeviceTable: the node's devices as the latest offer set lists them, by
// kubelet resource (issue 15). The offer feed (offer_feed.h), or a test,
// writes whole offer sets into it; the resource servers read it and wait
// for it to change.
//
//   DeviceTable table;
//   table.Apply(offer_set);                       // from WatchOffers
//   std::vector<Device> vfs = table.Devices("pciefabric.dev/vf-8086-154c");
//   uint64_t seen = table.version();
//   table.AwaitChange(seen, absl::Now() + absl::Seconds(1));
//
// Thread-safe.
#ifndef FABRIC_DEVICE_PLUGIN_DEVICE_TABLE_H_
#define FABRIC_DEVICE_PLUGIN_DEVICE_TABLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "device_plugin/device.h"
#include "fabric/v1/offers.pb.h"

namespace fabric::device_plugin {

class DeviceTable {
 public:
  // Replaces every device with the offers of `set` (an OfferSet replaces
  // the one before it). Offers without an id or a device kind are skipped.
  // version() increases when any device was added, removed or changed.
  void Apply(const fabric::v1::OfferSet& set) ABSL_LOCKS_EXCLUDED(mu_);

  // Increases with every change Apply made; 0 before the first one.
  uint64_t version() const ABSL_LOCKS_EXCLUDED(mu_);

  // Every resource that has had a device since the table was made, sorted.
  // A resource whose devices are all gone stays listed (with none): its
  // kubelet registration stays, showing zero devices.
  std::vector<std::string> Resources() const ABSL_LOCKS_EXCLUDED(mu_);

  // The devices of `resource` now, by id.
  std::vector<Device> Devices(absl::string_view resource) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Device `id` of `resource`: NOT_FOUND naming both when it is not one now.
  absl::StatusOr<Device> Find(absl::string_view resource,
                              absl::string_view id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until version() > `seen`, or until `deadline`; returns version().
  uint64_t AwaitChange(uint64_t seen, absl::Time deadline) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // resource -> id -> device.
  std::map<std::string, std::map<std::string, Device>, std::less<>> devices_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_DEVICE_TABLE_H_
