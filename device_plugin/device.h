// The device plugin's view of one device: an offer from the manager
// (proto/fabric/v1/offers.proto) under the kubelet resource it is listed as.
#ifndef FABRIC_DEVICE_PLUGIN_DEVICE_H_
#define FABRIC_DEVICE_PLUGIN_DEVICE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "fabric/v1/offers.pb.h"

namespace fabric::device_plugin {

// The extended-resource domain of every resource the plugin registers.
inline constexpr absl::string_view kResourceDomain = "pciefabric.dev";

// One device as the kubelet sees it. `id` is the offer's id (stable, unique,
// at most 63 characters), `resource` the kubelet resource it is listed under
// (ResourceNameFor(offer)).
struct Device {
  std::string id;
  std::string resource;
  fabric::v1::Offer offer;
};

// The resource an offer is listed under:
//   a VF:     "pciefabric.dev/vf-<vendor>-<device>", 4 lower-case hex digits
//             each, e.g. "pciefabric.dev/vf-8086-154c";
//   memory:   "pciefabric.dev/remote-memory".
std::string ResourceNameFor(const fabric::v1::Offer& offer);

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_DEVICE_H_
