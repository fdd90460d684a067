#include "agent/vf/interrupt_router.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace fabric::agent::vf {
namespace {

constexpr int kMaxMsixVectors = 2048;

}  // namespace

InterruptRouter::InterruptRouter(Sink sink) : sink_(std::move(sink)) {}

absl::Status InterruptRouter::AddVm(const std::string& vm) {
  if (vm.empty()) return absl::InvalidArgumentError("vm name is empty");
  absl::MutexLock lock(&mu_);
  if (!vms_.try_emplace(vm).second) {
    return absl::AlreadyExistsError(absl::StrFormat("vm %s exists", vm));
  }
  return absl::OkStatus();
}

absl::Status InterruptRouter::RemoveVm(const std::string& vm) {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    return absl::NotFoundError(absl::StrFormat("no vm %s", vm));
  }
  for (const Queued& q : it->second.queue) {
    Unqueue(q);
    ++q.device->counters.dropped_by_reason["vm removed"];
  }
  vms_.erase(it);
  for (auto& [name, d] : devices_) {
    if (d->attached && d->vm == vm) d->vm_removed = true;
  }
  return absl::OkStatus();
}

absl::Status InterruptRouter::SetVmRunning(const std::string& vm, int core) {
  if (core < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("core %d is negative", core));
  }
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    return absl::NotFoundError(absl::StrFormat("no vm %s", vm));
  }
  VmState& state = it->second;
  state.running = true;
  state.core = core;
  while (!state.queue.empty()) {
    const Queued q = state.queue.front();
    state.queue.pop_front();
    Unqueue(q);
    ++q.device->counters.injected_at_entry;
    if (sink_) sink_(Injection{q.device->name, q.vector, vm, core, true});
  }
  return absl::OkStatus();
}

absl::Status InterruptRouter::SetVmStopped(const std::string& vm) {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(vm);
  if (it == vms_.end()) {
    return absl::NotFoundError(absl::StrFormat("no vm %s", vm));
  }
  it->second.running = false;
  it->second.core = -1;
  return absl::OkStatus();
}

absl::Status InterruptRouter::AttachDevice(const std::string& device,
                                           const std::string& vm, Policy policy,
                                           int vectors) {
  if (device.empty()) {
    return absl::InvalidArgumentError("device name is empty");
  }
  if (vectors < 1 || vectors > kMaxMsixVectors) {
    return absl::InvalidArgumentError(
        absl::StrFormat("device %s: %d vectors; MSI-X allows 1-%d", device,
                        vectors, kMaxMsixVectors));
  }
  if (vm.empty() && policy == Policy::kHypervisor) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device %s is host-owned; there is no hypervisor path", device));
  }
  absl::MutexLock lock(&mu_);
  if (!vm.empty() && !vms_.contains(vm)) {
    return absl::NotFoundError(absl::StrFormat("no vm %s", vm));
  }
  std::unique_ptr<DeviceState>& slot = devices_[device];
  if (slot == nullptr) {
    slot = std::make_unique<DeviceState>();
    slot->name = device;
  } else if (slot->attached) {
    return absl::AlreadyExistsError(
        absl::StrFormat("device %s is attached to vm '%s'", device, slot->vm));
  }
  DeviceState& d = *slot;
  // Entries a previous attachment left queued belong to its generation.
  ++d.generation;
  d.queued.assign(vectors, false);
  d.masked.assign(vectors, false);
  d.vm = vm;
  d.policy = policy;
  d.attached = true;
  d.vm_removed = false;
  return absl::OkStatus();
}

absl::Status InterruptRouter::DetachDevice(const std::string& device) {
  absl::MutexLock lock(&mu_);
  auto it = devices_.find(device);
  if (it == devices_.end() || !it->second->attached) {
    return absl::NotFoundError(
        absl::StrFormat("device %s is not attached", device));
  }
  it->second->attached = false;
  return absl::OkStatus();
}

absl::Status InterruptRouter::MaskVector(const std::string& device, int vector,
                                         bool masked) {
  absl::MutexLock lock(&mu_);
  auto it = devices_.find(device);
  if (it == devices_.end() || !it->second->attached) {
    return absl::NotFoundError(
        absl::StrFormat("device %s is not attached", device));
  }
  DeviceState& d = *it->second;
  if (vector < 0 || vector >= static_cast<int>(d.masked.size())) {
    return absl::OutOfRangeError(
        absl::StrFormat("device %s has %d vectors; no vector %d", device,
                        d.masked.size(), vector));
  }
  d.masked[vector] = masked;
  return absl::OkStatus();
}

void InterruptRouter::Unqueue(const Queued& q) {
  if (q.generation == q.device->generation) q.device->queued[q.vector] = false;
}

DeliveryResult InterruptRouter::Drop(DeviceState* d, const char* reason) {
  ++d->counters.dropped_by_reason[reason];
  return DeliveryResult{Delivery::kDropped, reason};
}

DeliveryResult InterruptRouter::Deliver(const std::string& device, int vector) {
  absl::MutexLock lock(&mu_);
  auto it = devices_.find(device);
  if (it == devices_.end()) {
    ++dropped_unknown_device_;
    return DeliveryResult{Delivery::kDropped, "unknown device"};
  }
  DeviceState* d = it->second.get();
  if (!d->attached) return Drop(d, "device detached");
  if (vector < 0 || vector >= static_cast<int>(d->masked.size())) {
    return Drop(d, "vector out of range");
  }
  if (d->masked[vector]) return Drop(d, "vector masked");
  DeviceCounters& c = d->counters;
  if (d->vm.empty()) {
    ++c.delivered_direct;
    if (sink_) sink_(Injection{d->name, vector, "", -1, false});
    return DeliveryResult{Delivery::kDirect, "host"};
  }
  if (d->vm_removed) return Drop(d, "vm removed");
  VmState& vm = vms_.find(d->vm)->second;  // present unless vm_removed
  if (vm.running && d->policy != Policy::kHypervisor) {
    ++c.delivered_direct;
    ++c.exits_avoided;
    if (sink_) sink_(Injection{d->name, vector, d->vm, vm.core, false});
    return DeliveryResult{Delivery::kDirect, "posted"};
  }
  ++c.delivered_via_hypervisor;
  ++c.exits;
  if (vm.running) {  // kHypervisor: exit, inject, re-enter
    ++c.injected_at_entry;
    if (sink_) sink_(Injection{d->name, vector, d->vm, vm.core, true});
    return DeliveryResult{Delivery::kViaHypervisor, "exit"};
  }
  if (d->queued[vector]) {
    ++c.coalesced;
  } else {
    d->queued[vector] = true;
    vm.queue.push_back(Queued{d, vector, d->generation});
  }
  return DeliveryResult{Delivery::kViaHypervisor, "queued"};
}

std::vector<int> InterruptRouter::Pending(const std::string& vm) const {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  auto it = vms_.find(vm);
  if (it == vms_.end()) return out;
  for (const Queued& q : it->second.queue) out.push_back(q.vector);
  return out;
}

absl::StatusOr<DeviceCounters> InterruptRouter::counters(
    const std::string& device) const {
  absl::MutexLock lock(&mu_);
  auto it = devices_.find(device);
  if (it == devices_.end()) {
    return absl::NotFoundError(absl::StrFormat("no device %s", device));
  }
  return it->second->counters;
}

uint64_t InterruptRouter::dropped_unknown_device() const {
  absl::MutexLock lock(&mu_);
  return dropped_unknown_device_;
}

}  // namespace fabric::agent::vf
