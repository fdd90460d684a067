#include "server/core/topology.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/excerpt.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::core {
namespace {

std::string NodeField(int i, absl::string_view member) {
  return absl::StrCat("nodes[", i, "].", member);
}

absl::Status ValidateSize(absl::string_view field, uint64_t size) {
  if (size % kExportGranularity != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", size, " is not a multiple of ",
                     FormatSize(kExportGranularity)));
  }
  if (size > kMaxExportSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", FormatSize(size), " exceeds the limit of ",
                     FormatSize(kMaxExportSize)));
  }
  return absl::OkStatus();
}

bool Overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

const char* KindName(TopologyKind kind) {
  switch (kind) {
    case TopologyKind::kRing:
      return "ring";
    case TopologyKind::kStar:
      return "star";
    case TopologyKind::kCustom:
      return "custom";
  }
  return "?";
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 63 &&
            absl::ascii_islower(static_cast<unsigned char>(name[0])) &&
            name.back() != '-' && !absl::StrContains(name, "--");
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!absl::ascii_islower(u) && !absl::ascii_isdigit(u) && c != '-') {
      ok = false;
    }
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": \"", Excerpt(name),
      "\" must be 1-63 lowercase letters, digits or single hyphens, starting "
      "with a letter and not ending with a hyphen"));
}

absl::StatusOr<Topology> Topology::Build(const FabricSpec& spec) {
  RETURN_IF_ERROR(ValidateName("name", spec.name));
  const HardwareProfile* default_profile = FindProfile(spec.default_profile);
  if (default_profile == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_profile: unknown profile \"",
                     spec.default_profile, "\"; known: ", KnownProfileNames()));
  }
  if (spec.default_export_size == 0) {
    return absl::InvalidArgumentError(
        "default_export_size: must be greater than 0");
  }
  RETURN_IF_ERROR(
      ValidateSize("default_export_size", spec.default_export_size));

  const int n = static_cast<int>(spec.nodes.size());
  const int min_nodes = spec.kind == TopologyKind::kCustom ? 1 : 2;
  if (n < min_nodes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nodes: a ", KindName(spec.kind), " needs at least ", min_nodes,
        " node", min_nodes == 1 ? "" : "s", ", got ", n));
  }
  if (n > kMaxNodes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nodes: at most ", kMaxNodes, " nodes are supported, got ", n));
  }

  Topology topo;
  topo.spec_ = spec;
  topo.nodes_.reserve(n);
  uint64_t largest_export = 0;
  uint64_t largest_mmio = 0;
  for (int i = 0; i < n; ++i) {
    const NodeSpec& ns = spec.nodes[i];
    RETURN_IF_ERROR(ValidateName(NodeField(i, "name"), ns.name));
    if (!topo.node_index_.emplace(ns.name, i).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeField(i, "name"), ": duplicate name \"", ns.name, "\""));
    }
    NodeInfo info;
    info.name = ns.name;
    info.profile =
        ns.profile.empty() ? default_profile : FindProfile(ns.profile);
    if (info.profile == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(NodeField(i, "profile"), ": unknown profile \"",
                       ns.profile, "\"; known: ", KnownProfileNames()));
    }
    const HardwareProfile& p = *info.profile;
    info.export_base =
        ns.export_base == 0 ? kDefaultExportBase : ns.export_base;
    info.export_size =
        ns.export_size == 0 ? spec.default_export_size : ns.export_size;
    info.window_base =
        ns.window_base == 0 ? kDefaultWindowBase : ns.window_base;
    if (info.export_base % kExportGranularity != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeField(i, "export_base"), ": ", FormatAddr(info.export_base),
          " is not a multiple of ", FormatSize(kExportGranularity)));
    }
    RETURN_IF_ERROR(
        ValidateSize(NodeField(i, "export_size"), info.export_size));
    if (info.export_base > UINT64_MAX - info.export_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeField(i, "export_base"), ": ", FormatAddr(info.export_base),
          " + ", FormatSize(info.export_size), " overflows 64 bits"));
    }
    if (info.window_base % p.max_window_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeField(i, "window_base"), ": ", FormatAddr(info.window_base),
          " is not aligned to ", FormatSize(p.max_window_size),
          ", the largest window of profile ", p.name));
    }
    const uint64_t window_span =
        static_cast<uint64_t>(p.window_count) * p.max_window_size +
        static_cast<uint64_t>(p.lut_entries) * p.lut_entry_size;
    if (info.window_base > UINT64_MAX - window_span) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeField(i, "window_base"), ": ", FormatAddr(info.window_base),
          " + ", FormatSize(window_span), " of windows for profile ", p.name,
          " overflows 64 bits"));
    }
    if (Overlaps(info.export_base, info.export_size, info.window_base,
                 window_span)) {
      return absl::InvalidArgumentError(absl::StrCat(
          NodeField(i, "window_base"), ": window region [",
          FormatAddr(info.window_base), ", ",
          FormatAddr(info.window_base + window_span),
          ") overlaps the export region [", FormatAddr(info.export_base), ", ",
          FormatAddr(info.export_base + info.export_size), ")"));
    }
    info.mmio_base = ns.mmio_base;
    info.mmio_size = ns.mmio_size;
    if (info.mmio_size != 0 || info.mmio_base != 0) {
      RETURN_IF_ERROR(ValidateSize(NodeField(i, "mmio_size"), info.mmio_size));
      if (info.mmio_base % kExportGranularity != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            NodeField(i, "mmio_base"), ": ", FormatAddr(info.mmio_base),
            " is not a multiple of ", FormatSize(kExportGranularity)));
      }
      if (info.mmio_base > UINT64_MAX - info.mmio_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            NodeField(i, "mmio_base"), ": ", FormatAddr(info.mmio_base), " + ",
            FormatSize(info.mmio_size), " overflows 64 bits"));
      }
      if (Overlaps(info.mmio_base, info.mmio_size, info.export_base,
                   info.export_size) ||
          Overlaps(info.mmio_base, info.mmio_size, info.window_base,
                   window_span)) {
        return absl::InvalidArgumentError(absl::StrCat(
            NodeField(i, "mmio_base"), ": device range [",
            FormatAddr(info.mmio_base), ", ",
            FormatAddr(info.mmio_base + info.mmio_size),
            ") overlaps the node's export or window region"));
      }
      largest_mmio = std::max(largest_mmio, info.mmio_size);
    }
    info.port_count = 0;
    info.is_hub = false;
    largest_export = std::max(largest_export, info.export_size);
    topo.nodes_.push_back(std::move(info));
  }

  if (spec.kind != TopologyKind::kStar && !spec.hub.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hub: only a star has a hub; this is a ", KindName(spec.kind)));
  }
  if (spec.kind != TopologyKind::kCustom && !spec.links.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("links: only a custom topology lists links; a ",
                     KindName(spec.kind), " is wired from its node order"));
  }

  // Wiring: (a, a_port, b, b_port) tuples.
  std::vector<Link> links;
  switch (spec.kind) {
    case TopologyKind::kRing:
      for (int i = 0; i < n; ++i) {
        links.push_back({"", i, 2, (i + 1) % n, 1});
      }
      break;
    case TopologyKind::kStar: {
      auto hub = topo.node_index_.find(spec.hub);
      if (hub == topo.node_index_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("hub: \"", spec.hub, "\" is not one of nodes"));
      }
      topo.nodes_[hub->second].is_hub = true;
      int k = 0;
      for (int i = 0; i < n; ++i) {
        if (i == hub->second) continue;
        links.push_back({"", hub->second, k + 1, i, 1});
        ++k;
      }
      break;
    }
    case TopologyKind::kCustom:
      for (size_t j = 0; j < spec.links.size(); ++j) {
        const LinkSpec& ls = spec.links[j];
        std::string field = absl::StrCat("links[", j, "]");
        auto a = topo.node_index_.find(ls.a);
        if (a == topo.node_index_.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat(field, ".a: \"", ls.a, "\" is not one of nodes"));
        }
        auto b = topo.node_index_.find(ls.b);
        if (b == topo.node_index_.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat(field, ".b: \"", ls.b, "\" is not one of nodes"));
        }
        if (a->second == b->second) {
          return absl::InvalidArgumentError(absl::StrCat(
              field, ": self link on \"", ls.a, "\"; a link joins two nodes"));
        }
        for (auto [port, pf] :
             {std::pair<int, const char*>{ls.a_port, "a_port"},
              {ls.b_port, "b_port"}}) {
          if (port < 1 || port > kMaxPort) {
            return absl::InvalidArgumentError(absl::StrCat(
                field, ".", pf, ": port ", port, " is outside 1..", kMaxPort));
          }
        }
        links.push_back({"", a->second, ls.a_port, b->second, ls.b_port});
      }
      break;
  }

  topo.ports_.resize(n);
  for (size_t j = 0; j < links.size(); ++j) {
    Link& l = links[j];
    l.name = absl::StrCat(topo.nodes_[l.a].name, "--", topo.nodes_[l.b].name);
    if (!topo.link_index_.emplace(l.name, static_cast<int>(j)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("links[", j, "]: duplicate link \"", l.name,
                       "\"; at most one link per ordered pair of nodes"));
    }
    topo.pair_index_.emplace(
        std::make_pair(std::min(l.a, l.b), std::max(l.a, l.b)),
        static_cast<int>(j));
    topo.ports_[l.a].push_back({l.a_port, l.b, static_cast<int>(j)});
    topo.ports_[l.b].push_back({l.b_port, l.a, static_cast<int>(j)});
  }
  for (int i = 0; i < n; ++i) {
    auto& ports = topo.ports_[i];
    std::sort(
        ports.begin(), ports.end(),
        [](const PortLink& x, const PortLink& y) { return x.port < y.port; });
    for (size_t k = 1; k < ports.size(); ++k) {
      if (ports[k].port == ports[k - 1].port) {
        return absl::InvalidArgumentError(absl::StrCat(
            "links[", std::max(ports[k].link, ports[k - 1].link), "]: port ",
            ports[k].port, " of \"", topo.nodes_[i].name,
            "\" is already used by link ",
            links[std::min(ports[k].link, ports[k - 1].link)].name));
      }
    }
    topo.nodes_[i].port_count = ports.empty() ? 0 : ports.back().port;
  }

  // The mapping chip must hold the map in every link state. For rings and
  // stars the need is bounded whatever the links (AddressMap says why): a
  // ring bridge needs one claim plus up to 3 forward runs, a star server
  // 1 + 2, the hub 1 + one per server. Custom topologies are checked by
  // CheckInvariants.
  for (int i = 0; i < n; ++i) {
    const NodeInfo& info = topo.nodes_[i];
    int need = 0;
    if (spec.kind == TopologyKind::kRing) need = std::min(n, 4);
    if (spec.kind == TopologyKind::kStar)
      need = info.is_hub ? n : std::min(n, 3);
    if (info.mmio_size > 0) ++need;  // The device range's claim.
    if (info.profile->mapping_entries < need) {
      return absl::InvalidArgumentError(
          absl::StrCat(NodeField(i, "profile"), ": profile ",
                       info.profile->name, " of \"", info.name, "\" has ",
                       info.profile->mapping_entries, " mapping entries; this ",
                       KindName(spec.kind), " of ", n, " nodes needs ", need));
    }
  }

  uint64_t aperture = kMinApertureSize;
  while (aperture < std::max(largest_export, largest_mmio)) aperture <<= 1;
  // With device MMIO anywhere, each aperture's upper half is its node's
  // device range, so forwarding entries still cover whole apertures.
  const uint64_t half = aperture;
  if (largest_mmio > 0) aperture <<= 1;
  if (static_cast<unsigned __int128>(aperture) * n + kApertureRegionBase >
      static_cast<unsigned __int128>(UINT64_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nodes: ", n, " apertures of ", FormatSize(aperture),
        " overflow the 64-bit fabric address space"));
  }
  for (int i = 0; i < n; ++i) {
    NodeInfo& info = topo.nodes_[i];
    info.aperture_base =
        kApertureRegionBase + static_cast<uint64_t>(i) * aperture;
    info.aperture_size = aperture;
    if (info.mmio_size > 0) info.mmio_aperture_base = info.aperture_base + half;
  }
  topo.links_ = std::move(links);
  return topo;
}

std::optional<int> Topology::FindNode(absl::string_view name) const {
  auto it = node_index_.find(name);
  if (it == node_index_.end()) return std::nullopt;
  return it->second;
}

std::optional<int> Topology::FindLink(absl::string_view node_a,
                                      absl::string_view node_b) const {
  std::optional<int> a = FindNode(node_a);
  std::optional<int> b = FindNode(node_b);
  if (!a || !b) return std::nullopt;
  auto it =
      pair_index_.find(std::make_pair(std::min(*a, *b), std::max(*a, *b)));
  if (it == pair_index_.end()) return std::nullopt;
  return it->second;
}

std::optional<int> Topology::FindLinkByName(absl::string_view name) const {
  auto it = link_index_.find(name);
  if (it == link_index_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::pair<int, int>> Topology::PortPeer(int node,
                                                      int port) const {
  if (node < 0 || node >= node_count()) return std::nullopt;
  const auto& ports = ports_[node];
  auto it =
      std::lower_bound(ports.begin(), ports.end(), port,
                       [](const PortLink& pl, int p) { return pl.port < p; });
  if (it == ports.end() || it->port != port) return std::nullopt;
  return std::make_pair(it->peer, it->link);
}

}  // namespace fabric::core
