// Internal to the simulator: fault injection for tests of the agent.
//
// Two faults, both aimed at what real NTB hardware does to an agent:
//
//  * Refused writes. <sim_dir>/<node>/faults lists entries the chip refuses
//    to program, one directive per line ('#' starts a comment):
//
//        fail window 3        # direct window 3
//        fail lut slot *      # any lookup-table slot ('*' ends a prefix)
//        fail map entry *     # any mapping-chip entry
//        fail inbound *       # any inbound grant
//        fail host memory
//        fail port 2
//        fail *               # every configuration entry
//
//    The file is read on every configuration change, so a test arms and
//    clears the fault by writing and removing it while the agent runs. A
//    change that would write a refused entry fails whole (nothing changes)
//    with INTERNAL naming the entry; writes that leave the entry as it is
//    (reprogramming it to what it holds) are not refused. Each refusal
//    appends "<unix micros> <entry>" to <sim_dir>/<node>/faults.log, so a
//    test can count the attempts and see when they came.
//
//  * A crash mid-apply. SimBridge::CrashAfterWrites(n) (fabric-agent
//    --sim-crash-after-writes) makes the process _exit(kSimCrashExitCode)
//    once n more register writes have landed. Every configuration change
//    is split into the register writes real hardware needs (RegisterWrites
//    below), so a crash can land in the middle of one ApplyState: the state
//    file then holds exactly the writes made, i.e. half a generation.
#ifndef FABRIC_AGENT_HW_SIM_SIM_FAULTS_H_
#define FABRIC_AGENT_HW_SIM_SIM_FAULTS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/hw/bridge_hardware.h"

namespace fabric::agent::hw::sim_internal {

// The exit code of a process killed by CrashAfterWrites.
inline constexpr int kSimCrashExitCode = 86;

// One register write: the entry it programs (e.g. "window 3", "lut slot 5",
// "map entry 0x1000_0000_0000", "inbound 0x1_0000_0000", "port 1", "host
// memory", "scratchpad 0", "doorbell") and how it changes a state.
struct RegisterWrite {
  std::string entry;
  bool config = true;  // false for doorbell and scratchpads (never refused)
  std::function<void(BridgeState&)> apply;
};

// The register writes that turn `from` into `to`, in programming order:
// host memory, map entries, windows and LUT slots, inbound grants, ports,
// doorbell, scratchpads. Applying all of them to `from` gives `to` (up to
// the order of the vectors). Map entries and inbound grants are sets: one
// write removes or adds one entry.
std::vector<RegisterWrite> RegisterWrites(const BridgeState& from,
                                          const BridgeState& to);

std::string FaultsPath(const std::string& sim_dir, const std::string& node);
std::string FaultLogPath(const std::string& sim_dir, const std::string& node);

// The parsed faults file.
struct FaultSpec {
  // Entry patterns from "fail" lines: exact, or a prefix ending in '*'.
  std::vector<std::string> fail;

  // The first config write of `writes` that a pattern matches.
  std::optional<std::string> Refuses(
      const std::vector<RegisterWrite>& writes) const;
};

// Reads the faults file; an absent file is no faults. INVALID_ARGUMENT
// naming the line for a directive it does not know.
absl::StatusOr<FaultSpec> LoadFaults(const std::string& path);

// Appends one line to the fault log; errors are ignored (bookkeeping).
void LogFault(const std::string& path, const std::string& entry);

}  // namespace fabric::agent::hw::sim_internal

#endif  // FABRIC_AGENT_HW_SIM_SIM_FAULTS_H_
