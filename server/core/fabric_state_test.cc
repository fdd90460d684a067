#include "server/core/fabric_state.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/profiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/invariants.h"
#include "server/core/test_util.h"

namespace fabric::core {
namespace {

using ::fabric::core::testing::RingSpec;
using ::fabric::core::testing::StarSpec;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

Topology MustBuild(const FabricSpec& spec) {
  absl::StatusOr<Topology> t = Topology::Build(spec);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

// Plans and adds a grant with `id`; fails the test if either step fails.
Grant MustGrant(FabricState& s, int borrower, int target, uint64_t size,
                const std::string& id) {
  absl::StatusOr<Grant> g = s.PlanGrant(borrower, target, size);
  EXPECT_TRUE(g.ok()) << g.status();
  if (!g.ok()) return {};
  g->id = id;
  absl::Status st = s.AddGrant(*g);
  EXPECT_TRUE(st.ok()) << st;
  return *g;
}

void ExpectError(const absl::StatusOr<Grant>& g, absl::StatusCode code,
                 const std::string& substr) {
  ASSERT_FALSE(g.ok()) << "expected " << substr;
  EXPECT_EQ(g.status().code(), code) << g.status();
  EXPECT_THAT(std::string(g.status().message()), HasSubstr(substr));
}

void ExpectError(const absl::Status& s, absl::StatusCode code,
                 const std::string& substr) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(substr));
}

TEST(FabricStateTest, PlansADirectWindow) {
  FabricState s(MustBuild(RingSpec(4)));
  ASSERT_TRUE(CheckInvariants(s).ok());
  absl::StatusOr<Grant> g = s.PlanGrant(0, 2, 64 * kMiB);
  ASSERT_TRUE(g.ok()) << g.status();
  const Topology& t = s.topology();
  EXPECT_TRUE(g->id.empty());
  EXPECT_EQ(g->slot_kind, SlotKind::kWindow);
  EXPECT_EQ(g->slot_index, 0);
  EXPECT_EQ(g->slot_count, 1);
  EXPECT_EQ(g->target_addr, t.node(2).export_base);
  EXPECT_EQ(g->fabric_addr, t.node(2).aperture_base);
  EXPECT_EQ(g->borrower_addr, t.node(0).window_base);
  EXPECT_TRUE(s.grants().empty());  // Planning changes nothing.

  g->id = "g1";
  ASSERT_TRUE(s.AddGrant(*g).ok());
  Grant g2 = MustGrant(s, 0, 2, 4 * kKiB, "g2");
  EXPECT_EQ(g2.slot_index, 1);
  EXPECT_EQ(g2.borrower_addr, t.node(0).window_base + kGiB);
  EXPECT_EQ(g2.target_addr, t.node(2).export_base + 64 * kMiB);
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);

  BridgeConfig b = s.ConfigFor(0);
  ASSERT_EQ(b.windows.size(), 2u);
  EXPECT_EQ(b.windows[0].xlat, g->fabric_addr);
  BridgeConfig tc = s.ConfigFor(2);
  ASSERT_EQ(tc.inbound.size(), 2u);
  EXPECT_EQ(tc.inbound[0].grant_id, "g1");
  EXPECT_EQ(tc.inbound[0].borrower, 0);
  EXPECT_EQ(s.GrantPath(*g), (std::vector<int>{0, 3, 2}));  // Tie: port 1.
  EXPECT_EQ(s.FindGrant("g2")->size, 4 * kKiB);
  EXPECT_EQ(s.FindGrant("nope"), nullptr);
  ASSERT_EQ(s.grants().size(), 2u);
  EXPECT_EQ(s.grants()[0]->id, "g1");

  ASSERT_TRUE(s.RemoveGrant("g1").ok());
  ExpectError(s.RemoveGrant("g1"), absl::StatusCode::kNotFound, "g1");
  ASSERT_TRUE(CheckInvariants(s).ok());
}

TEST(FabricStateTest, InvalidRequests) {
  FabricState s(MustBuild(RingSpec(3)));
  ExpectError(s.PlanGrant(0, 0, 4 * kKiB), absl::StatusCode::kInvalidArgument,
              "borrower == target");
  ExpectError(s.PlanGrant(0, 1, 0), absl::StatusCode::kInvalidArgument,
              "size: must be greater than 0");
  ExpectError(s.PlanGrant(0, 1, 5000), absl::StatusCode::kInvalidArgument,
              "size: 5000 bytes is not a multiple of the 4 KiB granularity of "
              "profile sim on node n0");
  ExpectError(s.PlanGrant(0, 7, 4096), absl::StatusCode::kInvalidArgument,
              "target: node 7 is out of range");
  ExpectError(s.PlanGrant(-1, 1, 4096), absl::StatusCode::kInvalidArgument,
              "borrower: node -1 is out of range");
  ExpectError(s.PlanGrant(0, 1, 2 * kGiB), absl::StatusCode::kResourceExhausted,
              "size: 2 GiB is bigger than any window profile sim on node n0 "
              "allows");
  // Every shipped profile has min_window_size == size_granularity, so the
  // "below the smallest window" check cannot trigger from PlanGrant; it is
  // covered by the granularity check.
  for (const HardwareProfile& p : AllProfiles()) {
    EXPECT_EQ(p.min_window_size % p.size_granularity, 0u) << p.name;
  }
}

TEST(FabricStateTest, WindowsThenLutThenExhausted) {
  FabricState s(MustBuild(RingSpec(3)));
  for (int i = 0; i < 8; ++i)
    MustGrant(s, 0, 1, 4 * kKiB, absl::StrCat("w", i));
  ExpectError(s.PlanGrant(0, 1, 4 * kKiB), absl::StatusCode::kResourceExhausted,
              "8 of 8 direct windows in use");
  // 1 MiB fits LUT slots once the direct windows are gone.
  Grant lut = MustGrant(s, 0, 1, 3 * kMiB, "l0");
  EXPECT_EQ(lut.slot_kind, SlotKind::kLut);
  EXPECT_EQ(lut.slot_index, 0);
  EXPECT_EQ(lut.slot_count, 3);
  EXPECT_EQ(lut.fabric_addr % kMiB, 0u);
  EXPECT_EQ(lut.borrower_addr, s.topology().node(0).window_base + 8 * kGiB);
  for (int i = 1; i < 30; ++i) MustGrant(s, 0, 2, kMiB, absl::StrCat("l", i));
  ExpectError(s.PlanGrant(0, 2, kMiB), absl::StatusCode::kResourceExhausted,
              "32 of 32 LUT slots in use");
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);
  EXPECT_EQ(s.ConfigFor(0).windows.size(), 8u + 32u);
  // Free a hole of 1 slot: a 2 MiB request needs 2 contiguous slots.
  ASSERT_TRUE(s.RemoveGrant("l5").ok());
  ExpectError(s.PlanGrant(0, 2, 2 * kMiB), absl::StatusCode::kResourceExhausted,
              "no run of 2 contiguous free slots");
  EXPECT_TRUE(s.PlanGrant(0, 2, kMiB).ok());
}

TEST(FabricStateTest, TargetRangeExhausted) {
  FabricState s(MustBuild(RingSpec(3)));
  MustGrant(s, 1, 0, 768 * kMiB, "a");
  ExpectError(s.PlanGrant(2, 0, 512 * kMiB),
              absl::StatusCode::kResourceExhausted,
              "largest free range is 256 MiB");
  Grant b = MustGrant(s, 2, 0, 256 * kMiB, "b");
  EXPECT_EQ(b.target_addr, s.topology().node(0).export_base + 768 * kMiB);
  ExpectError(s.PlanGrant(2, 0, 4 * kKiB), absl::StatusCode::kResourceExhausted,
              "no free range of 4 KiB aligned to 4 KiB in the export region");
  // First fit reuses the freed hole.
  ASSERT_TRUE(s.RemoveGrant("a").ok());
  Grant c = MustGrant(s, 2, 0, 4 * kKiB, "c");
  EXPECT_EQ(c.target_addr, s.topology().node(0).export_base);
}

TEST(FabricStateTest, Gen1AlignsToTheBar) {
  FabricSpec spec = RingSpec(3);
  spec.nodes[0].profile = "intel-xeon-gen1";
  FabricState s(MustBuild(spec));
  MustGrant(s, 1, 2, 4 * kKiB, "other");  // Takes offset 0 of n2.
  ExpectError(s.PlanGrant(0, 2, 4 * kKiB), absl::StatusCode::kResourceExhausted,
              "aligned to 1 GiB");
  Grant g = MustGrant(s, 0, 1, 4 * kKiB, "g");
  EXPECT_EQ(g.fabric_addr % kGiB, 0u);
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);
}

TEST(FabricStateTest, SwitchtecFallsBackToLut) {
  FabricState s(MustBuild(RingSpec(3, "switchtec")));
  ExpectError(s.PlanGrant(0, 1, 4 * kMiB), absl::StatusCode::kResourceExhausted,
              "bigger than any window");
  EXPECT_EQ(MustGrant(s, 0, 1, 2 * kMiB, "a").slot_kind, SlotKind::kWindow);
  EXPECT_EQ(MustGrant(s, 0, 1, 2 * kMiB, "b").slot_kind, SlotKind::kWindow);
  Grant c = MustGrant(s, 0, 1, 2 * kMiB, "c");
  EXPECT_EQ(c.slot_kind, SlotKind::kLut);
  EXPECT_EQ(c.slot_count, 32);
  ExpectError(s.PlanGrant(0, 1, 64 * kKiB),
              absl::StatusCode::kResourceExhausted,
              "2 of 2 direct windows in use; 32 of 32 LUT slots in use");
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);
}

TEST(FabricStateTest, UnreachableTarget) {
  FabricState s(MustBuild(RingSpec(4)));
  EXPECT_TRUE(s.SetLink(0, false));
  EXPECT_FALSE(s.SetLink(0, false));
  EXPECT_TRUE(s.PlanGrant(0, 2, 4 * kKiB).ok());  // Goes the other way.
  Grant g = MustGrant(s, 1, 2, 4 * kKiB, "g");
  EXPECT_TRUE(s.SetLink(2, false));
  ExpectError(s.PlanGrant(0, 2, 4 * kKiB), absl::StatusCode::kUnavailable,
              "target: node n2 is unreachable from borrower node n0; links "
              "down: n0--n1, n2--n3");
  EXPECT_TRUE(s.GrantPath(g).has_value());
  EXPECT_TRUE(s.SetLink(1, false));
  EXPECT_FALSE(s.GrantPath(g).has_value());
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);
  EXPECT_TRUE(s.SetLink(1, true));
  EXPECT_EQ(s.GrantPath(g), (std::vector<int>{1, 2}));
  EXPECT_TRUE(s.link_up(1));
  EXPECT_FALSE(s.link_up(2));
}

TEST(FabricStateTest, StarPathsGoThroughTheHub) {
  FabricState s(MustBuild(StarSpec(4)));
  Grant g = MustGrant(s, 1, 3, 16 * kMiB, "g");
  EXPECT_EQ(s.GrantPath(g), (std::vector<int>{1, 0, 3}));
  Grant h = MustGrant(s, 0, 2, 16 * kMiB, "h");
  EXPECT_EQ(s.GrantPath(h), (std::vector<int>{0, 2}));
  s.SetLink(*s.topology().FindLink("m", "s2"), false);
  ExpectError(s.PlanGrant(1, 3, 4 * kKiB), absl::StatusCode::kUnavailable,
              "links down: m--s2");
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);
}

TEST(FabricStateTest, AddGrantRejectsBadGrants) {
  FabricState s(MustBuild(RingSpec(3)));
  Grant g = MustGrant(s, 0, 1, 64 * kMiB, "g");
  absl::StatusOr<Grant> plan = s.PlanGrant(0, 1, 64 * kMiB);
  ASSERT_TRUE(plan.ok());

  Grant bad = *plan;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kInvalidArgument,
              "id: a grant needs an id");
  bad.id = "g";
  ExpectError(s.AddGrant(bad), absl::StatusCode::kAlreadyExists, "g");

  bad = *plan;
  bad.id = "x";
  bad.slot_index = g.slot_index;
  bad.borrower_addr = g.borrower_addr;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kFailedPrecondition,
              "window slot 0 on node n0 is used by grant g");

  bad = *plan;
  bad.id = "x";
  bad.target_addr = g.target_addr + 4 * kKiB;
  bad.fabric_addr = g.fabric_addr + 4 * kKiB;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kFailedPrecondition,
              "overlaps grant g");

  bad = *plan;
  bad.id = "x";
  bad.borrower_addr += 4096;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kInvalidArgument,
              "borrower_addr");

  bad = *plan;
  bad.id = "x";
  bad.fabric_addr += 4096;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kInvalidArgument,
              "does not match target_addr");

  bad = *plan;
  bad.id = "x";
  bad.slot_index = 8;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kInvalidArgument,
              "slot_index: window 8 outside 0..7");

  bad = *plan;
  bad.id = "x";
  bad.target_addr = s.topology().node(1).export_base + kGiB - 4 * kKiB;
  bad.fabric_addr = s.topology().node(1).aperture_base + kGiB - 4 * kKiB;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kInvalidArgument,
              "outside the export region");

  bad = *plan;
  bad.id = "x";
  bad.size = 5000;
  ExpectError(s.AddGrant(bad), absl::StatusCode::kInvalidArgument,
              "granularity");

  Grant ok = *plan;
  ok.id = "x";
  EXPECT_TRUE(s.AddGrant(ok).ok());
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);
}

// A fabric under test, with the allowed sizes for random requests.
struct Scenario {
  std::string label;
  FabricSpec spec;
};

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> out;
  const std::vector<std::string> profiles = {
      "sim", "amd", "idt", "intel-xeon-gen4", "switchtec", "intel-xeon-gen1"};
  int k = 0;
  for (int n : {2, 3, 4, 5, 7, 8, 16, 31, 64, 100, 128, 255, 256}) {
    FabricSpec spec = RingSpec(n, profiles[k % profiles.size()]);
    for (int i = 0; i < n; ++i) {
      if ((i + k) % 3 == 1) spec.nodes[i].profile = profiles[(i + k) % 6];
      if ((i + k) % 4 == 2) spec.nodes[i].export_size = 256 * kMiB;
    }
    out.push_back({absl::StrCat("ring", n), spec});
    ++k;
  }
  for (int servers : {1, 2, 3, 5, 8, 15, 16, 32}) {
    std::string hub = servers < 15 ? profiles[k % 6] : (k % 2 ? "idt" : "sim");
    FabricSpec spec = StarSpec(servers, profiles[(k + 1) % 6], hub);
    for (int i = 1; i <= servers; ++i) {
      if (i % 3 == 0) spec.nodes[i].profile = profiles[(i + k) % 6];
      if (i % 4 == 1) spec.nodes[i].export_size = 64 * kMiB;
    }
    out.push_back({absl::StrCat("star", servers), spec});
    ++k;
  }
  return out;
}

// Runs a random mix of grants, removals and link flaps, checking the
// invariants after every step; then checks that replaying the grants into a
// fresh state reproduces the bridge configs.
struct RandomStats {
  int added = 0;
  int lut = 0;
  int invalid = 0;
  int exhausted = 0;
  int unavailable = 0;
  int cut_off_checks = 0;  // Invariant checks run with a cut-off grant live.
};

void RunRandom(const Scenario& sc, uint32_t seed, int steps,
               RandomStats* stats) {
  SCOPED_TRACE(absl::StrCat(sc.label, " seed ", seed));
  FabricState s(MustBuild(sc.spec));
  const Topology& topo = s.topology();
  const int n = topo.node_count();
  const int links = static_cast<int>(topo.links().size());
  std::mt19937 rng(seed);
  auto pick = [&](int bound) {
    return static_cast<int>(rng() % static_cast<uint32_t>(bound));
  };
  const std::vector<uint64_t> sizes = {4 * kKiB,   64 * kKiB, kMiB,
                                       2 * kMiB,   3 * kMiB,  16 * kMiB,
                                       128 * kMiB, kGiB,      5000};
  int next_id = 0;
  int planned = 0;
  for (int step = 0; step < steps; ++step) {
    int op = pick(100);
    std::string what;
    if (op < 55 || s.grants().empty()) {
      int b = pick(n);
      int t = pick(n);
      uint64_t size = sizes[pick(static_cast<int>(sizes.size()))];
      what = absl::StrCat("plan ", b, "->", t, " ", size);
      absl::StatusOr<Grant> g = s.PlanGrant(b, t, size);
      if (g.ok()) {
        g->id = absl::StrFormat("g%05d", next_id++);
        absl::Status added = s.AddGrant(*g);
        ASSERT_TRUE(added.ok()) << what << ": " << added;
        ++planned;
        ++stats->added;
        if (g->slot_kind == SlotKind::kLut) ++stats->lut;
      } else {
        absl::StatusCode c = g.status().code();
        if (c == absl::StatusCode::kInvalidArgument) ++stats->invalid;
        if (c == absl::StatusCode::kResourceExhausted) ++stats->exhausted;
        if (c == absl::StatusCode::kUnavailable) ++stats->unavailable;
        ASSERT_TRUE(c == absl::StatusCode::kInvalidArgument ||
                    c == absl::StatusCode::kResourceExhausted ||
                    c == absl::StatusCode::kUnavailable)
            << g.status();
        if (c == absl::StatusCode::kUnavailable) {
          ASSERT_FALSE(s.map().Path(b, t).has_value());
        }
        if (b != t && s.map().Path(b, t).has_value()) {
          ASSERT_NE(c, absl::StatusCode::kUnavailable);
        }
      }
    } else if (op < 75) {
      auto gs = s.grants();
      std::string id = gs[pick(static_cast<int>(gs.size()))]->id;
      what = absl::StrCat("remove ", id);
      ASSERT_TRUE(s.RemoveGrant(id).ok());
    } else if (op < 88) {
      int l = pick(links);
      what = absl::StrCat("down ", l);
      s.SetLink(l, false);
    } else {
      std::vector<int> down;
      for (int l = 0; l < links; ++l) {
        if (!s.link_up(l)) down.push_back(l);
      }
      if (down.empty()) continue;
      int l = down[pick(static_cast<int>(down.size()))];
      what = absl::StrCat("up ", l);
      s.SetLink(l, true);
    }
    for (const Grant* g : s.grants()) {
      if (!s.GrantPath(*g).has_value()) {
        ++stats->cut_off_checks;
        break;
      }
    }
    absl::Status inv = CheckInvariants(s);
    ASSERT_TRUE(inv.ok()) << "after step " << step << " (" << what
                          << "): " << inv;
  }
  EXPECT_GT(planned, 0);

  FabricState restored(MustBuild(sc.spec));
  for (int l = 0; l < links; ++l) restored.SetLink(l, s.link_up(l));
  // Replay in reverse id order: restoring must not depend on order.
  auto gs = s.grants();
  for (auto it = gs.rbegin(); it != gs.rend(); ++it) {
    absl::Status st = restored.AddGrant(**it);
    ASSERT_TRUE(st.ok()) << st;
  }
  for (int v = 0; v < n; ++v) {
    ASSERT_TRUE(restored.ConfigFor(v) == s.ConfigFor(v)) << "node " << v;
  }
  ASSERT_TRUE(CheckInvariants(restored).ok());
}

TEST(FabricStateRandomTest, RingsAndStars) {
  RandomStats stats;
  for (const Scenario& sc : Scenarios()) {
    int n = static_cast<int>(sc.spec.nodes.size());
    int steps = n >= 100 ? 80 : 200;
    for (uint32_t seed : {1u, 7u, 42u}) {
      RunRandom(sc, seed, steps, &stats);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  std::printf(
      "random: %d grants added (%d on LUT slots); refused %d invalid, %d "
      "exhausted, %d unavailable; %d checks with a cut-off grant live\n",
      stats.added, stats.lut, stats.invalid, stats.exhausted, stats.unavailable,
      stats.cut_off_checks);
  EXPECT_GT(stats.lut, 0);
  EXPECT_GT(stats.exhausted, 0);
  EXPECT_GT(stats.unavailable, 0);
  EXPECT_GT(stats.cut_off_checks, 0);
}


// A ring of 3 whose node n1 lends devices from [3 TiB, +64 GiB).
FabricSpec DeviceRing() {
  FabricSpec spec = RingSpec(3);
  spec.nodes[1].mmio_base = 0x300'0000'0000ull;
  spec.nodes[1].mmio_size = 64 * kGiB;
  return spec;
}

TEST(FabricStateTest, DeviceGrantReachesTheLendersDeviceRange) {
  FabricState s(MustBuild(DeviceRing()));
  const NodeInfo& lender = s.topology().node(1);
  EXPECT_EQ(lender.mmio_aperture_base,
            lender.aperture_base + lender.aperture_size / 2);
  // A memory grant and a device grant from n0 into n1 coexist.
  Grant mem = MustGrant(s, 0, 1, 64 * kKiB, "mem");
  absl::StatusOr<Grant> g =
      s.PlanDeviceGrant(0, 1, 0x300'0001'0000ull, 64 * kKiB);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->device);
  EXPECT_EQ(g->target_addr, 0x300'0001'0000ull);
  EXPECT_EQ(g->fabric_addr, lender.mmio_aperture_base + 0x1'0000);
  g->id = "bar";
  ASSERT_TRUE(s.AddGrant(*g).ok());
  ASSERT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);

  // Bytes written at the borrower's window land on the BAR's address.
  std::vector<BridgeConfig> configs;
  for (int i = 0; i < 3; ++i) configs.push_back(s.ConfigFor(i));
  WalkResult w = WalkAccess(s.topology(), s.link_states(), configs, 0,
                            g->borrower_addr + 0x40, 4);
  ASSERT_TRUE(w.landed) << w.fault;
  EXPECT_EQ(w.node, 1);
  EXPECT_EQ(w.addr, 0x300'0001'0040ull);
  WalkResult m = WalkAccess(s.topology(), s.link_states(), configs, 0,
                            mem.borrower_addr, 8);
  ASSERT_TRUE(m.landed);
  EXPECT_EQ(m.addr, mem.target_addr);

  // The same BAR cannot be granted twice; another one can.
  ExpectError(s.PlanDeviceGrant(2, 1, 0x300'0001'0000ull, 64 * kKiB),
              absl::StatusCode::kFailedPrecondition, "already granted by bar");
  EXPECT_TRUE(s.PlanDeviceGrant(2, 1, 0x300'0002'0000ull, 64 * kKiB).ok());
  // Removing the grant frees the range.
  ASSERT_TRUE(s.RemoveGrant("bar").ok());
  EXPECT_TRUE(s.PlanDeviceGrant(2, 1, 0x300'0001'0000ull, 64 * kKiB).ok());
}

TEST(FabricStateTest, DeviceGrantRejectsBadRanges) {
  FabricState s(MustBuild(DeviceRing()));
  ExpectError(s.PlanDeviceGrant(1, 0, 0x300'0000'0000ull, 64 * kKiB),
              absl::StatusCode::kInvalidArgument, "no device MMIO range");
  ExpectError(s.PlanDeviceGrant(0, 1, 0x2ff'ffff'0000ull, 64 * kKiB),
              absl::StatusCode::kInvalidArgument, "outside the device range");
  ExpectError(s.PlanDeviceGrant(0, 1, 0x300'0000'0800ull, 4 * kKiB),
              absl::StatusCode::kInvalidArgument, "is not aligned to");
  ExpectError(s.PlanDeviceGrant(1, 1, 0x300'0000'0000ull, 4 * kKiB),
              absl::StatusCode::kInvalidArgument, "borrower == target");
}

TEST(FabricStateTest, DeviceRangeMustNotOverlapTheExportRegion) {
  FabricSpec spec = RingSpec(2);
  spec.nodes[0].mmio_base = kDefaultExportBase;
  spec.nodes[0].mmio_size = kGiB;
  absl::StatusOr<Topology> t = Topology::Build(spec);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()),
              HasSubstr("nodes[0].mmio_base"));
}

// --- Map capacity in every link state.

// Gives every odd-numbered node a 1 GiB device range, so its bridge holds a
// second claim.
FabricSpec WithDeviceRanges(FabricSpec spec) {
  for (size_t i = 1; i < spec.nodes.size(); i += 2) {
    spec.nodes[i].mmio_base = 0x300'0000'0000ull;
    spec.nodes[i].mmio_size = kGiB;
  }
  return spec;
}

// Adds up to `attempts` 4 KiB grants between random distinct nodes (every
// other one a device grant when the target has a device range), so that the
// invariant checks walk real data paths. Returns how many were added.
int AddRandomGrants(FabricState& s, std::mt19937& rng, int attempts) {
  const Topology& topo = s.topology();
  const int n = topo.node_count();
  int added = 0;
  for (int k = 0; k < attempts; ++k) {
    const int b = static_cast<int>(rng() % n);
    const int t = (b + 1 + static_cast<int>(rng() % (n - 1))) % n;
    const NodeInfo& target = topo.node(t);
    absl::StatusOr<Grant> g =
        target.mmio_size > 0 && k % 2 == 0
            ? s.PlanDeviceGrant(b, t, target.mmio_base + k * 64 * kKiB,
                                4 * kKiB)
            : s.PlanGrant(b, t, 4 * kKiB);
    // The borrower's slots may be full, or a device range misaligned for it.
    if (!g.ok()) continue;
    g->id = absl::StrFormat("g%04d", k);
    absl::Status st = s.AddGrant(*g);
    EXPECT_TRUE(st.ok()) << st;
    added += st.ok();
  }
  return added;
}

// The connected component of every node over up links.
std::vector<int> Components(const Topology& topo,
                            const std::vector<bool>& up) {
  const int n = topo.node_count();
  std::vector<int> comp(n, -1);
  std::vector<int> stack;
  for (int root = 0; root < n; ++root) {
    if (comp[root] >= 0) continue;
    comp[root] = root;
    stack.push_back(root);
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      for (const Topology::PortLink& pl : topo.ports(v)) {
        if (up[pl.link] && comp[pl.peer] < 0) {
          comp[pl.peer] = root;
          stack.push_back(pl.peer);
        }
      }
    }
  }
  return comp;
}

// Checks what must hold in every link state of `s`: each bridge's map fits
// its chip's mapping entries, the invariant checker passes (granted bytes
// land, cut-off ones fault), and AddressMap::Path finds a path exactly
// between nodes connected over up links (checked from a few sources).
// Returns the largest number of forward entries on any bridge.
int ExpectLinkStateSafe(const FabricState& s, std::mt19937& rng) {
  const Topology& topo = s.topology();
  const int n = topo.node_count();
  int max_forwards = 0;
  for (int v = 0; v < n; ++v) {
    const BridgeConfig c = s.ConfigFor(v);
    const HardwareProfile& p = *topo.node(v).profile;
    EXPECT_LE(static_cast<int>(c.map.size()), p.mapping_entries)
        << "bridge " << topo.node(v).name << " (profile " << p.name << ")";
    int forwards = 0;
    for (const MapEntry& e : c.map) {
      forwards += e.kind == MapEntry::Kind::kForward;
    }
    max_forwards = std::max(max_forwards, forwards);
  }
  absl::Status inv = CheckInvariants(s);
  EXPECT_TRUE(inv.ok()) << inv;
  const std::vector<int> comp = Components(topo, s.link_states());
  for (int from : {0, n - 1, static_cast<int>(rng() % n)}) {
    for (int to = 0; to < n; ++to) {
      EXPECT_EQ(s.map().Path(from, to).has_value(), comp[from] == comp[to])
          << topo.node(from).name << " -> " << topo.node(to).name;
    }
  }
  return max_forwards;
}

constexpr int kExhaustiveLinks = 10;

// Walks `s` through link states and calls `check()` in each, starting with
// the current one. With at most kExhaustiveLinks links: every state, in
// Gray-code order (one link flip apart). Otherwise 3 * `flips` random flips
// in three phases that set a random link down with probability 10%, 50%,
// then 90% (and up otherwise), so sparse and dense failures both occur.
template <typename Check>
void ForLinkStates(FabricState& s, std::mt19937& rng, int flips, Check check) {
  const int links = static_cast<int>(s.topology().links().size());
  check();
  if (links <= kExhaustiveLinks) {
    for (uint32_t i = 1; i < (1u << links); ++i) {
      const int l = __builtin_ctz(i);
      s.SetLink(l, !s.link_up(l));
      check();
      if (::testing::Test::HasFailure()) return;
    }
    return;
  }
  for (uint32_t down_pct : {10u, 50u, 90u}) {
    for (int k = 0; k < flips; ++k) {
      const int l = static_cast<int>(rng() % links);
      if (!s.SetLink(l, rng() % 100 >= down_pct)) continue;
      check();
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(LinkStatePropertyTest, RingMapsFitTheChipInEveryLinkState) {
  std::mt19937 rng(20240611);
  int max_forwards = 0;
  int states = 0;
  for (const HardwareProfile& p : AllProfiles()) {
    for (int n : {2, 3, 4, 5, 6, 7, 8, 10, 16, 33, 64, 256}) {
      for (bool devices : {false, true}) {
        FabricSpec spec = RingSpec(n, p.name);
        if (devices) spec = WithDeviceRanges(spec);
        SCOPED_TRACE(absl::StrCat("ring of ", n, " ", p.name,
                                  devices ? " with device ranges" : ""));
        FabricState s(MustBuild(spec));
        EXPECT_GT(AddRandomGrants(s, rng, 2 * n), 0);
        ForLinkStates(s, rng, n >= 256 ? 15 : 60, [&] {
          ++states;
          max_forwards = std::max(max_forwards, ExpectLinkStateSafe(s, rng));
        });
        if (HasFailure()) return;
      }
    }
  }
  std::printf("ring: %d link states checked; at most %d forward entries\n",
              states, max_forwards);
  // The bound AddressMap documents: one arc split twice.
  EXPECT_EQ(max_forwards, 3);
}

// The largest ring, with every profile on its nodes in turn.
TEST(LinkStatePropertyTest, LargestRingFitsTheChipInSomeLinkStates) {
  FabricSpec spec = RingSpec(kMaxNodes);
  for (int i = 0; i < kMaxNodes; ++i) {
    spec.nodes[i].profile = AllProfiles()[i % AllProfiles().size()].name;
  }
  FabricState s(MustBuild(spec));
  std::mt19937 rng(7);
  EXPECT_GT(AddRandomGrants(s, rng, 64), 0);
  int states = 0;
  int max_forwards = 0;
  ForLinkStates(s, rng, 1, [&] {
    ++states;
    max_forwards = std::max(max_forwards, ExpectLinkStateSafe(s, rng));
  });
  EXPECT_GE(states, 3);
  EXPECT_LE(max_forwards, 3);
}

TEST(LinkStatePropertyTest, StarMapsFitTheChipInEveryLinkState) {
  std::mt19937 rng(20240612);
  int states = 0;
  for (const HardwareProfile& hub : AllProfiles()) {
    // The hub has one claim plus one forward per server.
    const int most = hub.mapping_entries - 1;
    for (const HardwareProfile& server : AllProfiles()) {
      for (int servers : {1, 2, 3, 9, most / 2, most}) {
        for (bool devices : {false, true}) {
          FabricSpec spec = StarSpec(servers, server.name, hub.name);
          if (devices) spec = WithDeviceRanges(spec);
          SCOPED_TRACE(absl::StrCat("star of ", servers, " ", server.name,
                                    " servers, hub ", hub.name,
                                    devices ? ", device ranges" : ""));
          FabricState s(MustBuild(spec));
          const Topology& topo = s.topology();
          const int n = topo.node_count();
          EXPECT_GT(AddRandomGrants(s, rng, 2 * n), 0);
          const AddressMap all_up = s.map();
          ForLinkStates(s, rng, 40, [&] {
            ++states;
            EXPECT_LE(ExpectLinkStateSafe(s, rng), std::max(2, servers));
            // A server's map never changes; the hub drops the servers it
            // cannot reach.
            for (int v = 1; v < n; ++v) {
              EXPECT_EQ(s.map().entries(v), all_up.entries(v))
                  << topo.node(v).name;
              const bool up = s.link_up(*topo.FindLink("m", topo.node(v).name));
              EXPECT_EQ(
                  FindEntry(s.map().entries(0), topo.node(v).aperture_base) !=
                      nullptr,
                  up)
                  << topo.node(v).name;
            }
          });
          if (HasFailure()) return;
        }
      }
    }
  }
  std::printf("star: %d link states checked\n", states);
}

// A CUSTOM topology's map can grow with link state: x (16 entries) sits on
// a cycle whose second half visits node indices out of order, so that with
// every link up each half is one or two runs, but with the middle of the
// second half cut, x reaches its nodes alternately out of port 1 and port
// 2. That change is refused before anything changes; the map stays valid.
TEST(LinkStateCapacityTest, CustomTopologyChangeThatOverflowsIsRefused) {
  FabricSpec spec;
  spec.name = "c";
  spec.kind = TopologyKind::kCustom;
  spec.default_export_size = 64 * kMiB;
  spec.nodes.push_back({"x", "intel-xeon-gen4"});
  constexpr int kFirst = 10, kSecond = 20;
  for (int i = 1; i <= kFirst + kSecond; ++i) {
    spec.nodes.push_back({absl::StrCat("n", i < 10 ? "0" : "", i)});
  }
  // Cycle order: x, n01..n10, then n11, n13, ..., n29, n12, n14, ..., n30,
  // back to x.
  std::vector<std::string> cycle = {"x"};
  for (int i = 1; i <= kFirst; ++i) cycle.push_back(spec.nodes[i].name);
  for (int i = kFirst + 1; i <= kFirst + kSecond; i += 2)
    cycle.push_back(spec.nodes[i].name);
  for (int i = kFirst + 2; i <= kFirst + kSecond; i += 2)
    cycle.push_back(spec.nodes[i].name);
  for (size_t i = 0; i < cycle.size(); ++i) {
    spec.links.push_back({cycle[i], 2, cycle[(i + 1) % cycle.size()], 1});
  }
  absl::StatusOr<Topology> topo = Topology::Build(spec);
  ASSERT_TRUE(topo.ok()) << topo.status();
  FabricState s(*std::move(topo));
  ASSERT_TRUE(CheckInvariants(s).ok());
  // The link between n29 and n12, the middle of the scrambled half.
  int cut = -1;
  for (size_t l = 0; l < s.topology().links().size(); ++l) {
    const auto& name = s.topology().links()[l].name;
    if (name == "n29--n12") cut = static_cast<int>(l);
  }
  ASSERT_GE(cut, 0);
  absl::Status refused = s.CheckLinkChange(cut, false);
  ExpectError(refused, absl::StatusCode::kFailedPrecondition,
              "map entries on bridge x");
  EXPECT_THAT(std::string(refused.message()), HasSubstr("intel-xeon-gen4"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("holds 16"));
  EXPECT_TRUE(s.link_up(cut));
  // Other links can go down: their changes fit.
  EXPECT_TRUE(s.CheckLinkChange(0, false).ok());
  EXPECT_TRUE(s.CheckLinkChange(cut, true).ok());  // no change at all
}

}  // namespace
}  // namespace fabric::core
