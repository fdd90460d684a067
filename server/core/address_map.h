// The address map: for every bridge, which fabric range it claims into its
// own host and out of which port it forwards every other reachable range.
#ifndef FABRIC_SERVER_CORE_ADDRESS_MAP_H_
#define FABRIC_SERVER_CORE_ADDRESS_MAP_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "server/core/topology.h"

namespace fabric::core {

// One entry of a bridge's address-mapping chip, over fabric range
// [base, base + size).
struct MapEntry {
  enum class Kind { kClaim, kForward };
  Kind kind;
  uint64_t base;
  uint64_t size;
  int port;             // kForward: the out port. kClaim: 0.
  uint64_t local_base;  // kClaim: host-physical address of `base`. Else 0.
};

bool operator==(const MapEntry& a, const MapEntry& b);
inline bool operator!=(const MapEntry& a, const MapEntry& b) {
  return !(a == b);
}

// The routing of a fabric for one set of link states. Immutable, copyable.
//
// Each bridge claims [aperture_base, aperture_base + export_size) of its own
// node onto export_base (and its device range, if it has one). A star server
// forwards every other node's aperture out of its one port, to the hub,
// whatever the link states: an access to a server the hub cannot reach
// faults at the hub, and while the server's own link is down its accesses to
// other nodes fault at the server. Every other bridge (the hub, ring and
// custom nodes) forwards the aperture of each node reachable over up links
// out of the port that starts a shortest path; among shortest paths the
// lowest port wins, so following hops always terminate. There, unreachable
// apertures get no entry. Runs of consecutive apertures forwarded out of the
// same port are merged into one entry.
//
// Hence, in every link state: a star server has at most 2 forward entries
// (its entries do not depend on link state at all); the hub one per server
// it reaches; a ring bridge at most 3 (its reachable nodes form one arc of
// the ring, split by its own aperture and at most once more where the
// aperture order wraps). As these bounds do not depend on link state,
// checking them against the chips once (Topology::Build does) covers every
// link state.
class AddressMap {
 public:
  // REQUIRES: link_up.size() == topo.links().size().
  // Runs in O(N * (N + L)) time.
  static AddressMap Compute(const Topology& topo,
                            const std::vector<bool>& link_up);

  // Sorted by base, non-overlapping. REQUIRES: 0 <= node < node count.
  const std::vector<MapEntry>& entries(int node) const {
    return entries_[node];
  }
  // The bridges visited following the entries from `from` toward `to`'s
  // aperture, both ends included; nullopt if the walk faults (no entry, or
  // a forward out of a port whose link is down) or loops. So it is nullopt
  // exactly when `to` is unreachable from `from` over up links.
  std::optional<std::vector<int>> Path(int from, int to) const;
  // The largest number of forward entries on any one bridge.
  int max_forward_entries() const { return max_forward_entries_; }

 private:
  AddressMap() = default;

  std::vector<std::vector<MapEntry>> entries_;
  std::vector<uint64_t> aperture_base_;
  std::vector<std::vector<Topology::PortLink>> ports_;  // Up links only.
  int max_forward_entries_ = 0;
};

// The entry of `entries` (sorted, non-overlapping) containing `addr`, or
// nullptr.
const MapEntry* FindEntry(const std::vector<MapEntry>& entries, uint64_t addr);

}  // namespace fabric::core

#endif  // FABRIC_SERVER_CORE_ADDRESS_MAP_H_
