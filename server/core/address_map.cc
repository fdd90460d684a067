#include "server/core/address_map.h"

#include <algorithm>

namespace fabric::core {

bool operator==(const MapEntry& a, const MapEntry& b) {
  return a.kind == b.kind && a.base == b.base && a.size == b.size &&
         a.port == b.port && a.local_base == b.local_base;
}

const MapEntry* FindEntry(const std::vector<MapEntry>& entries, uint64_t addr) {
  auto it = std::upper_bound(
      entries.begin(), entries.end(), addr,
      [](uint64_t a, const MapEntry& e) { return a < e.base; });
  if (it == entries.begin()) return nullptr;
  --it;
  if (addr - it->base >= it->size) return nullptr;
  return &*it;
}

AddressMap AddressMap::Compute(const Topology& topo,
                               const std::vector<bool>& link_up) {
  const int n = topo.node_count();
  AddressMap map;
  map.entries_.resize(n);
  map.aperture_base_.resize(n);
  map.ports_.resize(n);
  for (int v = 0; v < n; ++v) {
    map.aperture_base_[v] = topo.node(v).aperture_base;
    for (const Topology::PortLink& pl : topo.ports(v)) {
      if (link_up[pl.link]) map.ports_[v].push_back(pl);
    }
  }

  // A star server's one way out is its link to the hub, so it forwards every
  // aperture but its own out of that port whatever the link states; the hub
  // has entries only for the servers it reaches and faults the rest. 0 =
  // route by shortest path over up links.
  std::vector<int> fixed_port(n, 0);
  if (topo.spec().kind == TopologyKind::kStar) {
    for (int v = 0; v < n; ++v) {
      if (!topo.node(v).is_hub) fixed_port[v] = topo.ports(v).front().port;
    }
  }

  std::vector<int> dist(n);
  std::vector<int> queue(n);
  // Destinations in aperture order, so each bridge's entries come out sorted
  // and merging only looks at the last entry.
  for (int d = 0; d < n; ++d) {
    std::fill(dist.begin(), dist.end(), -1);
    dist[d] = 0;
    int head = 0;
    int tail = 0;
    queue[tail++] = d;
    while (head < tail) {
      int v = queue[head++];
      for (const Topology::PortLink& pl : map.ports_[v]) {
        if (dist[pl.peer] < 0) {
          dist[pl.peer] = dist[v] + 1;
          queue[tail++] = pl.peer;
        }
      }
    }
    const NodeInfo& dst = topo.node(d);
    map.entries_[d].push_back({MapEntry::Kind::kClaim, dst.aperture_base,
                               dst.export_size, 0, dst.export_base});
    if (dst.mmio_size > 0) {
      map.entries_[d].push_back({MapEntry::Kind::kClaim,
                                 dst.mmio_aperture_base, dst.mmio_size, 0,
                                 dst.mmio_base});
    }
    for (int v = 0; v < n; ++v) {
      if (v == d) continue;
      int port = fixed_port[v];
      if (port == 0) {
        if (dist[v] < 0) continue;
        for (const Topology::PortLink& pl : map.ports_[v]) {
          if (dist[pl.peer] == dist[v] - 1) {
            port = pl.port;
            break;
          }
        }
      }
      std::vector<MapEntry>& es = map.entries_[v];
      if (!es.empty()) {
        MapEntry& last = es.back();
        if (last.kind == MapEntry::Kind::kForward && last.port == port &&
            last.base + last.size == dst.aperture_base) {
          last.size += dst.aperture_size;
          continue;
        }
      }
      es.push_back({MapEntry::Kind::kForward, dst.aperture_base,
                    dst.aperture_size, port, 0});
    }
  }
  for (const auto& es : map.entries_) {
    int forwards = 0;
    for (const MapEntry& e : es) forwards += e.kind == MapEntry::Kind::kForward;
    map.max_forward_entries_ = std::max(map.max_forward_entries_, forwards);
  }
  return map;
}

std::optional<std::vector<int>> AddressMap::Path(int from, int to) const {
  const int n = static_cast<int>(entries_.size());
  if (from < 0 || from >= n || to < 0 || to >= n) return std::nullopt;
  const uint64_t addr = aperture_base_[to];
  std::vector<int> path = {from};
  int cur = from;
  while (static_cast<int>(path.size()) <= n) {
    const MapEntry* e = FindEntry(entries_[cur], addr);
    if (e == nullptr) return std::nullopt;
    if (e->kind == MapEntry::Kind::kClaim) {
      if (cur != to) return std::nullopt;
      return path;
    }
    const auto& ports = ports_[cur];
    auto it = std::lower_bound(
        ports.begin(), ports.end(), e->port,
        [](const Topology::PortLink& pl, int p) { return pl.port < p; });
    if (it == ports.end() || it->port != e->port) return std::nullopt;
    cur = it->peer;
    path.push_back(cur);
  }
  return std::nullopt;
}

}  // namespace fabric::core
