// The borrower host's interrupt path for shadow devices (prior art:
// docs/prior-art.md):
// an interrupt from an I/O-virtualization device bound for a VM is delivered
// directly (a posted interrupt: no VM exit) while that VM runs on a CPU
// core; otherwise it goes to the hypervisor, which queues the matching
// virtual interrupt and injects it when the VM next enters guest mode.
//
//   InterruptRouter router;
//   RETURN_IF_ERROR(router.AddVm("vm1"));
//   RETURN_IF_ERROR(router.AttachDevice("vf0", "vm1", Policy::kAuto, 4));
//   RETURN_IF_ERROR(router.SetVmRunning("vm1", /*core=*/3));
//   DeliveryResult r = router.Deliver("vf0", 2);  // Delivery::kDirect
//
// Deliver() decides, in this order:
//  1. dropped "unknown device": no device of that name was ever attached
//     (counted router-wide, see dropped_unknown_device());
//  2. dropped "device detached";
//  3. dropped "vector out of range": vector < 0 or >= the device's vectors;
//  4. dropped "vector masked": the borrower masked the vector (MaskVector).
//     The message is dropped, not held: the mask is also programmed into the
//     real VF (ConfigVirtualizer forwards MSI-X masks), whose own pending
//     bit keeps anything raised after the mask took effect; a message that
//     still reaches the router was in flight when the guest masked it;
//  5. host-owned device (attached with vm ""): delivered directly to the
//     host, counted in delivered_direct. There is no guest, so neither
//     exits nor exits_avoided are counted;
//  6. dropped "vm removed": the device's VM was removed (RemoveVm);
//  7. the VM is running and the policy is kDirect or kAuto: delivered
//     directly to the core the VM runs on; counts delivered_direct and
//     exits_avoided (the VM exit that direct delivery avoids);
//  8. otherwise via the hypervisor, counting delivered_via_hypervisor and
//     exits:
//     - VM not running (any policy; kDirect falls back here, as the rule's
//       "otherwise" says): queued for the VM and injected, oldest first, at
//       its next SetVmRunning (counted then in injected_at_entry). The
//       queue holds one entry per (device, vector), as a virtual APIC's IRR
//       or a posted-interrupt descriptor holds one bit per vector: a second
//       message for a vector already queued is merged into it (counted in
//       coalesced) and keeps the first one's place;
//     - VM running with kHypervisor: the interrupt forces an exit, the
//       hypervisor injects it and re-enters at once, so it is counted in
//       injected_at_entry immediately and never left pending.
// So for every device: delivered_direct + delivered_via_hypervisor +
// sum(dropped_by_reason) == Deliver() calls that named it, and
// delivered_via_hypervisor == injected_at_entry + coalesced + (its entries
// still queued) + (entries discarded by RemoveVm, which counts them in
// dropped_by_reason["vm removed"] as well).
//
// Interrupts already queued for a VM stay queued when their device is
// detached or masked: the hypervisor has accepted them (a real vAPIC keeps
// its IRR bits too), and they are injected at the next entry.
//
// Thread-safe: one lock guards everything. The optional sink is called with
// that lock held, in delivery order; it must not call into the router.
#ifndef FABRIC_AGENT_VF_INTERRUPT_ROUTER_H_
#define FABRIC_AGENT_VF_INTERRUPT_ROUTER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace fabric::agent::vf {

enum class Policy {
  kDirect,      // direct whenever the VM runs; hypervisor path otherwise
  kHypervisor,  // always through the hypervisor (an exit per interrupt)
  kAuto,        // by the rule: direct iff the VM runs
};

enum class Delivery { kDirect, kViaHypervisor, kDropped };

struct DeliveryResult {
  Delivery delivery = Delivery::kDropped;
  // Dropped: why ("vector masked"). Otherwise how: "posted" (direct to the
  // running VM), "host", "queued" (VM not running), "exit" (kHypervisor on
  // a running VM: exit, inject, re-enter).
  std::string reason;
};

struct DeviceCounters {
  uint64_t delivered_direct = 0;
  uint64_t delivered_via_hypervisor = 0;
  uint64_t exits_avoided = 0;
  uint64_t exits = 0;
  uint64_t injected_at_entry = 0;
  uint64_t coalesced = 0;  // merged into an entry already queued
  std::map<std::string, uint64_t> dropped_by_reason;
};

// One interrupt reaching a guest or the host, for the sink.
struct Injection {
  std::string device;
  int vector = 0;
  std::string vm;         // "" for a host-owned device
  int core = -1;          // the VM's core; -1 for the host
  bool at_entry = false;  // injected by the hypervisor at VM entry
};

class InterruptRouter {
 public:
  using Sink = std::function<void(const Injection&)>;

  // `sink`, when set, sees every interrupt that reaches a guest or the host.
  explicit InterruptRouter(Sink sink = nullptr);

  InterruptRouter(const InterruptRouter&) = delete;
  InterruptRouter& operator=(const InterruptRouter&) = delete;

  // INVALID_ARGUMENT for an empty name; ALREADY_EXISTS.
  absl::Status AddVm(const std::string& vm) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the VM: its queued interrupts are discarded (counted as dropped
  // "vm removed" on their devices) and its devices drop what they get until
  // they are detached and attached elsewhere. NOT_FOUND.
  absl::Status RemoveVm(const std::string& vm) ABSL_LOCKS_EXCLUDED(mu_);
  // The VM entered guest mode on `core` (a later call moves it). Injects
  // everything queued for it, oldest first. NOT_FOUND; INVALID_ARGUMENT for
  // a negative core.
  absl::Status SetVmRunning(const std::string& vm, int core)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The VM left guest mode (exit, deschedule). NOT_FOUND.
  absl::Status SetVmStopped(const std::string& vm) ABSL_LOCKS_EXCLUDED(mu_);

  // Binds `device` (a shadow device) to `vm`, or to the host when `vm` is
  // "". All vectors start unmasked. NOT_FOUND for an unknown VM;
  // INVALID_ARGUMENT for an empty device name, vectors outside 1-2048 (the
  // MSI-X limit) or a host-owned device with kHypervisor; ALREADY_EXISTS
  // when attached. A detached device may be attached again; its counters
  // carry on.
  absl::Status AttachDevice(const std::string& device, const std::string& vm,
                            Policy policy, int vectors)
      ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND unless attached. The counters stay readable.
  absl::Status DetachDevice(const std::string& device) ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND unless attached; OUT_OF_RANGE for a bad vector.
  absl::Status MaskVector(const std::string& device, int vector, bool masked)
      ABSL_LOCKS_EXCLUDED(mu_);

  // An MSI-X message arrived for the shadow device. Never fails; see the
  // file comment for the decision.
  DeliveryResult Deliver(const std::string& device, int vector)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Vectors queued in the hypervisor for `vm`, oldest first (empty for an
  // unknown VM).
  std::vector<int> Pending(const std::string& vm) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND for a device never attached.
  absl::StatusOr<DeviceCounters> counters(const std::string& device) const
      ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t dropped_unknown_device() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct DeviceState {
    std::string name;
    std::string vm;
    Policy policy = Policy::kAuto;
    bool attached = false;
    bool vm_removed = false;
    std::vector<bool> masked;
    // An entry of this attachment for the vector is in the VM queue.
    std::vector<bool> queued;
    uint64_t generation = 0;  // bumped by every AttachDevice
    DeviceCounters counters;
  };
  struct Queued {
    DeviceState* device;  // not owned; devices are never erased
    int vector;
    uint64_t generation;  // the device's attachment that queued it
  };
  struct VmState {
    bool running = false;
    int core = -1;
    std::deque<Queued> queue;
  };

  // Clears the queued bit `q` holds, if its attachment is still current.
  static void Unqueue(const Queued& q);
  DeliveryResult Drop(DeviceState* d, const char* reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Sink sink_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, VmState> vms_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<DeviceState>> devices_
      ABSL_GUARDED_BY(mu_);
  uint64_t dropped_unknown_device_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric::agent::vf

#endif  // FABRIC_AGENT_VF_INTERRUPT_ROUTER_H_
