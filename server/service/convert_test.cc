#include "server/service/convert.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/test_util.h"
#include "server/core/topology.h"

namespace fabric::service {
namespace {

// What CoveredNodes must say: the first and last node whose aperture
// overlaps [base, base + size), by a walk of every node.
std::string CoveredByWalk(const core::Topology& topo, uint64_t base,
                          uint64_t size) {
  int first = -1, last = -1;
  for (int i = 0; i < topo.node_count(); ++i) {
    const core::NodeInfo& n = topo.node(i);
    const unsigned __int128 end = static_cast<unsigned __int128>(base) + size;
    if (size > 0 && n.aperture_base < end &&
        base < n.aperture_base + n.aperture_size) {
      if (first < 0) first = i;
      last = i;
    }
  }
  if (first < 0) return "";
  if (first == last) return topo.node(first).name;
  return absl::StrCat(topo.node(first).name, "..", topo.node(last).name);
}

TEST(CoveredNodesTest, AgreesWithAWalkOfEveryNode) {
  auto topo = core::Topology::Build(core::testing::RingSpec(7));
  ASSERT_TRUE(topo.ok()) << topo.status();
  const uint64_t region = topo->node(0).aperture_base;
  const uint64_t aperture = topo->node(0).aperture_size;
  std::vector<uint64_t> points = {0, 1, region - 1, region, region + 1,
                                  UINT64_MAX - 1, UINT64_MAX};
  for (int i = 0; i <= 7; ++i) {
    for (int64_t d : {-1, 0, 1}) {
      points.push_back(region + i * aperture + d);
      points.push_back(region + i * aperture + aperture / 2 + d);
    }
  }
  int checked = 0;
  for (uint64_t base : points) {
    for (uint64_t size : {uint64_t{0}, uint64_t{1}, aperture / 2, aperture,
                          aperture + 1, 3 * aperture, 100 * aperture,
                          UINT64_MAX - base}) {
      EXPECT_EQ(CoveredNodes(*topo, base, size),
                CoveredByWalk(*topo, base, size))
          << "base " << base << " size " << size;
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
  // Spot checks.
  EXPECT_EQ(CoveredNodes(*topo, region, aperture), topo->node(0).name);
  EXPECT_EQ(CoveredNodes(*topo, region + aperture - 1, 2),
            absl::StrCat(topo->node(0).name, "..", topo->node(1).name));
  EXPECT_EQ(CoveredNodes(*topo, region + 7 * aperture, aperture), "");
}

}  // namespace
}  // namespace fabric::service
