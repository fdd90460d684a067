// Fuzzes a fabric spec from the bytes `fabricctl apply -f` reads to the
// topology the manager would build: ParseFabricSpec (client/commands.h), then
// the manager's validation as CreateFabric does it (SpecFromProto and
// core::Topology::Build), then the fabric state of a valid topology.
//
// Properties, besides no crash and no sanitizer finding:
//  - ParseFabricSpec either returns a named spec, or a usage error
//    (INVALID_ARGUMENT) whose message starts with the source name.
//  - A parsed spec survives a JSON round trip unchanged.
//  - Validation fails only with INVALID_ARGUMENT.
//  - A valid topology is consistent: node and link indexes, apertures
//    (power of two, disjoint, ordered, covering every export region), ports
//    (in 1..port_count, wired both ways).
//  - The invariant checker accepts the all-links-up state of a ring or star,
//    with one grant between the first two nodes and after a link goes down.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "client/commands.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/core/fabric_state.h"
#include "server/core/invariants.h"
#include "server/core/topology.h"
#include "server/service/convert.h"
#include "tests/fuzz/fuzz_check.h"

namespace fabric::fuzz {
namespace {

constexpr char kSource[] = "fuzz.json";

void CheckTopology(const v1::FabricSpec& proto, const core::Topology& topo) {
  FUZZ_CHECK(topo.node_count() == proto.nodes_size(), "node count");
  uint64_t next_aperture = core::kApertureRegionBase;
  for (int i = 0; i < topo.node_count(); ++i) {
    const core::NodeInfo& n = topo.node(i);
    FUZZ_CHECK(n.name == proto.nodes(i).name(), "node ", i, " renamed");
    FUZZ_CHECK(topo.FindNode(n.name) == i, "FindNode(", n.name, ")");
    FUZZ_CHECK(n.profile != nullptr, "node ", i, " has no profile");
    const uint64_t a = n.aperture_size;
    FUZZ_CHECK(a >= core::kMinApertureSize && (a & (a - 1)) == 0,
               "aperture size ", a, " of node ", i);
    FUZZ_CHECK(a >= n.export_size, "node ", i, " exports ", n.export_size,
               " bytes through an aperture of ", a);
    FUZZ_CHECK(n.aperture_base == next_aperture, "aperture of node ", i, " at ",
               n.aperture_base, ", expected ", next_aperture);
    next_aperture = n.aperture_base + a;
    FUZZ_CHECK(n.export_size > 0 &&
                   n.export_size % core::kExportGranularity == 0 &&
                   n.export_base % core::kExportGranularity == 0,
               "export region of node ", i);
    for (const core::Topology::PortLink& p : topo.ports(i)) {
      FUZZ_CHECK(p.port >= 1 && p.port <= n.port_count, "node ", i, " port ",
                 p.port, " outside 1..", n.port_count);
      auto peer = topo.PortPeer(i, p.port);
      FUZZ_CHECK(
          peer.has_value() && peer->first == p.peer && peer->second == p.link,
          "PortPeer(", i, ", ", p.port, ")");
    }
  }
  for (int l = 0; l < static_cast<int>(topo.links().size()); ++l) {
    const core::Link& link = topo.links()[l];
    FUZZ_CHECK(topo.FindLinkByName(link.name) == l, "link ", link.name);
    FUZZ_CHECK(link.a != link.b, "self link ", link.name);
    auto from_a = topo.PortPeer(link.a, link.a_port);
    auto from_b = topo.PortPeer(link.b, link.b_port);
    FUZZ_CHECK(
        from_a.has_value() && from_a->first == link.b && from_a->second == l,
        "link ", link.name, " not wired from a");
    FUZZ_CHECK(
        from_b.has_value() && from_b->first == link.a && from_b->second == l,
        "link ", link.name, " not wired from b");
    FUZZ_CHECK(topo.FindLink(topo.node(link.a).name, topo.node(link.b).name)
                   .has_value(),
               "FindLink for ", link.name);
  }
}

void CheckState(const core::Topology& topo) {
  // A custom topology is accepted without proving that the map fits the
  // bridges (topology.cc leaves that to the invariant checker), so only
  // rings and stars must pass it; custom ones must merely not crash it.
  const bool must_hold = topo.spec().kind != core::TopologyKind::kCustom;
  core::FabricState state(topo);
  absl::Status inv = core::CheckInvariants(state);
  FUZZ_CHECK(inv.ok() || !must_hold, "fresh fabric: ", inv.ToString());
  if (topo.node_count() < 2) return;
  absl::StatusOr<core::Grant> g = state.PlanGrant(0, 1, uint64_t{1} << 20);
  if (g.ok()) {
    g->id = "fuzz-grant";
    absl::Status added = state.AddGrant(*g);
    FUZZ_CHECK(added.ok(), "AddGrant of a planned grant: ", added.ToString());
    inv = core::CheckInvariants(state);
    FUZZ_CHECK(inv.ok() || !must_hold, "one grant: ", inv.ToString());
  }
  if (!topo.links().empty()) {
    state.SetLink(0, false);
    inv = core::CheckInvariants(state);
    FUZZ_CHECK(inv.ok() || !must_hold, "link 0 down: ", inv.ToString());
  }
}

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fabric;  // NOLINT(build/namespaces): a fuzz entry point
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<v1::FabricSpec> spec =
      client::ParseFabricSpec(json, fuzz::kSource);
  if (!spec.ok()) {
    FUZZ_CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument &&
                   client::IsUsageError(spec.status()),
               "not a usage error: ", spec.status().ToString());
    FUZZ_CHECK(absl::StartsWith(spec.status().message(), fuzz::kSource),
               "error does not name the source: ", spec.status().ToString());
    return 0;
  }
  FUZZ_CHECK(!spec->name().empty(), "accepted a spec without a name");

  std::string printed;
  FUZZ_CHECK(google::protobuf::util::MessageToJsonString(*spec, &printed).ok(),
             "cannot print the parsed spec");
  absl::StatusOr<v1::FabricSpec> reparsed =
      client::ParseFabricSpec(printed, "printed");
  FUZZ_CHECK(reparsed.ok(),
             "printed spec does not parse: ", reparsed.status().ToString(),
             "\n", printed);
  FUZZ_CHECK(
      google::protobuf::util::MessageDifferencer::Equals(*spec, *reparsed),
      "JSON round trip changed the spec:\n", printed);
  FUZZ_CHECK(client::SameFabricSpec(*spec, *reparsed), "SameFabricSpec");

  // What FabricManager::CreateFabric does before it plans anything.
  absl::StatusOr<core::FabricSpec> core_spec = service::SpecFromProto(*spec);
  if (!core_spec.ok()) {
    FUZZ_CHECK(core_spec.status().code() == absl::StatusCode::kInvalidArgument,
               core_spec.status().ToString());
    return 0;
  }
  absl::StatusOr<core::Topology> topo = core::Topology::Build(*core_spec);
  if (!topo.ok()) {
    FUZZ_CHECK(topo.status().code() == absl::StatusCode::kInvalidArgument,
               topo.status().ToString());
    return 0;
  }
  fuzz::CheckTopology(*spec, *topo);
  fuzz::CheckState(*topo);
  return 0;
}
