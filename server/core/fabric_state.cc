#include "server/core/fabric_state.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::core {
namespace {

const char* SlotKindName(SlotKind k) {
  return k == SlotKind::kWindow ? "window" : "LUT";
}

// Of the grants in `ranges` (keyed by target_addr, pairwise disjoint) that
// overlap [addr, addr + size), the one with the smallest id, or nullptr: the
// one a scan of all grants in id order would report first. Counts the grants
// it reads in `*visited`. O(log n + overlapping grants).
const Grant* FirstOverlap(const std::map<uint64_t, const Grant*>& ranges,
                          uint64_t addr, uint64_t size, uint64_t* visited) {
  auto it = ranges.upper_bound(addr);
  if (it != ranges.begin()) --it;
  const Grant* first = nullptr;
  for (; it != ranges.end() && it->first < addr + size; ++it) {
    const Grant* o = it->second;
    ++*visited;
    if (addr < o->target_addr + o->size &&
        (first == nullptr || o->id < first->id)) {
      first = o;
    }
  }
  return first;
}

// The indexes follow grants_, whose ranges AddGrant keeps disjoint and
// inside their regions: a failure here is a bug.
void MustSucceed(const absl::Status& st) {
  if (st.ok()) return;
  std::fprintf(stderr, "fabric_state: index out of step: %s\n",
               st.ToString().c_str());
  std::abort();
}

}  // namespace

bool operator==(const Grant& a, const Grant& b) {
  return a.id == b.id && a.borrower == b.borrower && a.target == b.target &&
         a.size == b.size && a.target_addr == b.target_addr &&
         a.fabric_addr == b.fabric_addr && a.slot_kind == b.slot_kind &&
         a.slot_index == b.slot_index && a.slot_count == b.slot_count &&
         a.borrower_addr == b.borrower_addr && a.device == b.device;
}

bool operator==(const WindowEntry& a, const WindowEntry& b) {
  return a.kind == b.kind && a.slot == b.slot && a.local_base == b.local_base &&
         a.size == b.size && a.xlat == b.xlat && a.grant_id == b.grant_id;
}

bool operator==(const InboundEntry& a, const InboundEntry& b) {
  return a.local_base == b.local_base && a.size == b.size &&
         a.grant_id == b.grant_id && a.borrower == b.borrower;
}

bool operator==(const BridgeConfig& a, const BridgeConfig& b) {
  return a.node == b.node && a.map == b.map && a.windows == b.windows &&
         a.inbound == b.inbound;
}

uint64_t SlotAddress(const NodeInfo& node, SlotKind kind, int slot) {
  const HardwareProfile& p = *node.profile;
  if (kind == SlotKind::kWindow) {
    return node.window_base + static_cast<uint64_t>(slot) * p.max_window_size;
  }
  return node.window_base +
         static_cast<uint64_t>(p.window_count) * p.max_window_size +
         static_cast<uint64_t>(slot) * p.lut_entry_size;
}

FabricState::FabricState(Topology topo)
    : topo_(std::move(topo)),
      link_up_(topo_.links().size(), true),
      map_(AddressMap::Compute(topo_, link_up_)) {
  RebuildIndex();
}

FabricState::FabricState(const FabricState& other)
    : topo_(other.topo_),
      link_up_(other.link_up_),
      map_(other.map_),
      grants_(other.grants_) {
  RebuildIndex();
}

FabricState& FabricState::operator=(const FabricState& other) {
  if (this != &other) *this = FabricState(other);
  return *this;
}

void FabricState::RebuildIndex() {
  index_.clear();
  index_.resize(topo_.node_count());
  for (int i = 0; i < topo_.node_count(); ++i) {
    const HardwareProfile& p = *topo_.node(i).profile;
    index_[i].window_owner.assign(p.window_count, nullptr);
    index_[i].lut_owner.assign(p.lut_entries, nullptr);
    index_[i].export_free =
        FreeRanges(topo_.node(i).export_base, topo_.node(i).export_size);
  }
  for (const Grant& g : grants_) IndexGrant(g);
}

void FabricState::IndexGrant(const Grant& g) {
  NodeIndex& b = index_[g.borrower];
  auto& owners =
      g.slot_kind == SlotKind::kWindow ? b.window_owner : b.lut_owner;
  for (int s = g.slot_index; s < g.slot_index + g.slot_count; ++s) {
    owners[s] = &g;
  }
  NodeIndex& t = index_[g.target];
  (g.device ? t.devices : t.exports).emplace(g.target_addr, &g);
  if (!g.device) MustSucceed(t.export_free.Take(g.target_addr, g.size));
}

void FabricState::UnindexGrant(const Grant& g) {
  NodeIndex& b = index_[g.borrower];
  auto& owners =
      g.slot_kind == SlotKind::kWindow ? b.window_owner : b.lut_owner;
  for (int s = g.slot_index; s < g.slot_index + g.slot_count; ++s) {
    owners[s] = nullptr;
  }
  NodeIndex& t = index_[g.target];
  (g.device ? t.devices : t.exports).erase(g.target_addr);
  if (!g.device) MustSucceed(t.export_free.Release(g.target_addr, g.size));
}

absl::Status FabricState::CheckLinkChange(int link, bool up) const {
  if (link_up_[link] == up) return absl::OkStatus();
  std::vector<bool> states = link_up_;
  states[link] = up;
  const AddressMap map = AddressMap::Compute(topo_, states);
  for (int i = 0; i < topo_.node_count(); ++i) {
    const NodeInfo& n = topo_.node(i);
    const size_t need = map.entries(i).size();
    if (need > static_cast<size_t>(n.profile->mapping_entries)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "up: setting link ", topo_.links()[link].name, up ? " up" : " down",
          " would need ", need, " map entries on bridge ", n.name,
          ", whose chip (profile ", n.profile->name, ") holds ",
          n.profile->mapping_entries, "; refused, nothing changed"));
    }
  }
  return absl::OkStatus();
}

bool FabricState::SetLink(int link, bool up) {
  if (link_up_[link] == up) return false;
  link_up_[link] = up;
  map_ = AddressMap::Compute(topo_, link_up_);
  return true;
}

std::string FabricState::DownLinks() const {
  std::vector<std::string> down;
  for (size_t i = 0; i < link_up_.size(); ++i) {
    if (!link_up_[i]) down.push_back(topo_.links()[i].name);
  }
  return down.empty() ? "none" : absl::StrJoin(down, ", ");
}

absl::Status FabricState::ValidateRequest(int borrower, int target,
                                          uint64_t size) const {
  const int n = topo_.node_count();
  if (borrower < 0 || borrower >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("borrower: node ", borrower,
                     " is out of range; the fabric has ", n, " nodes"));
  }
  if (target < 0 || target >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("target: node ", target,
                     " is out of range; the fabric has ", n, " nodes"));
  }
  const NodeInfo& b = topo_.node(borrower);
  const HardwareProfile& p = *b.profile;
  if (borrower == target) {
    return absl::InvalidArgumentError(
        absl::StrCat("target: node ", b.name,
                     " cannot borrow its own memory (borrower == target)"));
  }
  if (size == 0) {
    return absl::InvalidArgumentError("size: must be greater than 0");
  }
  if (size % p.size_granularity != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size: ", size, " bytes is not a multiple of the ",
                     FormatSize(p.size_granularity), " granularity of profile ",
                     p.name, " on node ", b.name));
  }
  if (size < p.min_window_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "size: ", FormatSize(size), " is below the smallest window (",
        FormatSize(p.min_window_size), ") of profile ", p.name, " on node ",
        b.name));
  }
  if (size > LargestMapping(p)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "size: ", FormatSize(size), " is bigger than any window profile ",
        p.name, " on node ", b.name, " allows (largest direct window ",
        FormatSize(p.max_window_size), ", whole lookup table ",
        FormatSize(static_cast<uint64_t>(p.lut_entries) * p.lut_entry_size),
        ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Grant> FabricState::PlanGrant(int borrower, int target,
                                             uint64_t size) const {
  return Plan(borrower, target, size, std::nullopt);
}

absl::StatusOr<Grant> FabricState::PlanDeviceGrant(int borrower, int target,
                                                   uint64_t target_addr,
                                                   uint64_t size) const {
  RETURN_IF_ERROR(ValidateRequest(borrower, target, size));
  const NodeInfo& t = topo_.node(target);
  if (t.mmio_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target: node ", t.name,
        " has no device MMIO range (nodes[].mmio_base/mmio_size in the "
        "fabric spec)"));
  }
  if (target_addr < t.mmio_base || target_addr - t.mmio_base > t.mmio_size ||
      t.mmio_size - (target_addr - t.mmio_base) < size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_addr: [", FormatAddr(target_addr), ", +", FormatSize(size),
        ") is outside the device range [", FormatAddr(t.mmio_base), ", ",
        FormatAddr(t.mmio_base + t.mmio_size), ") of node ", t.name));
  }
  if (const Grant* o = FirstOverlap(index_[target].devices, target_addr,
                                    size, &grants_visited_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "target_addr: device range [", FormatAddr(target_addr), ", +",
        FormatSize(size), ") on node ", t.name, " is already granted by ",
        o->id));
  }
  return Plan(borrower, target, size, target_addr);
}

absl::StatusOr<Grant> FabricState::Plan(
    int borrower, int target, uint64_t size,
    std::optional<uint64_t> device_addr) const {
  RETURN_IF_ERROR(ValidateRequest(borrower, target, size));
  const NodeInfo& b = topo_.node(borrower);
  const NodeInfo& t = topo_.node(target);
  const HardwareProfile& p = *b.profile;
  if (!map_.Path(borrower, target).has_value()) {
    return absl::UnavailableError(absl::StrCat(
        "target: node ", t.name, " is unreachable from borrower node ", b.name,
        "; links down: ", DownLinks()));
  }

  const std::vector<const Grant*>& window_owner =
      index_[borrower].window_owner;
  const std::vector<const Grant*>& lut_owner = index_[borrower].lut_owner;
  const NodeIndex& ti = index_[target];

  // First fit in the target's export region such that the fabric address,
  // aperture_base + (addr - export_base), is aligned to `align`.
  auto fit = [&](uint64_t align) -> std::optional<uint64_t> {
    if (device_addr.has_value()) {
      // The target range is fixed; only the fabric alignment can fail.
      const uint64_t fab = t.mmio_aperture_base + (*device_addr - t.mmio_base);
      if (fab % align != 0) return std::nullopt;
      return *device_addr;
    }
    return ti.export_free.FirstFit(size, align,
                                   t.aperture_base - t.export_base,
                                   &grants_visited_);
  };

  const int used_windows =
      p.window_count - static_cast<int>(std::count(
                           window_owner.begin(), window_owner.end(), nullptr));
  const int used_lut =
      p.lut_entries - static_cast<int>(std::count(
                          lut_owner.begin(), lut_owner.end(), nullptr));
  bool had_slot = false;
  uint64_t failed_align = 0;
  auto make = [&](uint64_t addr, SlotKind kind, int slot, int count) {
    const uint64_t fab =
        device_addr.has_value()
            ? t.mmio_aperture_base + (addr - t.mmio_base)
            : t.aperture_base + (addr - t.export_base);
    return Grant{"",   borrower, target, size, addr, fab, kind, slot,
                 count, SlotAddress(b, kind, slot), device_addr.has_value()};
  };

  if (size <= p.max_window_size && used_windows < p.window_count) {
    had_slot = true;
    failed_align = p.xlat_align;
    int slot = static_cast<int>(
        std::find(window_owner.begin(), window_owner.end(), nullptr) -
        window_owner.begin());
    if (std::optional<uint64_t> addr = fit(p.xlat_align)) {
      return make(*addr, SlotKind::kWindow, slot, 1);
    }
  }
  int lut_need = 0;
  if (p.lut_entries > 0 && size % p.lut_entry_size == 0) {
    lut_need = static_cast<int>(size / p.lut_entry_size);
    int run = 0;
    int slot = -1;
    for (int s = 0; s < p.lut_entries && slot < 0; ++s) {
      run = lut_owner[s] != nullptr ? 0 : run + 1;
      if (run == lut_need) slot = s - lut_need + 1;
    }
    if (slot >= 0) {
      had_slot = true;
      failed_align = p.lut_entry_size;
      if (std::optional<uint64_t> addr = fit(p.lut_entry_size)) {
        return make(*addr, SlotKind::kLut, slot, lut_need);
      }
    }
  }

  if (!had_slot) {
    std::string lut_note =
        p.lut_entries == 0
            ? "no lookup table"
            : (lut_need == 0
                   ? absl::StrCat("LUT unusable: size is not a multiple of ",
                                  FormatSize(p.lut_entry_size))
                   : absl::StrCat(used_lut, " of ", p.lut_entries,
                                  " LUT slots in use, no run of ", lut_need,
                                  " contiguous free slots"));
    return absl::ResourceExhaustedError(absl::StrCat(
        "borrower: no free window for ", FormatSize(size), " on node ", b.name,
        " (profile ", p.name, "): ", used_windows, " of ", p.window_count,
        " direct windows in use",
        size > p.max_window_size
            ? absl::StrCat(" (max ", FormatSize(p.max_window_size), ")")
            : "",
        "; ", lut_note));
  }
  if (device_addr.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target_addr: fabric address ",
        FormatAddr(t.mmio_aperture_base + (*device_addr - t.mmio_base)),
        " of device range ", FormatAddr(*device_addr), " on node ", t.name,
        " is not aligned to ", FormatSize(failed_align),
        " as the free slots of node ", b.name, " (profile ", p.name,
        ") need"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "target: no free range of ", FormatSize(size), " aligned to ",
      FormatSize(failed_align), " in the export region [",
      FormatAddr(t.export_base), ", ",
      FormatAddr(t.export_base + t.export_size), ") of node ", t.name,
      "; largest free range is ", FormatSize(ti.export_free.Largest()), " (",
      ti.exports.size(), " grants on it)"));
}

absl::Status FabricState::AddGrant(const Grant& g) {
  if (g.id.empty()) {
    return absl::InvalidArgumentError("id: a grant needs an id");
  }
  if (grants_.find(g.id) != grants_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("id: grant \"", g.id, "\" already exists"));
  }
  absl::Status valid = ValidateRequest(g.borrower, g.target, g.size);
  if (!valid.ok()) return absl::InvalidArgumentError(valid.message());

  const NodeInfo& b = topo_.node(g.borrower);
  const NodeInfo& t = topo_.node(g.target);
  const HardwareProfile& p = *b.profile;
  auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("grant ", g.id, ": ", what,
                                                   " (borrower ", b.name,
                                                   ", profile ", p.name, ")"));
  };
  if (g.slot_kind == SlotKind::kWindow) {
    if (g.slot_count != 1) return invalid("slot_count: a window uses 1 slot");
    if (g.slot_index < 0 || g.slot_index >= p.window_count) {
      return invalid(absl::StrCat("slot_index: window ", g.slot_index,
                                  " outside 0..", p.window_count - 1));
    }
    if (g.size > p.max_window_size) {
      return invalid(absl::StrCat("size: ", FormatSize(g.size),
                                  " exceeds the largest window ",
                                  FormatSize(p.max_window_size)));
    }
    if (g.fabric_addr % p.xlat_align != 0) {
      return invalid(absl::StrCat("fabric_addr: ", FormatAddr(g.fabric_addr),
                                  " is not aligned to xlat_align ",
                                  FormatSize(p.xlat_align)));
    }
  } else {
    if (p.lut_entries == 0) return invalid("slot_kind: no lookup table");
    if (g.slot_count < 1 || g.slot_index < 0 ||
        g.slot_index + g.slot_count > p.lut_entries) {
      return invalid(absl::StrCat("slot_index: LUT slots ", g.slot_index, "+",
                                  g.slot_count, " outside 0..",
                                  p.lut_entries - 1));
    }
    if (g.size != static_cast<uint64_t>(g.slot_count) * p.lut_entry_size) {
      return invalid(absl::StrCat("size: ", FormatSize(g.size), " is not ",
                                  g.slot_count, " LUT entries of ",
                                  FormatSize(p.lut_entry_size)));
    }
    if (g.fabric_addr % p.lut_entry_size != 0) {
      return invalid(absl::StrCat("fabric_addr: ", FormatAddr(g.fabric_addr),
                                  " is not aligned to the LUT entry size ",
                                  FormatSize(p.lut_entry_size)));
    }
  }
  if (g.borrower_addr != SlotAddress(b, g.slot_kind, g.slot_index)) {
    return invalid(
        absl::StrCat("borrower_addr: ", FormatAddr(g.borrower_addr), " is not ",
                     SlotKindName(g.slot_kind), " slot ", g.slot_index, " at ",
                     FormatAddr(SlotAddress(b, g.slot_kind, g.slot_index))));
  }
  const uint64_t region_base = g.device ? t.mmio_base : t.export_base;
  const uint64_t region_size = g.device ? t.mmio_size : t.export_size;
  if (g.target_addr < region_base || g.target_addr - region_base > region_size ||
      region_size - (g.target_addr - region_base) < g.size) {
    return invalid(absl::StrCat(
        "target_addr: [", FormatAddr(g.target_addr), ", +", FormatSize(g.size),
        ") is outside the ", g.device ? "device range" : "export region",
        " of node ", t.name));
  }
  const uint64_t fabric_base =
      g.device ? t.mmio_aperture_base : t.aperture_base;
  if (g.fabric_addr != fabric_base + (g.target_addr - region_base)) {
    return invalid(absl::StrCat("fabric_addr: ", FormatAddr(g.fabric_addr),
                                " does not match target_addr ",
                                FormatAddr(g.target_addr)));
  }
  // Report the conflicting grant with the smallest id, a slot conflict
  // before a range conflict with the same grant, as a scan in id order would.
  const NodeIndex& bi = index_[g.borrower];
  const auto& owners =
      g.slot_kind == SlotKind::kWindow ? bi.window_owner : bi.lut_owner;
  const Grant* slot_user = nullptr;
  for (int s = g.slot_index; s < g.slot_index + g.slot_count; ++s) {
    const Grant* o = owners[s];
    if (o == nullptr || o == slot_user) continue;
    Visit();
    if (slot_user == nullptr || o->id < slot_user->id) slot_user = o;
  }
  const NodeIndex& ti = index_[g.target];
  const Grant* range_user = nullptr;
  for (const auto* ranges : {&ti.exports, &ti.devices}) {
    const Grant* o =
        FirstOverlap(*ranges, g.target_addr, g.size, &grants_visited_);
    if (o != nullptr && (range_user == nullptr || o->id < range_user->id)) {
      range_user = o;
    }
  }
  if (slot_user != nullptr &&
      (range_user == nullptr || slot_user->id <= range_user->id)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "grant ", g.id, ": ", SlotKindName(g.slot_kind), " slot ",
        g.slot_index, " on node ", b.name, " is used by grant ",
        slot_user->id));
  }
  if (range_user != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "grant ", g.id, ": target range [", FormatAddr(g.target_addr), ", +",
        FormatSize(g.size), ") on node ", t.name, " overlaps grant ",
        range_user->id));
  }
  IndexGrant(*grants_.insert(g).first);
  return absl::OkStatus();
}

absl::Status FabricState::RemoveGrant(absl::string_view id) {
  auto it = grants_.find(id);
  if (it == grants_.end()) {
    return absl::NotFoundError(absl::StrCat("grant \"", id, "\" not found"));
  }
  UnindexGrant(*it);
  grants_.erase(it);
  return absl::OkStatus();
}

const Grant* FabricState::FindGrant(absl::string_view id) const {
  auto it = grants_.find(id);
  return it == grants_.end() ? nullptr : &*it;
}

std::vector<const Grant*> FabricState::grants() const {
  std::vector<const Grant*> out;
  out.reserve(grants_.size());
  for (const Grant& g : grants_) out.push_back(&g);
  return out;
}

std::vector<const Grant*> FabricState::GrantsBorrowedBy(int node) const {
  const NodeIndex& ni = index_[node];
  std::vector<const Grant*> out;
  for (const Grant* g : ni.window_owner) {
    if (g != nullptr) out.push_back(g);
  }
  for (size_t s = 0; s < ni.lut_owner.size(); ++s) {
    const Grant* g = ni.lut_owner[s];
    if (g != nullptr && static_cast<size_t>(g->slot_index) == s) {
      out.push_back(g);
    }
  }
  Visit(out.size());
  return out;
}

std::vector<const Grant*> FabricState::GrantsTargeting(int node) const {
  const NodeIndex& ni = index_[node];
  std::vector<const Grant*> out;
  out.reserve(ni.exports.size() + ni.devices.size());
  auto e = ni.exports.begin();
  auto d = ni.devices.begin();
  while (e != ni.exports.end() || d != ni.devices.end()) {
    if (d == ni.devices.end() ||
        (e != ni.exports.end() && e->first < d->first)) {
      out.push_back((e++)->second);
    } else {
      out.push_back((d++)->second);
    }
  }
  Visit(out.size());
  return out;
}

std::optional<std::vector<int>> FabricState::GrantPath(const Grant& g) const {
  return map_.Path(g.borrower, g.target);
}

BridgeConfig FabricState::ConfigFor(int node) const {
  BridgeConfig c;
  c.node = node;
  c.map = map_.entries(node);
  const HardwareProfile& p = *topo_.node(node).profile;
  // Both lists come ordered as the config is: windows by (kind, slot),
  // inbound by local_base (= target_addr).
  for (const Grant* g : GrantsBorrowedBy(node)) {
    if (g->slot_kind == SlotKind::kWindow) {
      c.windows.push_back({SlotKind::kWindow, g->slot_index, g->borrower_addr,
                           g->size, g->fabric_addr, g->id});
    } else {
      for (int k = 0; k < g->slot_count; ++k) {
        uint64_t off = static_cast<uint64_t>(k) * p.lut_entry_size;
        c.windows.push_back({SlotKind::kLut, g->slot_index + k,
                             g->borrower_addr + off, p.lut_entry_size,
                             g->fabric_addr + off, g->id});
      }
    }
  }
  for (const Grant* g : GrantsTargeting(node)) {
    c.inbound.push_back({g->target_addr, g->size, g->id, g->borrower});
  }
  return c;
}

}  // namespace fabric::core
