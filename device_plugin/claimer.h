// Claimer: turns the kubelet's Allocate into claims on the fabric, and frees
// them (issue 15). The device plugin's resource servers call it; it owns the
// CDI spec files.
//
// Contract:
//   - Claim() claims every device of one container request: CreateAttachment
//     (borrower = this node) for a VF offer, CreateAllocation (borrower =
//     this node, target = the lender, size = the chunk) for a memory offer.
//     Each claim's request_id is derived from (node, device id, offer epoch)
//     and the claims of that device the plugin has deleted since, so a
//     kubelet retry of the same request claims nothing twice, and a retry
//     after a rollback claims afresh. It waits
//     until every claim is READY (from the manager's Watch stream, not by
//     polling), then writes each device's CDI spec file atomically into the
//     CDI directory, and only then fills the response:
//       cdi_devices: "pciefabric.dev/<class>=<device id>", class "vf" or
//                    "memory";
//       envs:        for VFs PCIDEVICE_<RESOURCE>=<shadow addresses, comma
//                    separated> (the SR-IOV plugin's convention, RESOURCE
//                    being the resource name upper-cased with [./-] as '_'),
//                    for memory FABRIC_MEMORY_<DEVICE>=<borrower address>:
//                    <size> (see README).
//     On any failure it releases what this call claimed and returns the
//     error (the kubelet then fails the pod's admission cleanly).
//   - Release() frees one held device (DeleteAttachment/DeleteAllocation)
//     and removes its CDI file. Releasing a device not held is OK.
//   - Recover() rebuilds the held set from the manager: the attachments and
//     allocations this node's plugin owns (owner = the plugin's identity),
//     and rewrites their CDI files; stray CDI files of ours are removed.
// Thread-safe.
#ifndef FABRIC_DEVICE_PLUGIN_CLAIMER_H_
#define FABRIC_DEVICE_PLUGIN_CLAIMER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "device_plugin/device.h"

namespace v1beta1 {
class ContainerAllocateResponse;
}  // namespace v1beta1

namespace fabric::device_plugin {

struct ClaimerOptions {
  // This node ("n1").
  std::string node;
  // Where CDI spec files go (--cdi-dir).
  std::string cdi_dir = "/var/run/cdi";
  // How long a claim may take to become READY before Claim() gives up.
  absl::Duration ready_timeout = absl::Seconds(10);
};

class Claimer {
 public:
  virtual ~Claimer() = default;

  // See the file comment. `devices` all belong to `resource`.
  virtual absl::Status Claim(absl::string_view resource,
                             absl::Span<const Device> devices,
                             v1beta1::ContainerAllocateResponse* response) = 0;
  virtual absl::Status Release(absl::string_view device_id) = 0;
  virtual absl::Status Recover() = 0;
  // The devices held now, by id.
  virtual std::vector<std::string> HeldDeviceIds() const = 0;
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_CLAIMER_H_
