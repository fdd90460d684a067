// The limit checks every BridgeHardware implementation applies the way the
// chip would (bridge_hardware.h): each returns OK or INVALID_ARGUMENT /
// RESOURCE_EXHAUSTED naming the slot, the value and the limit.
#ifndef FABRIC_AGENT_HW_LIMITS_CHECK_H_
#define FABRIC_AGENT_HW_LIMITS_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/hw/bridge_hardware.h"

namespace fabric::agent::hw {

// "window slot 3" / "LUT slot 5".
std::string SlotName(SlotKind kind, int slot);

// INVALID_ARGUMENT unless the limits describe a chip that can exist
// (non-zero alignment and granularity, a LUT entry size when there is a LUT,
// counts >= 0).
absl::Status CheckLimits(const HardwareLimits& limits);

// Host-physical address where `kind` slot `slot` lives, the layout of
// core::SlotAddress. REQUIRES: CheckSlot(limits, kind, slot).ok().
uint64_t SlotLocalBase(const HardwareLimits& limits, uint64_t window_base,
                       SlotKind kind, int slot);

// The slot exists: 0 <= slot < window_count (kLut: < lut_entries).
absl::Status CheckSlot(const HardwareLimits& limits, SlotKind kind, int slot);

// A window the chip accepts at host address `slot_base` (where its slot
// lives): slot exists; direct: size a multiple of size_granularity, within
// [min_window_size, max_window_size], xlat aligned to xlat_align; LUT: size
// exactly lut_entry_size, xlat aligned to it; local_base == slot_base.
absl::Status CheckWindow(const HardwareLimits& limits, const Window& window,
                         uint64_t slot_base);

// At most mapping_entries entries (else RESOURCE_EXHAUSTED), each non-empty
// without wrapping, forward ports >= 1, no two overlapping.
absl::Status CheckMapEntries(const HardwareLimits& limits,
                             const std::vector<MapEntry>& entries);

// Every grant non-empty and inside host memory.
absl::Status CheckInbound(const HostMemory& memory,
                          const std::vector<Inbound>& inbound);

// Memory does not wrap around 64 bits.
absl::Status CheckHostMemory(const HostMemory& memory);

// Port number >= 1; a port without a peer cannot be up.
absl::Status CheckPort(const Port& port);

// Only bits below `doorbells`, and at least one.
absl::Status CheckDoorbell(const HardwareLimits& limits, uint64_t bits);

// 0 <= index < scratchpads.
absl::Status CheckScratchpad(const HardwareLimits& limits, int index);

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_LIMITS_CHECK_H_
