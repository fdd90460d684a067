#include "server/core/address_map.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/test_util.h"
#include "server/core/topology.h"

namespace fabric::core {
namespace {

using ::fabric::core::testing::RingSpec;
using ::fabric::core::testing::StarSpec;

Topology MustBuild(const FabricSpec& spec) {
  absl::StatusOr<Topology> t = Topology::Build(spec);
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

void ExpectWellFormed(const Topology& topo, const AddressMap& map) {
  for (int v = 0; v < topo.node_count(); ++v) {
    const auto& es = map.entries(v);
    int claims = 0;
    for (size_t i = 0; i < es.size(); ++i) {
      if (i > 0) {
        EXPECT_LE(es[i - 1].base + es[i - 1].size, es[i].base);
      }
      if (es[i].kind == MapEntry::Kind::kClaim) {
        ++claims;
        EXPECT_EQ(es[i].base, topo.node(v).aperture_base);
        EXPECT_EQ(es[i].size, topo.node(v).export_size);
        EXPECT_EQ(es[i].local_base, topo.node(v).export_base);
      }
    }
    EXPECT_EQ(claims, 1);
  }
}

TEST(AddressMapTest, RingRoutesTheShorterWay) {
  for (int n : {2, 3, 4, 5, 7, 8, 16, 31, 64, 100, 128, 255, 256}) {
    SCOPED_TRACE(n);
    Topology topo = MustBuild(RingSpec(n));
    AddressMap map =
        AddressMap::Compute(topo, std::vector<bool>(topo.links().size(), true));
    ExpectWellFormed(topo, map);
    EXPECT_LE(map.max_forward_entries(), 4);
    for (int a = 0; a < n; ++a) {
      for (int b = 0; b < n; ++b) {
        std::optional<std::vector<int>> path = map.Path(a, b);
        ASSERT_TRUE(path.has_value()) << a << "->" << b;
        int cw = ((b - a) % n + n) % n;
        int ccw = n - cw;
        int hops = static_cast<int>(path->size()) - 1;
        ASSERT_EQ(hops, a == b ? 0 : std::min(cw, ccw)) << a << "->" << b;
        ASSERT_EQ(path->front(), a);
        ASSERT_EQ(path->back(), b);
        if (a != b && cw == ccw) {
          // Tie: the lowest port (port 1, counter-clockwise) wins.
          ASSERT_EQ((*path)[1], (a + n - 1) % n) << a << "->" << b;
        }
      }
    }
    // Deterministic: recomputing gives the same entries.
    AddressMap again =
        AddressMap::Compute(topo, std::vector<bool>(topo.links().size(), true));
    for (int v = 0; v < n; ++v) EXPECT_EQ(map.entries(v), again.entries(v));
  }
}

TEST(AddressMapTest, OneLinkDownMakesALine) {
  for (int n : {2, 3, 5, 8, 64, 255}) {
    SCOPED_TRACE(n);
    Topology topo = MustBuild(RingSpec(n));
    for (int down : {0, n / 2, n - 1}) {
      std::vector<bool> up(topo.links().size(), true);
      up[down] = false;
      AddressMap map = AddressMap::Compute(topo, up);
      ExpectWellFormed(topo, map);
      EXPECT_LE(map.max_forward_entries(), 4);
      // Link `down` joins node down and down+1; the line starts at down+1.
      for (int a = 0; a < n; ++a) {
        for (int b = 0; b < n; ++b) {
          auto path = map.Path(a, b);
          ASSERT_TRUE(path.has_value());
          int pa = ((a - down - 1) % n + n) % n;
          int pb = ((b - down - 1) % n + n) % n;
          ASSERT_EQ(static_cast<int>(path->size()) - 1, std::abs(pa - pb));
        }
      }
    }
  }
}

TEST(AddressMapTest, TwoLinksDownPartition) {
  const int n = 10;
  Topology topo = MustBuild(RingSpec(n));
  std::vector<bool> up(n, true);
  up[2] = false;  // n2--n3
  up[6] = false;  // n6--n7
  AddressMap map = AddressMap::Compute(topo, up);
  ExpectWellFormed(topo, map);
  auto side = [](int v) { return v >= 3 && v <= 6; };
  for (int a = 0; a < n; ++a) {
    for (int b = 0; b < n; ++b) {
      auto path = map.Path(a, b);
      EXPECT_EQ(path.has_value(), side(a) == side(b)) << a << "->" << b;
    }
  }
  // No entry on n0 covers n4's aperture: an access there faults.
  EXPECT_EQ(FindEntry(map.entries(0), topo.node(4).aperture_base), nullptr);
}

TEST(AddressMapTest, LinkUpRestoresTheMap) {
  Topology topo = MustBuild(RingSpec(37));
  std::vector<bool> up(topo.links().size(), true);
  AddressMap before = AddressMap::Compute(topo, up);
  up[11] = false;
  AddressMap during = AddressMap::Compute(topo, up);
  bool differs = false;
  for (int v = 0; v < 37; ++v)
    differs |= before.entries(v) != during.entries(v);
  EXPECT_TRUE(differs);
  up[11] = true;
  AddressMap after = AddressMap::Compute(topo, up);
  for (int v = 0; v < 37; ++v) EXPECT_EQ(before.entries(v), after.entries(v));
}

TEST(AddressMapTest, StarGoesThroughTheHub) {
  Topology topo = MustBuild(StarSpec(8));
  std::vector<bool> up(topo.links().size(), true);
  AddressMap map = AddressMap::Compute(topo, up);
  ExpectWellFormed(topo, map);
  EXPECT_EQ(map.entries(0).size(), 9u);  // Hub: 1 claim + 8 forwards.
  for (int s = 1; s <= 8; ++s) EXPECT_LE(map.entries(s).size(), 3u);
  EXPECT_EQ(map.Path(1, 5), (std::vector<int>{1, 0, 5}));
  up[*topo.FindLink("m", "s4")] = false;
  map = AddressMap::Compute(topo, up);
  EXPECT_FALSE(map.Path(1, 5).has_value());
  EXPECT_FALSE(map.Path(5, 0).has_value());
  EXPECT_TRUE(map.Path(1, 4).has_value());
}

// The fabric: 30 intel-xeon-gen4 servers (16 mapping entries) behind
// a sim hub, with every other server from s2 to s28 cut off. Server s0 must
// still fit its chip, and cut-off servers must still be unreachable.
TEST(AddressMapTest, StarServerMapsFitTheChipWithServersCutOff) {
  Topology topo = MustBuild(StarSpec(30, "intel-xeon-gen4", "sim"));
  std::vector<bool> up(topo.links().size(), true);
  std::vector<int> cut;
  for (int k = 2; k <= 28; k += 2) {
    cut.push_back(*topo.FindNode(absl::StrCat("s", k)));
    up[*topo.FindLink("m", absl::StrCat("s", k))] = false;
  }
  ASSERT_EQ(cut.size(), 14u);
  AddressMap map = AddressMap::Compute(topo, up);
  ExpectWellFormed(topo, map);
  for (int v = 0; v < topo.node_count(); ++v) {
    EXPECT_LE(static_cast<int>(map.entries(v).size()),
              topo.node(v).profile->mapping_entries)
        << topo.node(v).name;
  }
  const int s0 = *topo.FindNode("s0");
  const int s1 = *topo.FindNode("s1");
  for (int c : cut) {
    EXPECT_FALSE(map.Path(s0, c).has_value()) << topo.node(c).name;
    EXPECT_FALSE(map.Path(c, s0).has_value()) << topo.node(c).name;
    EXPECT_FALSE(map.Path(0, c).has_value()) << topo.node(c).name;
  }
  EXPECT_EQ(map.Path(s0, s1), (std::vector<int>{s0, 0, s1}));
}

TEST(AddressMapTest, LargeRingScalesAndStaysSmall) {
  const int n = 1024;
  Topology topo = MustBuild(RingSpec(n));
  std::vector<bool> up(topo.links().size(), true);
  std::vector<double> ms;
  int all_up = 0;
  for (int run = 0; run < 7; ++run) {
    auto start = std::chrono::steady_clock::now();
    AddressMap map = AddressMap::Compute(topo, up);
    auto end = std::chrono::steady_clock::now();
    ms.push_back(
        std::chrono::duration<double, std::milli>(end - start).count());
    all_up = map.max_forward_entries();
  }
  std::sort(ms.begin(), ms.end());
  up[500] = false;
  AddressMap line = AddressMap::Compute(topo, up);
  int one_down = line.max_forward_entries();
  std::printf(
      "AddressMap::Compute, 1024-node ring: median %.2f ms over %zu runs "
      "(min %.2f, max %.2f); max_forward_entries all-up=%d one-down=%d\n",
      ms[ms.size() / 2], ms.size(), ms.front(), ms.back(), all_up, one_down);
  EXPECT_LE(all_up, 4);
  EXPECT_LE(one_down, 4);
  EXPECT_TRUE(line.Path(500, 501).has_value());
  EXPECT_EQ(line.Path(500, 501)->size(), size_t{n});
}

}  // namespace
}  // namespace fabric::core
