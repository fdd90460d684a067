// The manager's model of a fabric: topology, link states, the address map
// they imply, and the live memory grants with their window placement.
#ifndef FABRIC_SERVER_CORE_FABRIC_STATE_H_
#define FABRIC_SERVER_CORE_FABRIC_STATE_H_

#include <cstdint>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/address_map.h"
#include "server/core/free_ranges.h"
#include "server/core/topology.h"

namespace fabric::core {

enum class SlotKind { kWindow, kLut };

// `borrower` sees `size` bytes of `target`'s memory at borrower_addr (or,
// for a device grant, of target's device MMIO: a lent VF's BAR).
struct Grant {
  std::string id;
  int borrower;
  int target;
  uint64_t size;
  uint64_t target_addr;  // Host-physical on target, inside its export region.
  uint64_t fabric_addr;  // target aperture_base + (target_addr - export_base).
  SlotKind slot_kind;
  int slot_index;
  int slot_count;          // LUT: contiguous slots used; window: 1.
  uint64_t borrower_addr;  // Host-physical on borrower.
  // Target range is in the target's device MMIO range, not its export
  // region; fabric_addr = mmio_aperture_base + (target_addr - mmio_base).
  bool device = false;
};

bool operator==(const Grant& a, const Grant& b);

// One programmed outbound translation: [local_base, local_base + size) on the
// bridge's host goes to fabric address xlat. A LUT grant yields one entry per
// slot, each lut_entry_size bytes.
struct WindowEntry {
  SlotKind kind;
  int slot;
  uint64_t local_base;
  uint64_t size;
  uint64_t xlat;
  std::string grant_id;
};

// A range of the bridge's host memory that a grant exposes to `borrower`.
struct InboundEntry {
  uint64_t local_base;
  uint64_t size;
  std::string grant_id;
  int borrower;
};

// The desired hardware configuration of one bridge.
struct BridgeConfig {
  int node;
  std::vector<MapEntry> map;          // Sorted by base.
  std::vector<WindowEntry> windows;   // Sorted by (kind, slot).
  std::vector<InboundEntry> inbound;  // Sorted by local_base.
};

bool operator==(const WindowEntry& a, const WindowEntry& b);
bool operator==(const InboundEntry& a, const InboundEntry& b);
bool operator==(const BridgeConfig& a, const BridgeConfig& b);

// Host-physical address of a borrower's direct window `slot` or LUT `slot`.
uint64_t SlotAddress(const NodeInfo& node, SlotKind kind, int slot);

// Not thread-safe; copyable (a copy is fully independent of the original).
//
// Grants are indexed by borrower (the owner of each of its window and LUT
// slots) and by target (its export-region grants and its device grants, each
// ordered by target_addr, and the free ranges of its export region). Planning
// a grant finds its target range in O(log n); planning, adding or removing a
// grant and computing one node's configuration read only the indexes of the
// nodes involved: their cost grows with the grants of those nodes, never with
// all grants. Copying rebuilds the indexes in O(n log n).
class FabricState {
 public:
  // Starts with every link up and no grants.
  explicit FabricState(Topology topo);

  FabricState(const FabricState& other);
  FabricState& operator=(const FabricState& other);
  FabricState(FabricState&& other) = default;
  FabricState& operator=(FabricState&& other) = default;

  const Topology& topology() const { return topo_; }
  const AddressMap& map() const { return map_; }
  // REQUIRES: 0 <= link < link count.
  bool link_up(int link) const { return link_up_[link]; }
  const std::vector<bool>& link_states() const { return link_up_; }

  // OK when every bridge's map, recomputed with `link` set to `up`, fits
  // its chip (profile mapping_entries); else FAILED_PRECONDITION naming the
  // bridge, the entries it would need and its capacity. Rings and stars
  // always fit (their entry counts do not grow with link state); a CUSTOM
  // topology's may. Changes nothing. REQUIRES: 0 <= link < link count.
  absl::Status CheckLinkChange(int link, bool up) const;

  // Sets a link's state and recomputes the map. Returns whether it changed.
  // Grants stay; a grant whose path is cut faults until the link returns.
  // REQUIRES: 0 <= link < link count; callers refuse a change that
  // CheckLinkChange refuses.
  bool SetLink(int link, bool up);

  // Plans a grant of `size` bytes of `target`'s memory to `borrower` without
  // changing anything; the id is left empty. Prefers a free direct window;
  // falls back to contiguous LUT slots when size is a multiple of the LUT
  // entry size. The target range is the first fit in its export region.
  // INVALID_ARGUMENT: bad node, borrower == target, size 0, size off the
  // granularity or below the smallest window. RESOURCE_EXHAUSTED: size above
  // any window, no free slot on the borrower, no free aligned range on the
  // target. UNAVAILABLE: target unreachable from the borrower.
  absl::StatusOr<Grant> PlanGrant(int borrower, int target,
                                  uint64_t size) const;

  // Plans a device grant: `borrower` gets a window onto exactly
  // [target_addr, target_addr + size) of `target`'s device MMIO range (e.g.
  // one BAR of a VF lent to it). Slots as PlanGrant. INVALID_ARGUMENT as
  // PlanGrant, plus: target has no device range, the range is outside it,
  // or its fabric address is not aligned as the borrower's slots need.
  // FAILED_PRECONDITION: the range overlaps a live device grant.
  // RESOURCE_EXHAUSTED: no free slot. UNAVAILABLE: unreachable.
  absl::StatusOr<Grant> PlanDeviceGrant(int borrower, int target,
                                        uint64_t target_addr,
                                        uint64_t size) const;

  // Adds a grant exactly as given (e.g. restored from the store). Accepts
  // whatever PlanGrant produced for the current grants, reachable or not.
  // INVALID_ARGUMENT: empty id, bad node, or the grant breaks the borrower's
  // profile or its own consistency. ALREADY_EXISTS: id in use.
  // FAILED_PRECONDITION: it overlaps a live grant's slot or target range.
  absl::Status AddGrant(const Grant& g);

  // NOT_FOUND if no grant has that id.
  absl::Status RemoveGrant(absl::string_view id);

  // nullptr if absent. O(log n). Invalidated by AddGrant/RemoveGrant.
  const Grant* FindGrant(absl::string_view id) const;
  // Every grant, ordered by id. O(n): for invariants and listings, not for
  // per-operation paths. Invalidated by AddGrant/RemoveGrant.
  std::vector<const Grant*> grants() const;
  size_t grant_count() const { return grants_.size(); }

  // Grants `node` borrows (it holds their slots), ordered by (slot kind,
  // slot index). O(grants of node + slots of its profile). REQUIRES: valid
  // node. Invalidated by AddGrant/RemoveGrant.
  std::vector<const Grant*> GrantsBorrowedBy(int node) const;
  // Grants of `node`'s export region or device range, ordered by
  // target_addr. O(grants of node). REQUIRES: valid node. Invalidated by
  // AddGrant/RemoveGrant.
  std::vector<const Grant*> GrantsTargeting(int node) const;

  // The bridges a grant's accesses cross, or nullopt when its path is cut.
  std::optional<std::vector<int>> GrantPath(const Grant& g) const;

  // The desired hardware configuration of `node`'s bridge.
  // REQUIRES: valid node. O(grants of node + slots of its profile).
  BridgeConfig ConfigFor(int node) const;

  // Test hook: how many grants (and free ranges of export regions) Plan*,
  // AddGrant, ConfigFor, GrantsBorrowedBy and GrantsTargeting have read so
  // far (monotonic; compare two readings).
  uint64_t grants_visited() const { return grants_visited_; }

 private:
  // The grants one node takes part in. Pointers are into grants_ (stable
  // across insertions and erasures of other grants; rebuilt on copy).
  struct NodeIndex {
    // As borrower: the grant holding each window / LUT slot, or nullptr.
    std::vector<const Grant*> window_owner;
    std::vector<const Grant*> lut_owner;
    // As target, keyed by target_addr. The ranges of all of a target's
    // grants are pairwise disjoint (AddGrant refuses overlaps).
    std::map<uint64_t, const Grant*> exports;  // !device
    std::map<uint64_t, const Grant*> devices;  // device
    // The export region less the ranges of `exports`.
    FreeRanges export_free;
  };

  absl::Status ValidateRequest(int borrower, int target, uint64_t size) const;
  // PlanGrant and PlanDeviceGrant: `device_addr` set = a device grant at
  // that target address.
  absl::StatusOr<Grant> Plan(int borrower, int target, uint64_t size,
                             std::optional<uint64_t> device_addr) const;
  std::string DownLinks() const;
  // Clears and refills index_ from grants_.
  void RebuildIndex();
  void IndexGrant(const Grant& g);
  void UnindexGrant(const Grant& g);
  // Counts `n` grants read (test hook).
  void Visit(uint64_t n = 1) const { grants_visited_ += n; }

  Topology topo_;
  std::vector<bool> link_up_;
  AddressMap map_;
  // Ordered by id, the id stored once (in the Grant): a set, not a map.
  struct ById {
    using is_transparent = void;
    bool operator()(const Grant& a, const Grant& b) const { return a.id < b.id; }
    bool operator()(const Grant& a, absl::string_view b) const {
      return a.id < b;
    }
    bool operator()(absl::string_view a, const Grant& b) const {
      return a < b.id;
    }
  };
  std::set<Grant, ById> grants_;
  std::vector<NodeIndex> index_;  // By node.
  mutable uint64_t grants_visited_ = 0;
};

}  // namespace fabric::core

#endif  // FABRIC_SERVER_CORE_FABRIC_STATE_H_
