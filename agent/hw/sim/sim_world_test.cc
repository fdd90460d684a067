// Bytes through the simulator: program a SimBridge per node from the
// manager's model (core::FabricState::ConfigFor) and check, with real bytes
// in the memory files, that every grant lands exactly on its target range
// and nothing else changes, across link failures.
#include "agent/hw/sim/sim_world.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/state_file.h"
#include "agent/hw/testing/core_state.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/fabric_state.h"
#include "server/core/invariants.h"
#include "server/core/test_util.h"

namespace fabric::agent::hw {
namespace {

using ::fabric::agent::hw::testing::StateFor;
using ::fabric::agent::hw::testing::TempDir;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

class World {
 public:
  explicit World(const core::FabricSpec& spec)
      : fs_(*core::Topology::Build(spec)) {
    for (const core::NodeInfo& n : fs_.topology().nodes()) {
      absl::StatusOr<std::unique_ptr<SimBridge>> b =
          SimBridge::Open(dir_.path(), n.name, LimitsFromProfile(*n.profile));
      EXPECT_TRUE(b.ok()) << b.status();
      bridges_.push_back(*std::move(b));
    }
  }

  core::FabricState& fs() { return fs_; }
  const core::Topology& topo() { return fs_.topology(); }
  const std::string& dir() { return dir_.path(); }
  SimBridge& bridge(int i) { return *bridges_[i]; }
  const std::string& name(int i) { return topo().node(i).name; }

  void AddGrant(int borrower, int target, uint64_t size) {
    absl::StatusOr<core::Grant> g = fs_.PlanGrant(borrower, target, size);
    ASSERT_TRUE(g.ok()) << g.status();
    g->id = absl::StrCat("g", next_id_++);
    ASSERT_TRUE(fs_.AddGrant(*g).ok());
  }

  // Programs every bridge from the model.
  void Program() {
    ASSERT_TRUE(core::CheckInvariants(fs_).ok()) << core::CheckInvariants(fs_);
    for (int i = 0; i < topo().node_count(); ++i) {
      absl::Status s = bridge(i).ApplyState(StateFor(fs_, i));
      ASSERT_TRUE(s.ok()) << name(i) << ": " << s;
    }
  }

  // Writes a fresh random pattern over every grant, one window entry at a
  // time. Grants with a path must land exactly at their target range; cut
  // grants must fault. Returns how many grants landed.
  int WriteAllGrants() {
    int landed = 0;
    for (const core::Grant* g : fs_.grants()) {
      const bool reachable = fs_.GrantPath(*g).has_value();
      const uint64_t chunk =
          g->slot_kind == core::SlotKind::kLut
              ? topo().node(g->borrower).profile->lut_entry_size
              : g->size;
      bool all = true;
      for (uint64_t off = 0; off < g->size; off += chunk) {
        std::vector<uint8_t> data(chunk);
        for (uint8_t& b : data) b = static_cast<uint8_t>(rng_());
        absl::StatusOr<AccessResult> r =
            bridge(g->borrower).HostWrite(g->borrower_addr + off, data);
        EXPECT_TRUE(r.ok()) << r.status();
        if (!r.ok()) return landed;
        if (reachable) {
          EXPECT_TRUE(r->landed) << g->id << " faulted at " << r->fault_bridge
                                 << ": " << r->reason;
          EXPECT_EQ(r->node, name(g->target)) << g->id;
          EXPECT_EQ(r->addr, g->target_addr + off) << g->id;
          EXPECT_EQ(r->hops.front(), name(g->borrower));
          EXPECT_EQ(r->hops.back(), name(g->target));
        } else {
          EXPECT_FALSE(r->landed) << g->id << " is cut off but landed";
        }
        if (r->landed) {
          model_[g->target][r->addr] = data;
        } else {
          all = false;
        }
      }
      if (all) ++landed;
    }
    return landed;
  }

  // Every memory file holds exactly what the model says: the written
  // segments hold their bytes and every other byte is still a hole.
  void Verify() {
    for (int i = 0; i < topo().node_count(); ++i) {
      SCOPED_TRACE(name(i));
      const uint64_t base = topo().node(i).export_base;
      const std::map<uint64_t, std::vector<uint8_t>>& segs = model_[i];
      const std::string path = sim_internal::MemoryPath(dir(), name(i));
      const int fd = open(path.c_str(), O_RDONLY);
      ASSERT_GE(fd, 0);
      off_t pos = 0;
      uint64_t data_bytes = 0;
      while (true) {
        const off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0) break;  // ENXIO: no more data.
        const off_t hole = lseek(fd, data, SEEK_HOLE);
        ASSERT_GT(hole, data);
        data_bytes += static_cast<uint64_t>(hole - data);
        // [data, hole) must be covered by written segments.
        uint64_t at = base + data;
        while (at < base + static_cast<uint64_t>(hole)) {
          auto it = segs.upper_bound(at);
          ASSERT_NE(it, segs.begin()) << "stray bytes at " << std::hex << at;
          --it;
          ASSERT_LT(at, it->first + it->second.size())
              << "stray bytes at " << std::hex << at;
          at = it->first + it->second.size();
        }
        pos = hole;
      }
      close(fd);
      uint64_t model_bytes = 0;
      for (const auto& [addr, bytes] : segs) model_bytes += bytes.size();
      // Every written byte is in a data extent (so the scan above saw them).
      EXPECT_GE(data_bytes, model_bytes);
      for (const auto& [addr, bytes] : segs) {
        std::vector<uint8_t> got(bytes.size());
        ASSERT_TRUE(bridge(i).HostRead(addr, absl::MakeSpan(got)).ok());
        EXPECT_TRUE(got == bytes) << "bytes at " << std::hex << addr;
      }
    }
  }

  // Takes `link` down or up in the model and reprograms every bridge (the
  // two ports and every map).
  void SetLink(int link, bool up) {
    fs_.SetLink(link, up);
    Program();
  }

 private:
  TempDir dir_;
  core::FabricState fs_;
  std::vector<std::unique_ptr<SimBridge>> bridges_;
  std::map<int, std::map<uint64_t, std::vector<uint8_t>>> model_;
  std::mt19937_64 rng_{42};
  int next_id_ = 1;
};

core::FabricSpec Small(core::FabricSpec spec) {
  spec.default_export_size = 64 * kMiB;
  return spec;
}

// Grants between neighbours and across, plus enough from node 0 to spill
// into multi-slot LUT grants.
void AddGrants(World& w) {
  const int n = w.topo().node_count();
  const bool star = w.topo().spec().kind == core::TopologyKind::kStar;
  for (int i = 0; i < n; ++i) {
    w.AddGrant(i, (i + 1) % n, 64 * kKiB);
    const int far = (i + n / 2) % n;
    if (far != i && far != (i + 1) % n) w.AddGrant(i, far, 256 * kKiB);
  }
  for (int k = 0; k < 9; ++k) {
    w.AddGrant(0, 1 + k % (n - 1), 2 * kMiB);
  }
  int lut = 0;
  for (const core::Grant* g : w.fs().grants()) {
    if (g->slot_kind == core::SlotKind::kLut) ++lut;
  }
  EXPECT_GT(lut, 0) << "no LUT grant exercised";
  (void)star;
}

struct Topo {
  std::string name;
  core::FabricSpec spec;
};

class BytesTest : public ::testing::TestWithParam<Topo> {};

TEST_P(BytesTest, EveryGrantLandsExactlyAndSurvivesLinkFailures) {
  World w(Small(GetParam().spec));
  AddGrants(w);
  w.Program();
  const int grants = static_cast<int>(w.fs().grants().size());
  EXPECT_EQ(w.WriteAllGrants(), grants);
  w.Verify();

  // One link down: reprogram, everything still reachable lands (rerouted
  // on a ring, cut off behind a star link).
  w.SetLink(0, false);
  int reachable = 0;
  for (const core::Grant* g : w.fs().grants()) {
    if (w.fs().GrantPath(*g)) ++reachable;
  }
  if (w.topo().spec().kind == core::TopologyKind::kRing) {
    EXPECT_EQ(reachable, grants);
  } else {
    EXPECT_LT(reachable, grants);
  }
  EXPECT_EQ(w.WriteAllGrants(), reachable);
  w.Verify();

  // A second link down: cut-off grants fault and write nothing, the others
  // land.
  const int second = static_cast<int>(w.topo().links().size()) / 2;
  w.SetLink(second, false);
  reachable = 0;
  for (const core::Grant* g : w.fs().grants()) {
    if (w.fs().GrantPath(*g)) ++reachable;
  }
  EXPECT_LT(reachable, grants);
  EXPECT_EQ(w.WriteAllGrants(), reachable);
  w.Verify();

  // Links back: everything lands again.
  w.SetLink(0, true);
  w.SetLink(second, true);
  EXPECT_EQ(w.WriteAllGrants(), grants);
  w.Verify();
}

INSTANTIATE_TEST_SUITE_P(
    Topologies, BytesTest,
    ::testing::Values(Topo{"ring2", core::testing::RingSpec(2)},
                      Topo{"ring3", core::testing::RingSpec(3)},
                      Topo{"ring5", core::testing::RingSpec(5)},
                      Topo{"ring8", core::testing::RingSpec(8)},
                      Topo{"star4", core::testing::StarSpec(3)}),
    [](const ::testing::TestParamInfo<Topo>& i) { return i.param.name; });

class FaultTest : public ::testing::Test {
 protected:
  FaultTest() : w_(Small(core::testing::RingSpec(3))) {
    w_.AddGrant(0, 1, 64 * kKiB);
    w_.AddGrant(0, 2, 64 * kKiB);
    w_.Program();
  }
  const core::Grant& Grant(int k) { return *w_.fs().grants()[k]; }
  AccessResult Write(int node, uint64_t addr, size_t len) {
    std::vector<uint8_t> data(len, 0xee);
    absl::StatusOr<AccessResult> r = w_.bridge(node).HostWrite(addr, data);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AccessResult{};
  }
  World w_;
};

TEST_F(FaultTest, HopsFollowTheRing) {
  absl::StatusOr<AccessResult> r =
      SimWorld::Walk(w_.dir(), "n0", Grant(0).borrower_addr, 16);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->landed);
  EXPECT_EQ(r->hops, (std::vector<std::string>{"n0", "n1"}));
  EXPECT_EQ(SimWorld::Walk(w_.dir(), "nobody", 0, 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FaultTest, AWriteOutsideEveryGrantFaults) {
  const core::NodeInfo& n1 = w_.topo().node(1);
  // A hand-planted window onto n1's aperture past its only grant.
  const uint64_t local =
      core::SlotAddress(w_.topo().node(0), core::SlotKind::kWindow, 7);
  ASSERT_TRUE(w_.bridge(0)
                  .SetWindow({SlotKind::kWindow, 7, local, 4 * kKiB,
                              n1.aperture_base + 32 * kMiB, "planted"})
                  .ok());
  AccessResult r = Write(0, local, 4 * kKiB);
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "outside every grant");
  EXPECT_EQ(r.fault_bridge, "n1");
  EXPECT_EQ(r.fault_addr, n1.aperture_base + 32 * kMiB);
  // The grant itself is fine, until its inbound entry is withdrawn.
  EXPECT_TRUE(Write(0, Grant(0).borrower_addr, 64).landed);
  ASSERT_TRUE(w_.bridge(1).SetInbound({}).ok());
  r = Write(0, Grant(0).borrower_addr, 64);
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "outside every grant");
}

TEST_F(FaultTest, AForwardLoopFaults) {
  const core::Topology& t = w_.topo();
  auto aperture = [&](int i) { return t.node(i).aperture_base; };
  const uint64_t ap = t.node(0).aperture_size;
  // n0 sends everything not its own out of port 2 (to n1); n1 sends
  // everything not its own out of port 1 (back to n0).
  ASSERT_TRUE(w_.bridge(0)
                  .SetMapEntries(
                      {{MapEntry::Kind::kClaim, aperture(0), ap, 0,
                        t.node(0).export_base},
                       {MapEntry::Kind::kForward, aperture(1), 2 * ap, 2, 0}})
                  .ok());
  ASSERT_TRUE(
      w_.bridge(1)
          .SetMapEntries({{MapEntry::Kind::kForward, aperture(0), ap, 1, 0},
                          {MapEntry::Kind::kClaim, aperture(1), ap, 0,
                           t.node(1).export_base},
                          {MapEntry::Kind::kForward, aperture(2), ap, 1, 0}})
          .ok());
  AccessResult r = Write(0, Grant(1).borrower_addr, 64);  // Bound for n2.
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "loop");
  EXPECT_GT(r.hops.size(), 3u);
  w_.Verify();
}

TEST_F(FaultTest, AClearedWindowMakesTheWriteLocal) {
  const core::Grant& g = Grant(0);
  ASSERT_TRUE(w_.bridge(0).ClearWindow(SlotKind::kWindow, g.slot_index).ok());
  AccessResult r = Write(0, g.borrower_addr, 64);
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "not host memory");
  EXPECT_EQ(r.fault_bridge, "n0");
  // A local write inside n0's own memory lands there.
  const uint64_t own = w_.topo().node(0).export_base + 8 * kKiB;
  r = Write(0, own, 64);
  EXPECT_TRUE(r.landed);
  EXPECT_EQ(r.node, "n0");
  EXPECT_EQ(r.addr, own);
}

TEST_F(FaultTest, AWriteCrossingTheWindowEndFaults) {
  const core::Grant& g = Grant(0);
  AccessResult r = Write(0, g.borrower_addr + g.size - 8, 16);
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "crosses window end");
  w_.Verify();
}

TEST_F(FaultTest, ALinkIsUpOnlyIfBothEndsSaySo) {
  // n1 alone takes its port 1 (from n0's port 2) down; n0 still says up.
  ASSERT_TRUE(w_.bridge(1).SetPort({1, "n0", 2, false}).ok());
  AccessResult r = Write(0, Grant(0).borrower_addr, 64);
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "link down at port 2");
  EXPECT_EQ(r.fault_bridge, "n0");
  // Up again but recorded as cabled elsewhere: still down.
  ASSERT_TRUE(w_.bridge(1).SetPort({1, "n2", 2, true}).ok());
  EXPECT_EQ(Write(0, Grant(0).borrower_addr, 64).reason, "link down at port 2");
  ASSERT_TRUE(w_.bridge(1).SetPort({1, "n0", 2, true}).ok());
  EXPECT_TRUE(Write(0, Grant(0).borrower_addr, 64).landed);
}

TEST_F(FaultTest, NoMatchingEntryFaults) {
  ASSERT_TRUE(w_.bridge(0).SetMapEntries({}).ok());
  AccessResult r = Write(0, Grant(0).borrower_addr, 64);
  EXPECT_FALSE(r.landed);
  EXPECT_EQ(r.reason, "no matching entry");
  EXPECT_EQ(r.fault_bridge, "n0");
  EXPECT_EQ(r.fault_addr, Grant(0).fabric_addr);
}

}  // namespace
}  // namespace fabric::agent::hw
