// A pure model of the fabric data path and the invariants every
// configuration the manager produces must satisfy.
#ifndef FABRIC_SERVER_CORE_INVARIANTS_H_
#define FABRIC_SERVER_CORE_INVARIANTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/core/fabric_state.h"
#include "server/core/topology.h"

namespace fabric::core {

// Where an access ended up. When landed, `node` and `addr` give the host and
// host-physical address; otherwise `fault` says why and `fault_node` names the
// bridge that faulted. `hops` lists the bridges visited, src first.
struct WalkResult {
  bool landed = false;
  int node = -1;
  uint64_t addr = 0;
  std::vector<int> hops;
  std::string fault;
  int fault_node = -1;
};

// Models an access of `len` bytes at host-physical `addr` issued by `src`
// (domain.md section 4). An address in none of src's windows is a local
// access that lands at src. Otherwise the window translates it into a fabric
// address; each bridge then claims it or forwards it per its map entries.
// Faults on: no matching entry, an access straddling an entry or window, an
// unwired port or down link, a claim outside the bridge's inbound entries, or
// more than node_count hops ("loop"). `configs` is looked up by
// BridgeConfig::node; a bridge without a config has no entries.
WalkResult WalkAccess(const Topology& topo, const std::vector<bool>& link_up,
                      const std::vector<BridgeConfig>& configs, int src,
                      uint64_t addr, uint64_t len);

// Checks that `configs` implement `grants` safely:
// - no two grants overlap on target bytes, borrower slots or borrower
//   addresses;
// - a grant whose target is reachable (per AddressMap::Compute over
//   `link_up`) has its first and last byte land exactly on the target at
//   target_addr and its last byte; a cut-off grant faults, never lands;
// - every entry respects its bridge's profile: mapping_entries, window_count,
//   lut_entries, alignment, granularity, window size limits, each window at
//   its slot's address; map entries sorted and non-overlapping; claims
//   translate into the export region; windows and inbound entries belong to
//   live grants.
// Returns OK, or INTERNAL listing the violations (at most 20 spelled out).
absl::Status CheckConfigs(const Topology& topo,
                          const std::vector<bool>& link_up,
                          const std::vector<const Grant*>& grants,
                          const std::vector<BridgeConfig>& configs);

// CheckConfigs over ConfigFor(every node) of `state`.
absl::Status CheckInvariants(const FabricState& state);

}  // namespace fabric::core

#endif  // FABRIC_SERVER_CORE_INVARIANTS_H_
