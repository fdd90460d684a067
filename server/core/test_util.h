// Helpers shared by the fabric_core tests.
#ifndef FABRIC_SERVER_CORE_TEST_UTIL_H_
#define FABRIC_SERVER_CORE_TEST_UTIL_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/address_map.h"
#include "server/core/topology.h"

namespace fabric::core {

// Prints a map entry in gtest messages, e.g. "forward [0x100000000000,
// +0x40000000) port 1".
inline void PrintTo(const MapEntry& e, std::ostream* os) {
  if (e.kind == MapEntry::Kind::kClaim) {
    *os << absl::StrCat("claim [0x", absl::Hex(e.base), ", +0x",
                        absl::Hex(e.size), ") -> 0x", absl::Hex(e.local_base));
  } else {
    *os << absl::StrCat("forward [0x", absl::Hex(e.base), ", +0x",
                        absl::Hex(e.size), ") port ", e.port);
  }
}

}  // namespace fabric::core

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
