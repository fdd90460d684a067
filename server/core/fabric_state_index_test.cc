// FabricState's grant indexes: every answer equals that of a scan of all
// grants (the algorithm FabricState used before it had indexes, kept below
// as the reference), an operation at 100,000 grants reads only the grants
// of the nodes it involves, and planning on a target with thousands of
// grants reads O(log n) of its free ranges.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/profiles.h"
#include "common/units.h"
#include "gtest/gtest.h"
#include "server/core/fabric_state.h"
#include "server/core/invariants.h"
#include "server/core/test_util.h"

namespace fabric::core {
namespace {

using ::fabric::core::testing::RingSpec;
using ::fabric::core::testing::StarSpec;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

// --- The reference: scans of grants(), as FabricState did without indexes.
// Requests given to it must pass FabricState's request validation (the
// tests only make valid ones), so it starts where the scans start.

uint64_t RefAlignUp(uint64_t v, uint64_t align) {
  return (v + align - 1) / align * align;
}

struct RefRange {
  uint64_t base;
  uint64_t size;
};

std::string RefDownLinks(const FabricState& s) {
  std::vector<std::string> down;
  for (size_t i = 0; i < s.link_states().size(); ++i) {
    if (!s.link_states()[i]) down.push_back(s.topology().links()[i].name);
  }
  return down.empty() ? "none" : absl::StrJoin(down, ", ");
}

absl::StatusOr<Grant> RefPlan(const FabricState& s, int borrower, int target,
                              uint64_t size,
                              std::optional<uint64_t> device_addr) {
  const NodeInfo& b = s.topology().node(borrower);
  const NodeInfo& t = s.topology().node(target);
  const HardwareProfile& p = *b.profile;
  if (!s.map().Path(borrower, target).has_value()) {
    return absl::UnavailableError(absl::StrCat(
        "target: node ", t.name, " is unreachable from borrower node ", b.name,
        "; links down: ", RefDownLinks(s)));
  }
  std::vector<bool> window_used(p.window_count, false);
  std::vector<bool> lut_used(p.lut_entries, false);
  std::vector<RefRange> taken;
  for (const Grant* g : s.grants()) {
    if (g->borrower == borrower) {
      auto& used = g->slot_kind == SlotKind::kWindow ? window_used : lut_used;
      for (int k = g->slot_index; k < g->slot_index + g->slot_count; ++k) {
        used[k] = true;
      }
    }
    if (g->target == target && !g->device) {
      taken.push_back({g->target_addr, g->size});
    }
  }
  std::sort(taken.begin(), taken.end(), [](const RefRange& x,
                                           const RefRange& y) {
    return x.base < y.base;
  });
  const uint64_t export_end = t.export_base + t.export_size;
  auto fit = [&](uint64_t align) -> std::optional<uint64_t> {
    if (device_addr.has_value()) {
      const uint64_t fab = t.mmio_aperture_base + (*device_addr - t.mmio_base);
      if (fab % align != 0) return std::nullopt;
      return *device_addr;
    }
    uint64_t cursor = t.export_base;
    for (size_t i = 0; i <= taken.size(); ++i) {
      uint64_t gap_end = i < taken.size() ? taken[i].base : export_end;
      uint64_t fab =
          RefAlignUp(t.aperture_base + (cursor - t.export_base), align);
      uint64_t start = t.export_base + (fab - t.aperture_base);
      if (start <= gap_end && gap_end - start >= size) return start;
      if (i < taken.size()) {
        cursor = std::max(cursor, taken[i].base + taken[i].size);
      }
    }
    return std::nullopt;
  };
  int used_windows = static_cast<int>(
      std::count(window_used.begin(), window_used.end(), true));
  int used_lut =
      static_cast<int>(std::count(lut_used.begin(), lut_used.end(), true));
  bool had_slot = false;
  uint64_t failed_align = 0;
  auto make = [&](uint64_t addr, SlotKind kind, int slot, int count) {
    const uint64_t fab = device_addr.has_value()
                             ? t.mmio_aperture_base + (addr - t.mmio_base)
                             : t.aperture_base + (addr - t.export_base);
    return Grant{"",   borrower, target, size, addr, fab, kind, slot,
                 count, SlotAddress(b, kind, slot), device_addr.has_value()};
  };
  if (size <= p.max_window_size && used_windows < p.window_count) {
    had_slot = true;
    failed_align = p.xlat_align;
    int slot = static_cast<int>(
        std::find(window_used.begin(), window_used.end(), false) -
        window_used.begin());
    if (std::optional<uint64_t> addr = fit(p.xlat_align)) {
      return make(*addr, SlotKind::kWindow, slot, 1);
    }
  }
  int lut_need = 0;
  if (p.lut_entries > 0 && size % p.lut_entry_size == 0) {
    lut_need = static_cast<int>(size / p.lut_entry_size);
    int run = 0;
    int slot = -1;
    for (int k = 0; k < p.lut_entries && slot < 0; ++k) {
      run = lut_used[k] ? 0 : run + 1;
      if (run == lut_need) slot = k - lut_need + 1;
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
  uint64_t largest = 0;
  uint64_t cursor = t.export_base;
  for (const RefRange& r : taken) {
    if (r.base > cursor) largest = std::max(largest, r.base - cursor);
    cursor = std::max(cursor, r.base + r.size);
  }
  if (export_end > cursor) largest = std::max(largest, export_end - cursor);
  return absl::ResourceExhaustedError(absl::StrCat(
      "target: no free range of ", FormatSize(size), " aligned to ",
      FormatSize(failed_align), " in the export region [",
      FormatAddr(t.export_base), ", ", FormatAddr(export_end), ") of node ",
      t.name, "; largest free range is ", FormatSize(largest), " (",
      taken.size(), " grants on it)"));
}

// REQUIRES: the range is inside the target's device range.
absl::StatusOr<Grant> RefPlanDevice(const FabricState& s, int borrower,
                                    int target, uint64_t target_addr,
                                    uint64_t size) {
  const NodeInfo& t = s.topology().node(target);
  for (const Grant* g : s.grants()) {
    if (g->target == target && g->device &&
        g->target_addr < target_addr + size &&
        target_addr < g->target_addr + g->size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "target_addr: device range [", FormatAddr(target_addr), ", +",
          FormatSize(size), ") on node ", t.name, " is already granted by ",
          g->id));
    }
  }
  return RefPlan(s, borrower, target, size, target_addr);
}

// AddGrant's conflict check, for a grant that passed its other checks.
absl::Status RefConflict(const FabricState& s, const Grant& g) {
  const char* kind = g.slot_kind == SlotKind::kWindow ? "window" : "LUT";
  for (const Grant* o : s.grants()) {
    if (o->borrower == g.borrower && o->slot_kind == g.slot_kind &&
        o->slot_index < g.slot_index + g.slot_count &&
        g.slot_index < o->slot_index + o->slot_count) {
      return absl::FailedPreconditionError(absl::StrCat(
          "grant ", g.id, ": ", kind, " slot ", g.slot_index, " on node ",
          s.topology().node(g.borrower).name, " is used by grant ", o->id));
    }
    if (o->target == g.target && o->target_addr < g.target_addr + g.size &&
        g.target_addr < o->target_addr + o->size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "grant ", g.id, ": target range [", FormatAddr(g.target_addr), ", +",
          FormatSize(g.size), ") on node ", s.topology().node(g.target).name,
          " overlaps grant ", o->id));
    }
  }
  return absl::OkStatus();
}

BridgeConfig RefConfigFor(const FabricState& s, int node) {
  BridgeConfig c;
  c.node = node;
  c.map = s.map().entries(node);
  const HardwareProfile& p = *s.topology().node(node).profile;
  for (const Grant* g : s.grants()) {
    if (g->borrower == node) {
      if (g->slot_kind == SlotKind::kWindow) {
        c.windows.push_back({SlotKind::kWindow, g->slot_index,
                             g->borrower_addr, g->size, g->fabric_addr, g->id});
      } else {
        for (int k = 0; k < g->slot_count; ++k) {
          uint64_t off = static_cast<uint64_t>(k) * p.lut_entry_size;
          c.windows.push_back({SlotKind::kLut, g->slot_index + k,
                               g->borrower_addr + off, p.lut_entry_size,
                               g->fabric_addr + off, g->id});
        }
      }
    }
    if (g->target == node) {
      c.inbound.push_back({g->target_addr, g->size, g->id, g->borrower});
    }
  }
  std::sort(c.windows.begin(), c.windows.end(),
            [](const WindowEntry& a, const WindowEntry& b) {
              return std::make_pair(a.kind, a.slot) <
                     std::make_pair(b.kind, b.slot);
            });
  std::sort(c.inbound.begin(), c.inbound.end(),
            [](const InboundEntry& a, const InboundEntry& b) {
              return a.local_base < b.local_base;
            });
  return c;
}

std::vector<Grant> RefBorrowedBy(const FabricState& s, int node) {
  std::vector<Grant> out;
  for (const Grant* g : s.grants()) {
    if (g->borrower == node) out.push_back(*g);
  }
  std::sort(out.begin(), out.end(), [](const Grant& a, const Grant& b) {
    return std::make_pair(a.slot_kind, a.slot_index) <
           std::make_pair(b.slot_kind, b.slot_index);
  });
  return out;
}

std::vector<Grant> RefTargeting(const FabricState& s, int node) {
  std::vector<Grant> out;
  for (const Grant* g : s.grants()) {
    if (g->target == node) out.push_back(*g);
  }
  std::sort(out.begin(), out.end(), [](const Grant& a, const Grant& b) {
    return a.target_addr < b.target_addr;
  });
  return out;
}

// --- Comparison helpers: "" when equal, else what differs.

std::string Describe(const Grant& g) {
  return absl::StrFormat(
      "{%s b=%d t=%d size=%#x taddr=%#x fab=%#x %s %d+%d baddr=%#x%s}", g.id,
      g.borrower, g.target, g.size, g.target_addr, g.fabric_addr,
      g.slot_kind == SlotKind::kWindow ? "window" : "lut", g.slot_index,
      g.slot_count, g.borrower_addr, g.device ? " device" : "");
}

std::string Describe(const absl::StatusOr<Grant>& g) {
  return g.ok() ? Describe(*g) : g.status().ToString();
}

std::string Diff(const absl::StatusOr<Grant>& got,
                 const absl::StatusOr<Grant>& want) {
  const bool same = got.ok() ? want.ok() && *got == *want
                             : got.status() == want.status();
  if (same) return "";
  return absl::StrCat("got ", Describe(got), "\nwant ", Describe(want));
}

std::string Diff(const std::vector<const Grant*>& got,
                 const std::vector<Grant>& want) {
  bool same = got.size() == want.size();
  for (size_t i = 0; same && i < got.size(); ++i) same = *got[i] == want[i];
  if (same) return "";
  std::vector<std::string> g, w;
  for (const Grant* x : got) g.push_back(Describe(*x));
  for (const Grant& x : want) w.push_back(Describe(x));
  return absl::StrCat("got [", absl::StrJoin(g, ", "), "]\nwant [",
                      absl::StrJoin(w, ", "), "]");
}

// Every per-node answer of `s` against the reference; "" when all equal.
std::string DiffNodes(const FabricState& s) {
  if (s.grant_count() != s.grants().size()) return "grant_count differs";
  for (int n = 0; n < s.topology().node_count(); ++n) {
    if (!(s.ConfigFor(n) == RefConfigFor(s, n))) {
      return absl::StrCat("ConfigFor(", n, ") differs");
    }
    std::string d = Diff(s.GrantsBorrowedBy(n), RefBorrowedBy(s, n));
    if (!d.empty()) return absl::StrCat("GrantsBorrowedBy(", n, "): ", d);
    d = Diff(s.GrantsTargeting(n), RefTargeting(s, n));
    if (!d.empty()) return absl::StrCat("GrantsTargeting(", n, "): ", d);
  }
  return "";
}

// --- The property test.

// Sizes every profile used here accepts: multiples of 4 KiB up to 2 MiB
// (switchtec's largest mapping), some of them LUT multiples.
constexpr uint64_t kSizes[] = {4 * kKiB,   8 * kKiB,  60 * kKiB, 64 * kKiB,
                               128 * kKiB, 192 * kKiB, 1 * kMiB,  2 * kMiB};
constexpr uint64_t kMmioBase = 0x300'0000'0000ull;
constexpr uint64_t kMmioSize = 8 * kMiB;

// Small export regions so that targets run out; mixed profiles; device
// ranges on every third node.
FabricSpec Crowded(FabricSpec spec) {
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    if (i % 2 == 1) spec.nodes[i].profile = "switchtec";
    spec.nodes[i].export_size = (4 + 4 * (i % 3)) * kMiB;
    if (i % 3 == 1) {
      spec.nodes[i].mmio_base = kMmioBase;
      spec.nodes[i].mmio_size = kMmioSize;
    }
  }
  return spec;
}

class IndexProperty {
 public:
  IndexProperty(const Topology& topo, uint32_t seed)
      : state_(topo), rng_(seed) {}

  // One random operation on the state, then the comparisons. Returns "" or
  // the first difference from the reference.
  std::string Step(int step) {
    const int op = static_cast<int>(rng_() % 100);
    std::string d;
    if (op < 45) {
      d = PlanAndAdd(/*device=*/false);
    } else if (op < 60) {
      d = PlanAndAdd(/*device=*/true);
    } else if (op < 75) {
      Remove();
    } else if (op < 88) {
      d = AddConflicting(step);
    } else if (op < 97) {
      FlapLink();
    } else {
      Restart();
    }
    max_grants_ = std::max(max_grants_, state_.grant_count());
    if (!d.empty()) return d;
    d = DiffNodes(state_);
    if (!d.empty()) return d;
    for (int k = 0; k < 3 && d.empty(); ++k) {
      auto [b, t] = Pair();
      const uint64_t size = Size();
      d = Diff(state_.PlanGrant(b, t, size), RefPlan(state_, b, t, size, {}));
    }
    if (d.empty()) {
      const int b = Node();
      const int lender = Lender();
      if (lender != b) {
        const uint64_t size = Size();
        const uint64_t addr = *DeviceAddr(lender, size);
        d = Diff(state_.PlanDeviceGrant(b, lender, addr, size),
                 RefPlanDevice(state_, b, lender, addr, size));
      }
    }
    return d;
  }

  // Continues on a copy; the original must not change after this.
  void SwitchToCopy() {
    FabricState copy = state_;
    std::swap(copy, state_);
    saved_ = std::move(copy);
  }
  std::optional<FabricState>& saved() { return saved_; }
  FabricState& state() { return state_; }
  int restarts() const { return restarts_; }
  int added() const { return added_; }
  int conflicts() const { return conflicts_; }
  size_t max_grants() const { return max_grants_; }
  // How often planning a grant to add ended with each status code.
  const std::map<absl::StatusCode, int>& outcomes() const { return outcomes_; }

 private:
  int Node() { return static_cast<int>(rng_() % state_.topology().node_count()); }
  std::pair<int, int> Pair() {
    const int n = state_.topology().node_count();
    const int b = Node();
    return {b, (b + 1 + static_cast<int>(rng_() % (n - 1))) % n};
  }
  uint64_t Size() { return kSizes[rng_() % std::size(kSizes)]; }
  int Lender() {
    std::vector<int> lenders;
    for (int i = 0; i < state_.topology().node_count(); ++i) {
      if (state_.topology().node(i).mmio_size > 0) lenders.push_back(i);
    }
    return lenders[rng_() % lenders.size()];
  }
  // A random 4 KiB-aligned device range of `size` on `node`, if it lends.
  std::optional<uint64_t> DeviceAddr(int node, uint64_t size) {
    const NodeInfo& t = state_.topology().node(node);
    if (t.mmio_size < size) return std::nullopt;
    const uint64_t pages = (t.mmio_size - size) / (4 * kKiB) + 1;
    return t.mmio_base + rng_() % pages * 4 * kKiB;
  }

  std::string PlanAndAdd(bool device) {
    auto [b, t] = Pair();
    const uint64_t size = Size();
    absl::StatusOr<Grant> got, want;
    if (device) {
      t = Lender();
      if (t == b) return "";
      const uint64_t addr = *DeviceAddr(t, size);
      got = state_.PlanDeviceGrant(b, t, addr, size);
      want = RefPlanDevice(state_, b, t, addr, size);
    } else {
      got = state_.PlanGrant(b, t, size);
      want = RefPlan(state_, b, t, size, {});
    }
    std::string d = Diff(got, want);
    ++outcomes_[got.status().code()];
    if (!d.empty() || !got.ok()) return d;
    got->id = absl::StrFormat("g%05d", static_cast<int>(rng_() % 100000));
    if (state_.FindGrant(got->id) != nullptr) return "";
    absl::Status st = state_.AddGrant(*got);
    if (!st.ok()) return absl::StrCat("AddGrant of a plan: ", st.ToString());
    ++added_;
    return "";
  }

  void Remove() {
    std::vector<const Grant*> all = state_.grants();
    if (all.empty()) return;
    const std::string id = all[rng_() % all.size()]->id;
    EXPECT_TRUE(state_.RemoveGrant(id).ok());
  }

  // A planned grant moved onto an existing grant's slot and/or near its
  // target range.
  std::string AddConflicting(int step) {
    std::vector<const Grant*> all = state_.grants();
    if (all.empty()) return "";
    const Grant on = *all[rng_() % all.size()];
    const Topology& topo = state_.topology();
    const int n = topo.node_count();
    const int b = rng_() % 2 == 0 ? on.borrower : Node();
    int t = rng_() % 2 == 0 ? on.target : Node();
    if (t == b) t = (b + 1) % n;
    absl::StatusOr<Grant> plan = state_.PlanGrant(b, t, Size());
    if (!plan.ok()) return "";
    Grant g = *plan;
    g.id = absl::StrFormat("c%05d", step);
    const int what = static_cast<int>(rng_() % 3);
    if (what != 1 && on.borrower == b && on.slot_kind == g.slot_kind) {
      g.slot_index = on.slot_index;
      g.borrower_addr = SlotAddress(topo.node(b), g.slot_kind, g.slot_index);
    }
    if (what != 0 && on.target == t && !on.device) {
      const NodeInfo& tn = topo.node(t);
      // At or a little below `on`, so that it may overlap several grants.
      const uint64_t below = rng_() % 16 * 4 * kKiB;
      g.target_addr = std::max(tn.export_base, on.target_addr - below);
      g.fabric_addr = tn.aperture_base + (g.target_addr - tn.export_base);
    }
    const absl::Status want = RefConflict(state_, g);
    const absl::Status got = state_.AddGrant(g);
    if (got.code() == absl::StatusCode::kInvalidArgument) return "";
    if (got != want) {
      return absl::StrCat("AddGrant ", Describe(g), ": got ", got.ToString(),
                          " want ", want.ToString());
    }
    if (got.ok()) {
      ++added_;
    } else {
      ++conflicts_;
    }
    return "";
  }

  // Takes a link down, or (more often, so that most of the fabric stays
  // reachable) brings one back.
  void FlapLink() {
    const int links = static_cast<int>(state_.topology().links().size());
    int link = static_cast<int>(rng_() % links);
    if (rng_() % 3 != 0) {
      for (int k = 0; k < links && state_.link_up(link); ++k) {
        link = (link + 1) % links;
      }
    }
    const bool up = !state_.link_up(link);
    if (state_.CheckLinkChange(link, up).ok()) state_.SetLink(link, up);
  }

  // What recovery does: a fresh state, the link states, every grant.
  void Restart() {
    FabricState fresh(state_.topology());
    for (size_t l = 0; l < state_.link_states().size(); ++l) {
      fresh.SetLink(static_cast<int>(l), state_.link_up(static_cast<int>(l)));
    }
    for (const Grant* g : state_.grants()) {
      absl::Status st = fresh.AddGrant(*g);
      EXPECT_TRUE(st.ok()) << st;
    }
    state_ = std::move(fresh);
    ++restarts_;
  }

  FabricState state_;
  std::optional<FabricState> saved_;
  std::mt19937 rng_;
  int restarts_ = 0;
  int added_ = 0;
  int conflicts_ = 0;
  size_t max_grants_ = 0;
  std::map<absl::StatusCode, int> outcomes_;
};

void RunProperty(const FabricSpec& spec, int steps) {
  absl::StatusOr<Topology> topo = Topology::Build(spec);
  ASSERT_TRUE(topo.ok()) << topo.status();
  IndexProperty p(*topo, 12);
  std::vector<BridgeConfig> saved_configs;
  for (int step = 0; step < steps; ++step) {
    if (step == steps / 2) {
      p.SwitchToCopy();
      for (int n = 0; n < topo->node_count(); ++n) {
        saved_configs.push_back(p.saved()->ConfigFor(n));
      }
    }
    std::string d = p.Step(step);
    ASSERT_EQ(d, "") << "step " << step;
    if (step % 100 == 0) {
      ASSERT_TRUE(CheckInvariants(p.state()).ok())
          << "step " << step << ": " << CheckInvariants(p.state());
    }
  }
  // The original state is as it was when copied, and still self-consistent.
  ASSERT_TRUE(p.saved().has_value());
  for (int n = 0; n < topo->node_count(); ++n) {
    EXPECT_TRUE(p.saved()->ConfigFor(n) == saved_configs[n]) << n;
  }
  EXPECT_EQ(DiffNodes(*p.saved()), "");
  // Copy-assignment also yields an independent state.
  FabricState assigned(*topo);
  assigned = p.state();
  EXPECT_EQ(DiffNodes(assigned), "");
  ASSERT_GT(p.state().grant_count(), 0u);
  const std::string first = p.state().grants().front()->id;
  ASSERT_TRUE(p.state().RemoveGrant(first).ok());
  EXPECT_EQ(DiffNodes(assigned), "");
  EXPECT_EQ(assigned.grant_count(), p.state().grant_count() + 1);

  std::string outcomes;
  for (const auto& [code, count] : p.outcomes()) {
    absl::StrAppend(&outcomes, " ", absl::StatusCodeToString(code), "=", count);
  }
  std::printf("%s: %d steps, %d grants added, %d conflicts refused, %d "
              "restarts, at most %zu grants at once; plans:%s\n",
              spec.name.c_str(), steps, p.added(), p.conflicts(), p.restarts(),
              p.max_grants(), outcomes.c_str());
  EXPECT_GT(p.added(), steps / 10);
  EXPECT_GT(p.conflicts(), 0);
  // The plans saw full borrowers or targets and cut-off targets too.
  EXPECT_GT(p.outcomes().count(absl::StatusCode::kResourceExhausted), 0u);
  EXPECT_GT(p.outcomes().count(absl::StatusCode::kUnavailable), 0u);
}

TEST(FabricStateIndexTest, RingAnswersAsAScanOfAllGrants) {
  RunProperty(Crowded(RingSpec(6)), 3000);
}

TEST(FabricStateIndexTest, StarAnswersAsAScanOfAllGrants) {
  RunProperty(Crowded(StarSpec(5)), 2000);
}

// --- Scale: at 100,000 grants an operation reads only its nodes' grants.

TEST(FabricStateIndexTest, OneMoreGrantAt100kReadsOnlyTheNodesInvolved) {
  constexpr int kNodes = 4096;
  constexpr int kGrants = 100'000;
  FabricSpec spec = RingSpec(kNodes);
  spec.default_export_size = 64 * kMiB;
  absl::StatusOr<Topology> topo = Topology::Build(spec);
  ASSERT_TRUE(topo.ok()) << topo.status();
  FabricState s(*topo);
  // Borrower i % N takes 1 MiB from one of its next three nodes: about 24
  // grants per borrower (8 windows, the rest LUT slots) and per target.
  for (int i = 0; i < kGrants; ++i) {
    const int b = i % kNodes;
    const int t = (b + 1 + (i / kNodes) % 3) % kNodes;
    absl::StatusOr<Grant> g = s.PlanGrant(b, t, kMiB);
    ASSERT_TRUE(g.ok()) << i << ": " << g.status();
    g->id = absl::StrFormat("g%06d", i);
    ASSERT_TRUE(s.AddGrant(*g).ok()) << i;
  }
  ASSERT_EQ(s.grant_count(), static_cast<size_t>(kGrants));
  const uint64_t build = s.grants_visited();

  const int b = 17;
  const int t = 18;
  uint64_t before = s.grants_visited();
  absl::StatusOr<Grant> g = s.PlanGrant(b, t, kMiB);
  ASSERT_TRUE(g.ok()) << g.status();
  const uint64_t plan = s.grants_visited() - before;
  g->id = "one-more";
  before = s.grants_visited();
  ASSERT_TRUE(s.AddGrant(*g).ok());
  const uint64_t add = s.grants_visited() - before;
  before = s.grants_visited();
  const BridgeConfig config = s.ConfigFor(b);
  const uint64_t config_for = s.grants_visited() - before;
  // Every grant of b uses one slot.
  EXPECT_EQ(config.windows.size(), s.GrantsBorrowedBy(b).size());
  EXPECT_EQ(config.inbound.size(), s.GrantsTargeting(b).size());

  // The grants of the nodes involved, counted after the fact.
  const size_t involved =
      s.GrantsBorrowedBy(b).size() + s.GrantsTargeting(b).size() +
      s.GrantsBorrowedBy(t).size() + s.GrantsTargeting(t).size();
  EXPECT_LE(plan, s.GrantsTargeting(t).size());
  EXPECT_LE(add, 4u);
  EXPECT_LE(config_for,
            s.GrantsBorrowedBy(b).size() + s.GrantsTargeting(b).size());
  EXPECT_LE(plan + add + config_for, involved);
  EXPECT_LT(involved, 200u);

  // Recovery: a fresh state takes every grant back, reading O(1) each.
  FabricState fresh(*topo);
  before = fresh.grants_visited();
  for (const Grant* x : s.grants()) ASSERT_TRUE(fresh.AddGrant(*x).ok());
  const uint64_t restore = fresh.grants_visited() - before;
  EXPECT_LE(restore, 2u * s.grant_count());
  EXPECT_TRUE(fresh.ConfigFor(b) == config);
  ASSERT_TRUE(CheckInvariants(fresh).ok()) << CheckInvariants(fresh);

  std::printf("100k grants: building read %llu grants (%.1f per grant); one "
              "more grant: plan %llu, add %llu, ConfigFor %llu (nodes "
              "involved hold %zu grants); restoring all read %llu\n",
              static_cast<unsigned long long>(build),
              static_cast<double>(build) / kGrants,
              static_cast<unsigned long long>(plan),
              static_cast<unsigned long long>(add),
              static_cast<unsigned long long>(config_for), involved,
              static_cast<unsigned long long>(restore));
}

// --- Scale: a target holding thousands of grants finds a free range, or
// reports that there is none, reading O(log n) of its free ranges.

TEST(FabricStateIndexTest, PlanOnATargetWith5000GrantsReadsFewRanges) {
  constexpr int kTaken = 10'000;  // 1 MiB each, 40 per borrower.
  constexpr int kBorrowers = kTaken / 40;
  FabricSpec spec = RingSpec(kBorrowers + 1);
  spec.nodes[0].export_size = kTaken * kMiB;  // Exactly filled.
  absl::StatusOr<Topology> topo = Topology::Build(spec);
  ASSERT_TRUE(topo.ok()) << topo.status();
  FabricState s(*topo);
  const int t = 0;
  const NodeInfo& tn = topo->node(t);
  for (int i = 0; i < kTaken; ++i) {
    absl::StatusOr<Grant> g = s.PlanGrant(1 + i / 40, t, kMiB);
    ASSERT_TRUE(g.ok()) << i << ": " << g.status();
    ASSERT_EQ(g->target_addr, tn.export_base + i * kMiB) << i;
    g->id = absl::StrFormat("g%05d", i);
    ASSERT_TRUE(s.AddGrant(*g).ok()) << i;
  }
  // Every other grant goes: 5,000 grants and 5,000 free ranges of 1 MiB.
  for (int i = 0; i < kTaken; i += 2) {
    ASSERT_TRUE(s.RemoveGrant(absl::StrFormat("g%05d", i)).ok()) << i;
  }
  ASSERT_EQ(s.GrantsTargeting(t).size(), 5000u);

  // 1 MiB fits in the first hole.
  uint64_t before = s.grants_visited();
  absl::StatusOr<Grant> small = s.PlanGrant(1, t, kMiB);
  const uint64_t plan_small = s.grants_visited() - before;
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->target_addr, tn.export_base);
  EXPECT_EQ(Diff(small, RefPlan(s, 1, t, kMiB, {})), "");
  // Nothing holds 2 MiB: the message still gives the largest free range
  // and the grant count. (Borrower 1's free LUT slots are not contiguous:
  // only a window is tried.)
  before = s.grants_visited();
  absl::StatusOr<Grant> big = s.PlanGrant(1, t, 2 * kMiB);
  const uint64_t plan_big = s.grants_visited() - before;
  EXPECT_EQ(Diff(big, RefPlan(s, 1, t, 2 * kMiB, {})), "");
  EXPECT_EQ(std::string(big.status().message()),
            absl::StrCat("target: no free range of 2 MiB aligned to 4 KiB in "
                         "the export region [",
                         FormatAddr(tn.export_base), ", ",
                         FormatAddr(tn.export_base + kTaken * kMiB),
                         ") of node n0; largest free range is 1 MiB (5000 "
                         "grants on it)"));
  // Two neighbouring grants go near the end: 2 MiB fits there, past 4,998
  // holes too small for it.
  ASSERT_TRUE(s.RemoveGrant("g09997").ok());
  ASSERT_TRUE(s.RemoveGrant("g09999").ok());
  before = s.grants_visited();
  absl::StatusOr<Grant> late = s.PlanGrant(1, t, 2 * kMiB);
  const uint64_t plan_late = s.grants_visited() - before;
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->target_addr, tn.export_base + 9996 * kMiB);
  EXPECT_EQ(Diff(late, RefPlan(s, 1, t, 2 * kMiB, {})), "");

  EXPECT_LT(plan_small, 100u);
  EXPECT_LT(plan_big, 100u);
  EXPECT_LT(plan_late, 100u);
  std::printf("5,000 grants and 5,000 free ranges on one target: plan read "
              "%llu (first hole), %llu (no fit), %llu (fit past 4,998 "
              "holes)\n",
              static_cast<unsigned long long>(plan_small),
              static_cast<unsigned long long>(plan_big),
              static_cast<unsigned long long>(plan_late));
}

}  // namespace
}  // namespace fabric::core
