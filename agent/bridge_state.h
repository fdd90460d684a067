// The bridge state the agent wants and how it compares with what the
// hardware holds: the desired state of a DesiredConfig, the entries in which
// two states differ, and the fingerprint the agent notes in the bridge's
// scratchpads. This is the agent's one definition of "the hardware holds
// this state": DiffEntries() is empty exactly when the fields the hardware
// stores are equal, and Fingerprint() folds over the same fields.
//
//   hw::BridgeState want = DesiredState(config);
//   std::vector<std::string> diff = DiffEntries(*hardware->Read(), want);
//
// Tags (window, inbound) are bookkeeping that some hardware (ntb_tool) cannot
// store; the doorbell and the scratchpads are not configuration. Neither
// takes part in the comparison. Pure functions; thread-safe.
#ifndef FABRIC_AGENT_BRIDGE_STATE_H_
#define FABRIC_AGENT_BRIDGE_STATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agent/hw/bridge_hardware.h"
#include "fabric/agentproto/v1/agent_service.pb.h"

namespace fabric::agent {

// Scratchpads 0 and 1 hold the fingerprint of the state a bridge was last
// programmed to (low, high 32 bits), so that a restarted agent can tell
// drift (hardware differs from a state it was given) from news (a state it
// was never given).
inline constexpr int kFingerprintSpadLow = 0;
inline constexpr int kFingerprintSpadHigh = 1;

// The hardware state a desired configuration asks for, sorted the way
// BridgeHardware::Read() returns it.
hw::BridgeState DesiredState(const agentproto::v1::DesiredConfig& config);

// Whether the hardware holding `a` holds `b`: every field but tags,
// doorbell and scratchpads compared.
bool SameHostMemory(const hw::HostMemory& a, const hw::HostMemory& b);
bool SameWindow(const hw::Window& a, const hw::Window& b);
bool SameMapEntry(const hw::MapEntry& a, const hw::MapEntry& b);
bool SamePort(const hw::Port& a, const hw::Port& b);

// A 64-bit fingerprint of what the hardware holds in `s` (the fields the
// Same* functions compare); never 0.
uint64_t Fingerprint(const hw::BridgeState& s);

// The fingerprint `s`'s scratchpads record; 0 when the hardware has no
// scratchpads for it.
uint64_t RecordedFingerprint(const hw::BridgeState& s);

// "window 3" or "lut slot 3": how apply errors and repairs name a slot
// (the entry of a v1::ApplyError).
std::string SlotEntryName(hw::SlotKind kind, int slot);

// The entries in which `have` differs from `want`, e.g. "window 0",
// "map entry 2", "inbound 0x1_0000_0000", "port 1", "host memory".
std::vector<std::string> DiffEntries(const hw::BridgeState& have,
                                     const hw::BridgeState& want);

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_BRIDGE_STATE_H_
