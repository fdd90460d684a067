#include "server/service/convert.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/excerpt.h"

namespace fabric::service {

absl::StatusOr<core::FabricSpec> SpecFromProto(const v1::FabricSpec& spec) {
  core::FabricSpec out;
  out.name = spec.name();
  switch (spec.topology()) {
    case v1::RING:
      out.kind = core::TopologyKind::kRing;
      break;
    case v1::STAR:
      out.kind = core::TopologyKind::kStar;
      break;
    case v1::CUSTOM:
      out.kind = core::TopologyKind::kCustom;
      break;
    default:
      return absl::InvalidArgumentError(
          "spec.topology: required; one of RING, STAR, CUSTOM");
  }
  for (const auto& n : spec.nodes()) {
    core::NodeSpec ns;
    ns.name = n.name();
    ns.profile = n.profile();
    ns.export_base = n.export_base();
    ns.export_size = n.export_size();
    ns.window_base = n.window_base();
    ns.mmio_base = n.mmio_base();
    ns.mmio_size = n.mmio_size();
    out.nodes.push_back(std::move(ns));
  }
  out.hub = spec.hub();
  if (!spec.default_profile().empty())
    out.default_profile = spec.default_profile();
  if (spec.default_export_size() != 0)
    out.default_export_size = spec.default_export_size();
  for (const auto& l : spec.links()) {
    out.links.push_back({l.a(), l.a_port(), l.b(), l.b_port()});
  }
  return out;
}

v1::HardwareProfile ProfileToProto(const core::HardwareProfile& p) {
  v1::HardwareProfile out;
  out.set_name(p.name);
  out.set_description(p.description);
  out.set_window_count(p.window_count);
  out.set_lut_entries(p.lut_entries);
  out.set_lut_entry_size(p.lut_entry_size);
  out.set_xlat_align(p.xlat_align);
  out.set_size_granularity(p.size_granularity);
  out.set_min_window_size(p.min_window_size);
  out.set_max_window_size(p.max_window_size);
  out.set_mapping_entries(p.mapping_entries);
  out.set_doorbells(p.doorbells);
  out.set_scratchpads(p.scratchpads);
  return out;
}

v1::SlotKind SlotKindToProto(core::SlotKind k) {
  return k == core::SlotKind::kLut ? v1::LUT : v1::WINDOW;
}

core::SlotKind SlotKindFromProto(v1::SlotKind k) {
  return k == v1::LUT ? core::SlotKind::kLut : core::SlotKind::kWindow;
}

std::string CoveredNodes(const core::Topology& topo, uint64_t base,
                         uint64_t size) {
  const int n = topo.node_count();
  if (n == 0 || size == 0) return "";
  // Node i's aperture is [region + i * aperture, +aperture) (topology.h):
  // the nodes covered are found by division, not by a walk of every node
  // (a configuration names this for each of its entries).
  using U128 = unsigned __int128;
  const U128 region = topo.node(0).aperture_base;
  const U128 aperture = topo.node(0).aperture_size;
  const U128 begin = base;
  const U128 end = begin + size;
  if (aperture == 0 || end <= region || begin >= region + aperture * n) {
    return "";
  }
  const int first =
      begin <= region ? 0 : static_cast<int>((begin - region) / aperture);
  const int last =
      static_cast<int>(std::min<U128>(n - 1, (end - 1 - region) / aperture));
  if (first == last) return topo.node(first).name;
  return absl::StrCat(topo.node(first).name, "..", topo.node(last).name);
}

absl::StatusOr<std::string> ParseName(absl::string_view field,
                                      absl::string_view name,
                                      absl::string_view collection) {
  std::string prefix = absl::StrCat(collection, "/");
  absl::string_view id = name;
  if (absl::StartsWith(id, prefix)) id.remove_prefix(prefix.size());
  if (id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": required, as ", prefix, "{id}"));
  }
  if (id.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", Excerpt(name), "\" is ", id.size(),
        " characters; a name is at most ", kMaxNameLength));
  }
  if (absl::StrContains(id, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", Excerpt(name),
                     "\" is not a name of the form ", prefix, "{id}"));
  }
  return std::string(id);
}

}  // namespace fabric::service
