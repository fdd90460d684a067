// The chaos campaign's checks of a converged fabric beyond the ledger: the
// invariant checker (server/core) run over what the simulated hardware holds
// and over the manager's durable state as a restart would load it, the
// manager's desired maps against the hardware, and leftovers after
// everything was released.
#ifndef FABRIC_TESTS_CHAOS_FABRIC_CHECKS_H_
#define FABRIC_TESTS_CHAOS_FABRIC_CHECKS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/hw/bridge_hardware.h"
#include "fabric/v1/resources.pb.h"
#include "server/core/fabric_state.h"
#include "server/core/topology.h"
#include "server/store/etcd/etcd_store.h"

namespace fabric::chaos {

// Bridge states by node id.
using HardwareStates = std::map<std::string, agent::hw::BridgeState>;

// Reads the simulated bridge of every node in `nodes` from `sim_dir`, the
// way the simulator itself does (SimBridge::Read). NOT_FOUND if a node has
// no state file (its agent never programmed it).
absl::StatusOr<HardwareStates> ReadSimBridges(
    const std::string& sim_dir, const std::vector<std::string>& nodes);

// The manager's view of a fabric, rebuilt from its API: the topology (from
// the fabric's spec), the link states, a grant per allocation and one per
// window of each VF attachment. Grant ids are what the agents tag their
// entries with: the allocation's id, or "attachments/{id}/{role}".
struct FabricModel {
  core::Topology topology;
  std::vector<bool> link_up;
  std::vector<core::Grant> grants;
};
absl::StatusOr<FabricModel> ModelFromApi(
    const v1::Fabric& fabric, const std::vector<v1::Link>& links,
    const std::vector<v1::Allocation>& allocations,
    const std::vector<v1::Attachment>& attachments = {});

// `hardware` in the core model's terms, one config per node of `topo` (a
// node without state gets an empty config); window and inbound tags are the
// grant ids.
std::vector<core::BridgeConfig> ConfigsFromHardware(
    const core::Topology& topo, const HardwareStates& hardware);

// core::CheckConfigs over what the hardware holds: every grant's bytes land
// exactly on its target range, no two grants share bytes or slots, every
// entry respects its bridge's profile and belongs to a live grant.
absl::Status CheckHardwareInvariants(const FabricModel& model,
                                     const HardwareStates& hardware);

// `hardware` with the tags of its windows and inbound entries taken from
// `maps` wherever the hardware holds exactly what the map wants. The agent
// compares windows and inbound entries by what the hardware holds, not by
// tag (agent/bridge_state.cc: real hardware holds no tag), so when one
// grant replaces another on the same slot and range between two of its
// applies, the simulator keeps the old tag. Run before the checks below.
HardwareStates RelabelAsWanted(const std::vector<v1::AddressMap>& maps,
                               HardwareStates hardware);

// Where the hardware differs from the manager's desired maps (entries,
// windows, inbound grants), one line each; empty when equal.
std::vector<std::string> DiffMapsAndHardware(
    const std::vector<v1::AddressMap>& maps, const HardwareStates& hardware);

// Every window and inbound entry the hardware still holds, one line each.
std::vector<std::string> Leftovers(const HardwareStates& hardware);

// The manager's durable state, loaded from a consistent copy of its SQLite
// database (taken with SQLite's online backup while it runs) into a
// FabricManager, as a restart would.
struct DurableState {
  // FabricManager::CheckInvariants over the loaded state.
  absl::Status invariants;
  // The allocations and attachments it holds, by name.
  std::set<std::string> resources;
};
// `copy_path` receives the copy (overwritten). Errors: the copy or the load
// failed (a load failure is what a restart would hit: DATA_LOSS etc.).
absl::StatusOr<DurableState> LoadDurableState(const std::string& db_path,
                                              const std::string& copy_path);

// The same for managers on the etcd store `etcd`: every table under its
// prefix is copied, at one etcd revision, into a new SQLite database at
// `copy_path` (overwritten), which is loaded as a restart would load etcd
// (the load writes a new epoch, which is why it runs on a copy: the live
// prefix is only read). Errors: etcd's (UNAVAILABLE etc.), UNAVAILABLE when
// writes kept landing while copying, and the load's.
absl::StatusOr<DurableState> LoadEtcdDurableState(
    const store::EtcdStoreOptions& etcd, const std::string& copy_path);

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_FABRIC_CHECKS_H_
