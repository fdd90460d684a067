// Helpers shared by the fabric_core tests.
#ifndef FABRIC_SERVER_CORE_TEST_UTIL_H_
#define FABRIC_SERVER_CORE_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/topology.h"

namespace fabric::core::testing {

// A ring of `n` nodes named n0, n1, ... with the given default profile.
inline FabricSpec RingSpec(int n, const std::string& profile = "sim") {
  FabricSpec spec;
  spec.name = "ring";
  spec.kind = TopologyKind::kRing;
  spec.default_profile = profile;
  for (int i = 0; i < n; ++i) spec.nodes.push_back({absl::StrCat("n", i)});
  return spec;
}

// A star of hub "m" (node 0) and `servers` servers s0, s1, ...
inline FabricSpec StarSpec(int servers, const std::string& profile = "sim",
                           const std::string& hub_profile = "") {
  FabricSpec spec;
  spec.name = "star";
  spec.kind = TopologyKind::kStar;
  spec.hub = "m";
  spec.default_profile = profile;
  spec.nodes.push_back({"m", hub_profile});
  for (int i = 0; i < servers; ++i) {
    spec.nodes.push_back({absl::StrCat("s", i)});
  }
  return spec;
}

}  // namespace fabric::core::testing

#endif  // FABRIC_SERVER_CORE_TEST_UTIL_H_
