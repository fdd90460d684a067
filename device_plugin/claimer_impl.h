// The fabric-facing half of fabric-device-plugin (issue 15): FabricClaimer
// claims, frees and recovers the devices of one node's plugin against the
// manager's RPCs, and owns their CDI spec files (device_plugin/cdi_spec.h).
// NewFabricClaimer wraps it as the Claimer the resource servers call
// (device_plugin/claimer.h states the contract; this file adds what that
// leaves to the implementation).
//
// Claims:
//   - a VF offer:     CreateAttachment{vf = offer.vf.vf, borrower = node,
//                     owner}; its environment is the shadow device the
//                     borrower's agent serves (Attachment.shadow_device,
//                     "shadow-<id>": the API exposes no host PCI address
//                     for it), as PCIDEVICE_<RESOURCE> in the response and
//                     FABRIC_VF_<DEVICE> in the device's CDI spec;
//   - a memory offer: CreateAllocation{borrower = node, target = lender,
//                     size = offer.memory.size, owner, labels naming the
//                     device and epoch}; its environment is
//                     FABRIC_MEMORY_<DEVICE>=0x<borrower_addr hex>:<size>.
//   <RESOURCE> and <DEVICE> are upper-cased, with '.', '/' and '-' as '_'.
//   The request_id of a claim is "dp/<node>/<device id>/<epoch>" (hashed
//   when over the manager's 128 characters), so that a kubelet retry never
//   claims twice; once this plugin has deleted a claim (a failed call's
//   rollback, a Release), the device's next claim under the same epoch adds
//   "/<n>", n the claims deleted so far, since the manager answers a
//   request id it has seen with the claim it made then, deleted or not. A
//   device already held under the same epoch (or the claim its offer names)
//   is not claimed again.
//   READY is awaited on the manager's Watch stream
//   (FabricClient::AwaitAttachment / AwaitAllocation), all claims of one call
//   in parallel. A claim that ends DETACHED/RELEASED, or is not READY by
//   ready_timeout, fails the call: DEADLINE_EXCEEDED naming the claim and its
//   state, and what this call claimed is released.
//
// Owner: every claim is made under `owner`, and Recover lists by it. Under
// mutual TLS the manager makes the caller's identity the owner, so `owner`
// must be the plugin certificate's identity ("node/n1", "user/dp-n1"); in
// plaintext any name (DefaultOwner gives "node/<node>").
//
// Recover maps a claim back to its device id from the allocation's labels,
// or, for an attachment (which has no labels), from the CDI spec that names
// it; an attachment of ours with no spec gets the id
// "vf-<lender>-<address with ':' as '-'>" (the offers' documented form;
// longer ids, which the manager shortens with a hash, cannot be rebuilt).
//
// Thread-safe: claims, releases and recoveries run one at a time; HeldDevices
// may be called at any time.
#ifndef FABRIC_DEVICE_PLUGIN_CLAIMER_IMPL_H_
#define FABRIC_DEVICE_PLUGIN_CLAIMER_IMPL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "client/fabric_client.h"
#include "device_plugin/cdi_spec.h"
#include "device_plugin/claimer.h"
#include "device_plugin/device.h"

namespace fabric::device_plugin {

// "node/<node>".
std::string DefaultOwner(absl::string_view node);
// "PCIEFABRIC_DEV_VF_8086_154C" for "pciefabric.dev/vf-8086-154c".
std::string EnvName(absl::string_view name);
// The claim request id of (node, device id, epoch), and of the `retired`
// claims this plugin made and deleted before under that epoch; at most 128
// characters.
std::string ClaimRequestId(absl::string_view node, absl::string_view device_id,
                           int64_t epoch, int retired = 0);

// What one Claim gives the container: the fields of its
// ContainerAllocateResponse.
struct ClaimedDevices {
  // "pciefabric.dev/<class>=<device id>", in the order of the devices.
  std::vector<std::string> cdi_devices;
  std::map<std::string, std::string> envs;
};

// One held device.
struct HeldDevice {
  std::string id;
  std::string device_class;  // kVfClass or kMemoryClass
  std::string claim;         // attachments/... or allocations/...
  int64_t epoch = 0;
  // The env of its CDI spec (and, for memory, of the response).
  std::vector<std::pair<std::string, std::string>> env;
  // A VF's shadow device.
  std::string shadow_device;
};

class FabricClaimer {
 public:
  // `client` is shared with the rest of the plugin.
  FabricClaimer(ClaimerOptions options,
                std::shared_ptr<client::FabricClient> client,
                std::string owner);

  // Claimer::Claim, returning the response's fields. INVALID_ARGUMENT for a
  // device that is neither a VF nor a memory offer (naming it); the
  // manager's error for a refused claim; DEADLINE_EXCEEDED as above;
  // the CDI write's error.
  absl::StatusOr<ClaimedDevices> Claim(absl::string_view resource,
                                       absl::Span<const Device> devices);
  // Claimer::Release.
  absl::Status Release(absl::string_view device_id);
  // Claimer::Recover.
  absl::Status Recover();

  std::vector<HeldDevice> HeldDevices() const;
  std::vector<std::string> HeldDeviceIds() const;

 private:
  // Creates the claim of one device (not awaited).
  absl::StatusOr<HeldDevice> Create(const Device& device)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  // Waits for `held`'s claim to be READY by `deadline`; fills its env.
  absl::Status AwaitReady(HeldDevice& held, absl::Time deadline);
  // Deletes the claim behind `held` (NOT_FOUND is success), and counts it
  // in retired_.
  absl::Status Delete(const HeldDevice& held)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  // How many claims of `device` under its offer's epoch Delete removed.
  int RetiredClaims(const Device& device) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  CdiDevice SpecOf(const HeldDevice& held) const;

  const ClaimerOptions options_;
  const std::shared_ptr<client::FabricClient> client_;
  const std::string owner_;
  // Serializes Claim, Release and Recover.
  absl::Mutex ops_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, HeldDevice, std::less<>> held_ ABSL_GUARDED_BY(mu_);
  // By device id: the claims Delete removed under the device's latest
  // epoch (an older epoch's count is dropped when a newer one is deleted).
  struct Retired {
    int64_t epoch = 0;
    int count = 0;
  };
  std::map<std::string, Retired, std::less<>> retired_
      ABSL_GUARDED_BY(ops_mu_);
};

// The Claimer of the plugin. Defined where the kubelet's v1beta1 API is
// built (claimer_adapter.cc).
std::unique_ptr<Claimer> NewFabricClaimer(
    ClaimerOptions options, std::shared_ptr<client::FabricClient> client,
    std::string owner);

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_CLAIMER_IMPL_H_
