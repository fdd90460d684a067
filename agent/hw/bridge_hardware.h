// The narrow hardware interface of one NTB bridge, in the project's terms:
// mapping-chip entries, outbound windows, inbound grants, ports, doorbells,
// scratchpads, and the host's data path through them.
//
// Implementations: LinuxBridge (ntb_tool debugfs + sysfs, agent/hw/linux),
// SimBridge (the simulator, agent/hw/sim) and MockBridgeHardware (gMock, for
// tests only, agent/hw/testing).
//
// Contract for every implementation:
//  - Thread-compatible: one caller at a time (the agent's reconcile loop).
//  - Every Set*/Clear* call is idempotent: programming what is already
//    programmed succeeds and changes nothing.
//  - The hardware enforces its own limits the way the chip would: an entry
//    past the window count, misaligned, off the size granularity or over the
//    maximum window size is refused (INVALID_ARGUMENT / RESOURCE_EXHAUSTED,
//    naming the slot, the value and the limit) and nothing else changes.
//  - A step the platform offers no interface for returns UNIMPLEMENTED and
//    never pretends.
#ifndef FABRIC_AGENT_HW_BRIDGE_HARDWARE_H_
#define FABRIC_AGENT_HW_BRIDGE_HARDWARE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace fabric::agent::hw {

// What the hardware can hold; mirrors fabric.v1.HardwareProfile.
struct HardwareLimits {
  std::string profile;  // e.g. "sim", "idt"
  int window_count = 0;
  int lut_entries = 0;
  uint64_t lut_entry_size = 0;
  uint64_t xlat_align = 0;
  uint64_t size_granularity = 0;
  uint64_t min_window_size = 0;
  uint64_t max_window_size = 0;
  int mapping_entries = 0;
  int doorbells = 0;
  int scratchpads = 0;
};

// One entry of the address-mapping chip: fabric addresses [base, base+size)
// are claimed into this host at local_base (kClaim) or leave through `port`
// (kForward).
struct MapEntry {
  enum class Kind { kClaim, kForward };
  Kind kind = Kind::kForward;
  uint64_t base = 0;
  uint64_t size = 0;
  int port = 0;
  uint64_t local_base = 0;
};

enum class SlotKind { kWindow, kLut };

// An outbound translation: host addresses [local_base, local_base+size) go
// to fabric address xlat. `tag` names the allocation that owns it.
struct Window {
  SlotKind kind = SlotKind::kWindow;
  int slot = 0;
  uint64_t local_base = 0;
  uint64_t size = 0;
  uint64_t xlat = 0;
  std::string tag;
};

// A range of this host's memory that a claimed access may land in.
struct Inbound {
  uint64_t local_base = 0;
  uint64_t size = 0;
  std::string tag;
};

// A port of the bridge and the cable on it.
struct Port {
  int number = 0;
  std::string peer_bridge;  // empty when unwired
  int peer_port = 0;
  bool up = false;
};

// The host memory this bridge claims into (its exported region), and where
// the bridge's outbound slots sit in host-physical space: direct window k at
// window_base + k * max_window_size, LUT slot s at window_base +
// window_count * max_window_size + s * lut_entry_size (core::SlotAddress).
struct HostMemory {
  uint64_t base = 0;
  uint64_t size = 0;
  uint64_t window_base = 0;
  // The host's device MMIO range (lent VFs' BARs): inbound grants may also
  // lie here. Size 0 = none.
  uint64_t mmio_base = 0;
  uint64_t mmio_size = 0;
};

// Everything programmed in the bridge, as read back from the hardware.
struct BridgeState {
  HostMemory memory;
  std::vector<MapEntry> map;     // sorted by base
  std::vector<Window> windows;   // sorted by (kind, slot)
  std::vector<Inbound> inbound;  // sorted by local_base
  std::vector<Port> ports;       // sorted by number
  uint64_t doorbell = 0;         // pending doorbell bits
  std::vector<uint32_t> scratchpads;
};

// Where a data-path access ended: landed on `node` at host address `addr`,
// or faulted at `fault_bridge` for `reason` ("no matching entry", "outside
// every grant", "loop", "link down", ...). `hops` lists the bridges crossed.
struct AccessResult {
  bool landed = false;
  std::string node;
  uint64_t addr = 0;
  std::vector<std::string> hops;
  std::string fault_bridge;
  uint64_t fault_addr = 0;
  std::string reason;
};

// Field-by-field equality (C++17 has no defaulted comparisons).
bool operator==(const MapEntry& a, const MapEntry& b);
bool operator==(const Window& a, const Window& b);
bool operator==(const Inbound& a, const Inbound& b);
bool operator==(const Port& a, const Port& b);
bool operator==(const HostMemory& a, const HostMemory& b);
bool operator==(const BridgeState& a, const BridgeState& b);

class BridgeHardware {
 public:
  virtual ~BridgeHardware() = default;

  virtual const HardwareLimits& limits() const = 0;

  // Reads back everything programmed now.
  virtual absl::StatusOr<BridgeState> Read() = 0;

  // Sets the host memory that claims translate into.
  virtual absl::Status SetHostMemory(const HostMemory& memory) = 0;
  // Replaces the whole mapping-chip table at once. RESOURCE_EXHAUSTED when
  // it has more than mapping_entries entries.
  virtual absl::Status SetMapEntries(const std::vector<MapEntry>& entries) = 0;
  // Programs (or reprograms) one outbound window or LUT slot.
  virtual absl::Status SetWindow(const Window& window) = 0;
  // Clears a slot; clearing an empty slot is OK.
  virtual absl::Status ClearWindow(SlotKind kind, int slot) = 0;
  // Replaces the inbound grants.
  virtual absl::Status SetInbound(const std::vector<Inbound>& inbound) = 0;
  // Records the cable on a port and brings its link up or down.
  virtual absl::Status SetPort(const Port& port) = 0;

  // Programs memory, map, windows (clearing slots `desired` leaves out),
  // inbound and every port `desired` lists; ports it does not list, the
  // doorbell and the scratchpads stay as they are. Idempotent.
  // This default runs the Set*/Clear* calls above, skipping what already
  // matches Read(); it stops at the first error and leaves what it applied.
  // SimBridge overrides it: everything is validated first and written once,
  // all or nothing.
  virtual absl::Status ApplyState(const BridgeState& desired);

  // Sets bits in the peer's doorbell register (doorbells limit the bits).
  virtual absl::Status RingPeerDoorbell(const std::string& peer_bridge,
                                        uint64_t bits) = 0;
  // Writes one of this bridge's scratchpad registers.
  virtual absl::Status WriteScratchpad(int index, uint32_t value) = 0;

  // The host's data path. A write by this host at host-physical `addr`:
  // through an outbound window when `addr` lies in one (then hop by hop as
  // the programmed entries say), else a local write. Returns where it went;
  // a fault is a result, not an error. Errors are for I/O failures only.
  virtual absl::StatusOr<AccessResult> HostWrite(
      uint64_t addr, absl::Span<const uint8_t> data) = 0;
  // Reads this host's own memory at host-physical `addr`.
  virtual absl::Status HostRead(uint64_t addr, absl::Span<uint8_t> out) = 0;
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_BRIDGE_HARDWARE_H_
