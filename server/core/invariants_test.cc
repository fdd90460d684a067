#include "server/core/invariants.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/fabric_state.h"
#include "server/core/test_util.h"

namespace fabric::core {
namespace {

using ::fabric::core::testing::RingSpec;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

// A 5-node sim ring with grants n0<-n2 (window), n1<-n2 (window) and
// n3<-n1 (3 LUT slots, after filling n3's windows).
class InvariantsTest : public ::testing::Test {
 protected:
  InvariantsTest() : state_(*Topology::Build(RingSpec(5))) {
    Add(0, 2, 64 * kMiB, "a");
    Add(1, 2, 16 * kMiB, "b");
    for (int i = 0; i < 8; ++i) Add(3, 4, 4 * kKiB, "w" + std::to_string(i));
    Add(3, 1, 3 * kMiB, "lut");
    EXPECT_EQ(state_.FindGrant("lut")->slot_kind, SlotKind::kLut);
    for (int i = 0; i < state_.topology().node_count(); ++i) {
      configs_.push_back(state_.ConfigFor(i));
    }
    grants_ = state_.grants();
    for (const Grant* g : grants_) copies_.push_back(*g);
  }

  void Add(int b, int t, uint64_t size, const std::string& id) {
    absl::StatusOr<Grant> g = state_.PlanGrant(b, t, size);
    ASSERT_TRUE(g.ok()) << g.status();
    g->id = id;
    ASSERT_TRUE(state_.AddGrant(*g).ok());
  }

  absl::Status Check() {
    return CheckConfigs(state_.topology(), state_.link_states(), grants_,
                        configs_);
  }

  void ExpectViolation(const std::string& substr) {
    absl::Status s = Check();
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(substr));
  }

  Grant& GrantCopy(const std::string& id) {
    for (size_t i = 0; i < copies_.size(); ++i) {
      if (copies_[i].id == id) {
        grants_[i] = &copies_[i];
        return copies_[i];
      }
    }
    ADD_FAILURE() << "no grant " << id;
    return copies_[0];
  }

  FabricState state_;
  std::vector<BridgeConfig> configs_;
  std::vector<const Grant*> grants_;
  std::vector<Grant> copies_;
};

TEST_F(InvariantsTest, CleanStatePasses) {
  EXPECT_TRUE(Check().ok()) << Check();
  EXPECT_TRUE(CheckInvariants(state_).ok());
}

TEST_F(InvariantsTest, WalkFollowsTheDataPath) {
  const Topology& t = state_.topology();
  const Grant& a = *state_.FindGrant("a");
  WalkResult w = WalkAccess(t, state_.link_states(), configs_, 0,
                            a.borrower_addr + 100, 8);
  ASSERT_TRUE(w.landed) << w.fault;
  EXPECT_EQ(w.node, 2);
  EXPECT_EQ(w.addr, a.target_addr + 100);
  EXPECT_EQ(w.hops, (std::vector<int>{0, 1, 2}));

  // Outside any window: a local access.
  w = WalkAccess(t, state_.link_states(), configs_, 0, 0x1000, 8);
  EXPECT_TRUE(w.landed);
  EXPECT_EQ(w.node, 0);
  EXPECT_EQ(w.hops, (std::vector<int>{0}));

  // Past the end of a window.
  w = WalkAccess(t, state_.link_states(), configs_, 0,
                 a.borrower_addr + a.size - 4, 8);
  EXPECT_FALSE(w.landed);
  EXPECT_THAT(w.fault, HasSubstr("runs past the end of window 0"));

  // A claimed address outside any inbound range faults at the target.
  configs_[0].windows[0].xlat += 128 * kMiB;
  w = WalkAccess(t, state_.link_states(), configs_, 0, a.borrower_addr, 8);
  EXPECT_FALSE(w.landed);
  EXPECT_EQ(w.fault_node, 2);
  EXPECT_THAT(w.fault, HasSubstr("bridge n2: claimed fabric address"));
  EXPECT_THAT(w.fault, HasSubstr("is not inside a granted range"));
}

TEST_F(InvariantsTest, CatchesOverlappingTargetRanges) {
  Grant& b = GrantCopy("b");
  b.target_addr = state_.FindGrant("a")->target_addr + 4 * kKiB;
  ExpectViolation("grants a and b overlap on target bytes of node n2");
}

TEST_F(InvariantsTest, CatchesOverlappingSlots) {
  Grant& w1 = GrantCopy("w1");
  w1.slot_index = 0;
  ExpectViolation("grants w0 and w1 overlap on window 0 of borrower node n3");
}

TEST_F(InvariantsTest, CatchesAForwardLoop) {
  // n1 forwards n2's aperture back toward n0, which sends it to n1 again.
  const uint64_t target = state_.topology().node(2).aperture_base;
  for (MapEntry& e : configs_[1].map) {
    if (target >= e.base && target - e.base < e.size) e.port = 1;
  }
  ExpectViolation("loop");
  ExpectViolation("grant a:");
}

TEST_F(InvariantsTest, CatchesAMissingEntry) {
  configs_[1].map.clear();
  ExpectViolation("bridge n1: no entry for fabric address");
}

TEST_F(InvariantsTest, CatchesAMisalignedWindow) {
  WindowEntry& w = configs_[0].windows[0];
  w.xlat += 512;
  ExpectViolation("window 0: translated address");
  ExpectViolation("is misaligned; profile sim needs xlat_align 4 KiB");
}

TEST_F(InvariantsTest, CatchesAMisplacedWindow) {
  configs_[0].windows[0].local_base += 4 * kKiB;
  ExpectViolation("bridge n0: window 0 sits at");
}

TEST_F(InvariantsTest, CatchesTooManyWindows) {
  BridgeConfig& c = configs_[3];
  WindowEntry extra = c.windows[0];
  extra.slot = 8;
  extra.local_base = c.windows[7].local_base + (1ull << 30);
  c.windows.push_back(extra);
  ExpectViolation("9 direct windows exceed window_count 8 of profile sim");
  ExpectViolation("window 8 is outside the window_count 8");
}

TEST_F(InvariantsTest, CatchesTooManyMapEntries) {
  BridgeConfig& c = configs_[4];
  uint64_t base = 0x10;
  while (c.map.size() <= 64) {
    c.map.insert(c.map.begin(), {MapEntry::Kind::kForward, base, 1, 1, 0});
    base += 0x10;
  }
  std::sort(
      c.map.begin(), c.map.end(),
      [](const MapEntry& x, const MapEntry& y) { return x.base < y.base; });
  ExpectViolation("bridge n4: 65 map entries exceed mapping_entries 64");
}

TEST_F(InvariantsTest, CatchesOverlappingMapEntries) {
  BridgeConfig& c = configs_[0];
  c.map[1].base -= 4096;
  ExpectViolation("bridge n0: map entries 0 and 1 are unsorted or overlap");
}

TEST_F(InvariantsTest, CatchesAClaimOutsideTheExportRegion) {
  for (MapEntry& e : configs_[2].map) {
    if (e.kind == MapEntry::Kind::kClaim) e.local_base = 0x8000'0000;
  }
  ExpectViolation("bridge n2: claim");
  ExpectViolation("outside the export region");
}

TEST_F(InvariantsTest, CatchesAWrongLutSlot) {
  for (WindowEntry& w : configs_[3].windows) {
    if (w.kind == SlotKind::kLut && w.slot == 1) w.xlat += 1 * kMiB;
  }
  ExpectViolation("grant lut: 1048576 bytes at +1048576 from n3");
}

TEST_F(InvariantsTest, CatchesAnOrphanWindow) {
  configs_[0].windows[0].grant_id = "ghost";
  ExpectViolation("window 0 belongs to no live grant");
}

TEST_F(InvariantsTest, CutOffGrantMustFault) {
  FabricState s = state_;
  s.SetLink(0, false);  // n0--n1
  s.SetLink(2, false);  // n2--n3
  // n0 and n2 are now on different sides; the map drops n2's aperture on n0.
  EXPECT_FALSE(s.GrantPath(*s.FindGrant("a")).has_value());
  EXPECT_TRUE(CheckInvariants(s).ok()) << CheckInvariants(s);

  // A cut-off grant whose window vanished becomes a local access on the
  // borrower: it lands, and that is a violation.
  std::vector<BridgeConfig> configs;
  for (int i = 0; i < 5; ++i) configs.push_back(s.ConfigFor(i));
  configs[0].windows.clear();
  absl::Status st =
      CheckConfigs(s.topology(), s.link_states(), s.grants(), configs);
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("grant a: 1 bytes at +0 from n0 land on n0"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("n2 is cut off"));
}

}  // namespace
}  // namespace fabric::core
