// The simulator's bridge: one simulated NTB bridge whose state lives in
// <sim_dir>/<node>/bridge.json (protobuf JSON, see sim_state.proto) and whose
// host memory is the sparse file <sim_dir>/<node>/memory (host-physical
// address A is file offset A - memory.base).
//
// Several processes (one agent per simulated host) share one sim_dir: every
// change is a read-modify-write under an flock on <node>/lock that replaces
// bridge.json by an atomic rename, so readers always see a whole version.
// Another process may change this bridge's file too (a peer ringing its
// doorbell); each call starts from the file's current content.
//
// A state file that is gone, does not parse, belongs to another bridge or
// holds impossible limits is registers lost: Read() fails (NOT_FOUND or
// DATA_LOSS, quoting the file only as a short escaped excerpt), and the next
// change programs the chip from its reset state (nothing programmed, zeroed
// scratchpads, the limits it had), writing the file anew, as reprogramming
// real hardware after a reset restores it. The memory file is kept.
//
// Usage:
//   ASSIGN_OR_RETURN(std::unique_ptr<SimBridge> b,
//                    SimBridge::Open("/var/lib/fabric-sim", "n0", limits));
//   RETURN_IF_ERROR(b->ApplyState(desired));
//   ASSIGN_OR_RETURN(AccessResult r, b->HostWrite(addr, bytes));
//
// Thread-compatible, like every BridgeHardware.
#ifndef FABRIC_AGENT_HW_SIM_SIM_BRIDGE_H_
#define FABRIC_AGENT_HW_SIM_SIM_BRIDGE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/hw/sim/sim_world.h"
#include "agent/hw/sim/state_file.h"

namespace fabric::agent::hw {

class SimBridge : public BridgeHardware {
 public:
  // Opens node `node`'s bridge under `sim_dir`, creating the directories, an
  // empty state and the memory file if absent. An existing state is kept as
  // programmed, limits included: the limits are the hardware's, fixed when
  // the state file is first created; `limits` only seeds a new one.
  // INVALID_ARGUMENT: bad node name or impossible limits. DATA_LOSS: the
  // state file does not parse, belongs to another bridge or holds
  // impossible limits.
  static absl::StatusOr<std::unique_ptr<SimBridge>> Open(
      const std::string& sim_dir, const std::string& node,
      const HardwareLimits& limits);

  const HardwareLimits& limits() const override { return record_.limits; }
  // NOT_FOUND or DATA_LOSS while the state file is lost (see above).
  absl::StatusOr<BridgeState> Read() override;

  // Also sizes the memory file (sparse) to memory.size. Refused while an
  // inbound grant would fall outside the new memory.
  absl::Status SetHostMemory(const HostMemory& memory) override;
  absl::Status SetMapEntries(const std::vector<MapEntry>& entries) override;
  absl::Status SetWindow(const Window& window) override;
  absl::Status ClearWindow(SlotKind kind, int slot) override;
  absl::Status SetInbound(const std::vector<Inbound>& inbound) override;
  absl::Status SetPort(const Port& port) override;
  // Validates all of `desired` against the limits first and writes the state
  // file once: all or nothing.
  absl::Status ApplyState(const BridgeState& desired) override;

  // Sets bits in the doorbell of `peer_bridge`, which must be cabled to one
  // of this bridge's ports with the link up at both ends (else UNAVAILABLE).
  // The bits must be within the peer's doorbells. NOT_FOUND: no such bridge.
  absl::Status RingPeerDoorbell(const std::string& peer_bridge,
                                uint64_t bits) override;
  absl::Status WriteScratchpad(int index, uint32_t value) override;

  // Walks the data path (SimWorld::Write) and, when the access lands,
  // writes the bytes into the landing host's memory file, or into the
  // device whose BAR decodes them (see SetDevices). Faults write nothing.
  absl::StatusOr<AccessResult> HostWrite(
      uint64_t addr, absl::Span<const uint8_t> data) override;
  // OUT_OF_RANGE unless [addr, addr + out.size()) is in this host's memory.
  absl::Status HostRead(uint64_t addr, absl::Span<uint8_t> out) override;

  // Fault injection: the next `count` calls that change the configuration
  // (Set*, ClearWindow, ApplyState) fail with `status` and change nothing.
  // REQUIRES: !status.ok().
  void InjectApplyFailure(absl::Status status, int count);

  // Fault injection: once `writes` more register writes have landed, the
  // process _exit()s with sim_internal::kSimCrashExitCode, leaving the state
  // file holding exactly those writes (see sim_faults.h: a change is split
  // into per-entry register writes, so this can stop half-way through an
  // ApplyState). Negative disarms. Entries refused through the faults file
  // <sim_dir>/<node>/faults are documented there too.
  void CrashAfterWrites(int writes);

  // Where writes that land in a host's device MMIO range go (not owned;
  // null, the default, makes them UNIMPLEMENTED). Set before use.
  void SetDevices(SimDeviceMmio* devices) { devices_ = devices; }

  // Clears bits of this bridge's own doorbell (what the host's interrupt
  // handler does after taking it).
  absl::Status ClearDoorbell(uint64_t bits);

  const std::string& sim_dir() const { return sim_dir_; }
  const std::string& node() const { return node_; }

 private:
  SimBridge(std::string sim_dir, std::string node);

  // Re-reads the state file if its text differs from what was last seen.
  // NOT_FOUND or DATA_LOSS (sim_internal::ParseRecord) when it is lost.
  absl::Status Refresh();
  // Under the node lock: refreshes (from the reset state when the file is
  // lost), lets `change` edit a copy of the state, and saves it if it
  // changed or the file was lost. `change` returns an error to refuse (then
  // the file is left as it was).
  absl::Status Mutate(const std::function<absl::Status(BridgeState&)>& change,
                      bool injectable);
  // Makes the memory file exist with `size` bytes.
  absl::Status SizeMemoryFile(uint64_t size);
  // Under the node lock, before `next` replaces record_: refuses the change
  // when the faults file names an entry it writes (only if `injectable`),
  // and carries out an armed crash.
  absl::Status InjectFaults(const sim_internal::SimRecord& next,
                            bool injectable);

  const std::string sim_dir_;
  const std::string node_;
  const std::string state_path_;
  const std::string lock_path_;
  sim_internal::SimRecord record_;
  std::string text_;  // The state file's text that record_ was parsed from.
  absl::Status inject_status_;
  int inject_count_ = 0;
  int crash_writes_left_ = -1;  // disarmed when negative
  SimDeviceMmio* devices_ = nullptr;  // not owned
};

}  // namespace fabric::agent::hw

#endif  // FABRIC_AGENT_HW_SIM_SIM_BRIDGE_H_
