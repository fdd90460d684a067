#include "server/core/invariants.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/units.h"
#include "server/core/address_map.h"

namespace fabric::core {
namespace {

constexpr int kMaxReported = 20;

const char* KindName(SlotKind k) {
  return k == SlotKind::kWindow ? "window" : "LUT slot";
}

// True if [a, a+as) lies within [b, b+bs).
bool Within(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) {
  return a >= b && a - b <= bs && bs - (a - b) >= as;
}

std::string Range(uint64_t base, uint64_t size) {
  return absl::StrCat("[", FormatAddr(base), ", ", FormatAddr(base + size),
                      ")");
}

class Violations {
 public:
  template <typename... Args>
  void Add(const Args&... args) {
    ++count_;
    if (static_cast<int>(list_.size()) < kMaxReported) {
      list_.push_back(absl::StrCat(args...));
    }
  }
  absl::Status ToStatus() const {
    if (count_ == 0) return absl::OkStatus();
    std::string more =
        count_ > static_cast<int>(list_.size())
            ? absl::StrCat("; and ", count_ - list_.size(), " more")
            : "";
    return absl::InternalError(absl::StrCat(count_, " invariant violation",
                                            count_ == 1 ? "" : "s", ": ",
                                            absl::StrJoin(list_, "; "), more));
  }

 private:
  int count_ = 0;
  std::vector<std::string> list_;
};

// Flags pairs of overlapping [start, end) intervals within each group. Each
// item is {group, start, end, grant id}.
struct Span {
  int64_t group;
  uint64_t start;
  uint64_t end;
  const std::string* id;
};

template <typename Describe>
void CheckDisjoint(std::vector<Span> spans, Describe describe, Violations* v) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return std::make_pair(a.group, a.start) < std::make_pair(b.group, b.start);
  });
  for (size_t i = 1, last = 0; i < spans.size(); ++i) {
    if (spans[i].group != spans[last].group) {
      last = i;
      continue;
    }
    if (spans[i].start < spans[last].end) {
      v->Add("grants ", *spans[last].id, " and ", *spans[i].id, " overlap on ",
             describe(spans[i]));
    }
    if (spans[i].end > spans[last].end) last = i;
  }
}

// The configs of a fabric by node, built once per check so that each walk
// costs its hops, not the node count.
struct Bridges {
  Bridges(const Topology& topo, const std::vector<BridgeConfig>& configs)
      : by_node(topo.node_count(), nullptr),
        inbound_disjoint(topo.node_count(), false) {
    const int n = topo.node_count();
    for (const BridgeConfig& c : configs) {
      if (c.node < 0 || c.node >= n || by_node[c.node] != nullptr) continue;
      by_node[c.node] = &c;
      bool disjoint = true;
      for (size_t i = 1; i < c.inbound.size() && disjoint; ++i) {
        const InboundEntry& prev = c.inbound[i - 1];
        disjoint = prev.local_base + prev.size <= c.inbound[i].local_base &&
                   prev.local_base + prev.size >= prev.local_base;
      }
      inbound_disjoint[c.node] = disjoint;
    }
  }

  // Whether some inbound entry of `node` holds all of [local, local + len).
  bool Granted(int node, uint64_t local, uint64_t len) const {
    const std::vector<InboundEntry>& in = by_node[node]->inbound;
    if (!inbound_disjoint[node]) {
      for (const InboundEntry& e : in) {
        if (Within(local, len, e.local_base, e.size)) return true;
      }
      return false;
    }
    // Sorted and disjoint: only the last entry starting at or below `local`
    // can hold it.
    auto it = std::upper_bound(in.begin(), in.end(), local,
                               [](uint64_t a, const InboundEntry& e) {
                                 return a < e.local_base;
                               });
    return it != in.begin() &&
           Within(local, len, std::prev(it)->local_base, std::prev(it)->size);
  }

  std::vector<const BridgeConfig*> by_node;  // First config of each node.
  std::vector<bool> inbound_disjoint;        // Sorted by base, no overlap.
};

WalkResult Walk(const Topology& topo, const std::vector<bool>& link_up,
                const Bridges& bridges, int src, uint64_t addr,
                uint64_t len) {
  const int n = topo.node_count();
  WalkResult r;
  if (src < 0 || src >= n) {
    r.fault = absl::StrCat("source node ", src, " does not exist");
    return r;
  }
  const std::vector<const BridgeConfig*>& by_node = bridges.by_node;
  auto fault = [&](int node, std::string why) {
    r.landed = false;
    r.fault_node = node;
    r.fault = absl::StrCat("bridge ", topo.node(node).name, ": ", why);
    return r;
  };
  r.hops.push_back(src);

  const WindowEntry* window = nullptr;
  if (by_node[src] != nullptr) {
    for (const WindowEntry& w : by_node[src]->windows) {
      if (addr >= w.local_base && addr - w.local_base < w.size) {
        window = &w;
        break;
      }
    }
  }
  if (window == nullptr) {
    r.landed = true;
    r.node = src;
    r.addr = addr;
    return r;
  }
  if (window->size - (addr - window->local_base) < len) {
    return fault(src, absl::StrCat("access of ", len, " bytes at ",
                                   FormatAddr(addr), " runs past the end of ",
                                   KindName(window->kind), " ", window->slot));
  }
  const uint64_t fabric = window->xlat + (addr - window->local_base);
  int cur = src;
  while (true) {
    const MapEntry* entry = nullptr;
    if (by_node[cur] != nullptr) {
      for (const MapEntry& e : by_node[cur]->map) {
        if (fabric >= e.base && fabric - e.base < e.size) {
          entry = &e;
          break;
        }
      }
    }
    if (entry == nullptr) {
      return fault(cur, absl::StrCat("no entry for fabric address ",
                                     FormatAddr(fabric)));
    }
    if (entry->size - (fabric - entry->base) < len) {
      return fault(cur, absl::StrCat("access of ", len, " bytes at fabric ",
                                     FormatAddr(fabric),
                                     " runs past the end of its entry"));
    }
    if (entry->kind == MapEntry::Kind::kClaim) {
      const uint64_t local = entry->local_base + (fabric - entry->base);
      if (!bridges.Granted(cur, local, len)) {
        return fault(cur,
                     absl::StrCat("claimed fabric address ", FormatAddr(fabric),
                                  " -> host ", FormatAddr(local),
                                  " is not inside a granted range"));
      }
      r.landed = true;
      r.node = cur;
      r.addr = local;
      return r;
    }
    std::optional<std::pair<int, int>> peer = topo.PortPeer(cur, entry->port);
    if (!peer) {
      return fault(cur, absl::StrCat("port ", entry->port,
                                     " is not wired (fabric address ",
                                     FormatAddr(fabric), ")"));
    }
    if (!link_up[peer->second]) {
      return fault(cur, absl::StrCat("link ", topo.links()[peer->second].name,
                                     " out of port ", entry->port,
                                     " is down (fabric address ",
                                     FormatAddr(fabric), ")"));
    }
    cur = peer->first;
    r.hops.push_back(cur);
    if (static_cast<int>(r.hops.size()) - 1 > n) {
      return fault(cur,
                   absl::StrCat("loop: fabric address ", FormatAddr(fabric),
                                " crossed more than ", n, " links"));
    }
  }
}

}  // namespace

WalkResult WalkAccess(const Topology& topo, const std::vector<bool>& link_up,
                      const std::vector<BridgeConfig>& configs, int src,
                      uint64_t addr, uint64_t len) {
  return Walk(topo, link_up, Bridges(topo, configs), src, addr, len);
}

absl::Status CheckConfigs(const Topology& topo,
                          const std::vector<bool>& link_up,
                          const std::vector<const Grant*>& grants,
                          const std::vector<BridgeConfig>& configs) {
  const int n = topo.node_count();
  Violations v;

  // Grants among themselves.
  absl::flat_hash_map<std::string, const Grant*> by_id;
  std::vector<Span> target_spans;
  std::vector<Span> borrower_spans;
  std::vector<Span> slot_spans;
  for (const Grant* g : grants) {
    if (!by_id.emplace(g->id, g).second) {
      v.Add("grant id ", g->id, " appears twice");
    }
    if (g->borrower < 0 || g->borrower >= n || g->target < 0 ||
        g->target >= n) {
      v.Add("grant ", g->id, " names a node outside 0..", n - 1);
      continue;
    }
    target_spans.push_back(
        {g->target, g->target_addr, g->target_addr + g->size, &g->id});
    borrower_spans.push_back(
        {g->borrower, g->borrower_addr, g->borrower_addr + g->size, &g->id});
    slot_spans.push_back(
        {int64_t{g->borrower} * 2 + (g->slot_kind == SlotKind::kLut ? 1 : 0),
         static_cast<uint64_t>(g->slot_index),
         static_cast<uint64_t>(g->slot_index) + g->slot_count, &g->id});
  }
  CheckDisjoint(
      target_spans,
      [&](const Span& s) {
        return absl::StrCat("target bytes of node ",
                            topo.node(static_cast<int>(s.group)).name, " at ",
                            FormatAddr(s.start));
      },
      &v);
  CheckDisjoint(
      borrower_spans,
      [&](const Span& s) {
        return absl::StrCat("borrower addresses of node ",
                            topo.node(static_cast<int>(s.group)).name, " at ",
                            FormatAddr(s.start));
      },
      &v);
  CheckDisjoint(
      slot_spans,
      [&](const Span& s) {
        return absl::StrCat(s.group % 2 == 0 ? "window " : "LUT slot ", s.start,
                            " of borrower node ",
                            topo.node(static_cast<int>(s.group / 2)).name);
      },
      &v);

  // Each bridge against its profile.
  std::vector<bool> seen(n, false);
  for (const BridgeConfig& c : configs) {
    if (c.node < 0 || c.node >= n) {
      v.Add("config for node ", c.node, " outside 0..", n - 1);
      continue;
    }
    if (seen[c.node]) v.Add("two configs for node ", c.node);
    seen[c.node] = true;
    const NodeInfo& node = topo.node(c.node);
    const HardwareProfile& p = *node.profile;
    const std::string who = absl::StrCat("bridge ", node.name);

    if (static_cast<int>(c.map.size()) > p.mapping_entries) {
      v.Add(who, ": ", c.map.size(), " map entries exceed mapping_entries ",
            p.mapping_entries, " of profile ", p.name);
    }
    for (size_t i = 0; i < c.map.size(); ++i) {
      const MapEntry& e = c.map[i];
      if (e.size == 0 || e.base + e.size < e.base) {
        v.Add(who, ": map entry ", i, " at ", FormatAddr(e.base),
              " has a bad size ", e.size);
      }
      if (i > 0 && e.base < c.map[i - 1].base + c.map[i - 1].size) {
        v.Add(who, ": map entries ", i - 1, " and ", i,
              " are unsorted or overlap at ", FormatAddr(e.base));
      }
      if (e.kind == MapEntry::Kind::kClaim) {
        const bool in_export =
            Within(e.local_base, e.size, node.export_base, node.export_size);
        const bool in_mmio =
            node.mmio_size > 0 &&
            Within(e.local_base, e.size, node.mmio_base, node.mmio_size) &&
            e.base == node.mmio_aperture_base;
        if (!in_export && !in_mmio) {
          v.Add(who, ": claim ", Range(e.base, e.size), " translates to ",
                Range(e.local_base, e.size), ", outside the export region ",
                Range(node.export_base, node.export_size),
                " and the device range");
        }
      } else if (!topo.PortPeer(c.node, e.port)) {
        v.Add(who, ": forward entry ", Range(e.base, e.size),
              " uses unwired port ", e.port);
      }
    }

    int direct = 0;
    std::map<std::pair<SlotKind, int>, int> slots;
    for (const WindowEntry& w : c.windows) {
      const std::string what =
          absl::StrCat(who, ": ", KindName(w.kind), " ", w.slot);
      if (++slots[{w.kind, w.slot}] == 2) {
        v.Add(what, " is programmed twice");
      }
      auto it = by_id.find(w.grant_id);
      if (it == by_id.end() || it->second->borrower != c.node) {
        v.Add(what, " belongs to no live grant of this borrower (grant \"",
              w.grant_id, "\")");
      }
      if (w.kind == SlotKind::kWindow) {
        ++direct;
        if (w.slot < 0 || w.slot >= p.window_count) {
          v.Add(what, " is outside the window_count ", p.window_count,
                " of profile ", p.name);
          continue;
        }
        if (w.size < p.min_window_size || w.size > p.max_window_size ||
            w.size % p.size_granularity != 0) {
          v.Add(what, ": size ", w.size, " breaks profile ", p.name, " (",
                FormatSize(p.min_window_size), "..",
                FormatSize(p.max_window_size), " in steps of ",
                FormatSize(p.size_granularity), ")");
        }
        if (w.xlat % p.xlat_align != 0) {
          v.Add(what, ": translated address ", FormatAddr(w.xlat),
                " is misaligned; profile ", p.name, " needs xlat_align ",
                FormatSize(p.xlat_align));
        }
      } else {
        if (w.slot < 0 || w.slot >= p.lut_entries) {
          v.Add(what, " is outside the lut_entries ", p.lut_entries,
                " of profile ", p.name);
          continue;
        }
        if (w.size != p.lut_entry_size) {
          v.Add(what, ": size ", w.size, " is not the LUT entry size ",
                FormatSize(p.lut_entry_size), " of profile ", p.name);
        }
        if (w.xlat % p.lut_entry_size != 0) {
          v.Add(what, ": translated address ", FormatAddr(w.xlat),
                " is misaligned; profile ", p.name, " needs LUT alignment ",
                FormatSize(p.lut_entry_size));
        }
      }
      uint64_t expected = SlotAddress(node, w.kind, w.slot);
      if (w.local_base != expected) {
        v.Add(what, " sits at ", FormatAddr(w.local_base),
              ", not in its slot at ", FormatAddr(expected));
      }
    }
    if (direct > p.window_count) {
      v.Add(who, ": ", direct, " direct windows exceed window_count ",
            p.window_count, " of profile ", p.name);
    }

    for (size_t i = 0; i < c.inbound.size(); ++i) {
      const InboundEntry& in = c.inbound[i];
      if (!Within(in.local_base, in.size, node.export_base,
                  node.export_size) &&
          !(node.mmio_size > 0 &&
            Within(in.local_base, in.size, node.mmio_base, node.mmio_size))) {
        v.Add(who, ": inbound ", Range(in.local_base, in.size),
              " is outside the export region ",
              Range(node.export_base, node.export_size),
              " and the device range");
      }
      if (i > 0 &&
          in.local_base < c.inbound[i - 1].local_base + c.inbound[i - 1].size) {
        v.Add(who, ": inbound entries ", i - 1, " and ", i,
              " are unsorted or overlap at ", FormatAddr(in.local_base));
      }
      auto it = by_id.find(in.grant_id);
      if (it == by_id.end() || it->second->target != c.node ||
          it->second->target_addr != in.local_base ||
          it->second->size != in.size) {
        v.Add(who, ": inbound ", Range(in.local_base, in.size),
              " matches no live grant (grant \"", in.grant_id, "\")");
      }
    }
  }

  // Every grant's bytes land exactly where granted, or fault when cut off.
  const AddressMap oracle = AddressMap::Compute(topo, link_up);
  const Bridges bridges(topo, configs);
  for (const Grant* g : grants) {
    if (g->borrower < 0 || g->borrower >= n || g->target < 0 ||
        g->target >= n) {
      continue;
    }
    const bool reachable = oracle.Path(g->borrower, g->target).has_value();
    std::vector<std::pair<uint64_t, uint64_t>> probes = {{0, 1},
                                                         {g->size - 1, 1}};
    if (reachable) {
      uint64_t chunk = g->slot_kind == SlotKind::kWindow
                           ? g->size
                           : g->size / std::max(g->slot_count, 1);
      for (uint64_t off = 0; chunk != 0 && off < g->size; off += chunk) {
        probes.push_back({off, chunk});
      }
    }
    for (const auto& [off, len] : probes) {
      WalkResult w = Walk(topo, link_up, bridges, g->borrower,
                          g->borrower_addr + off, len);
      const std::string what =
          absl::StrCat("grant ", g->id, ": ", len, " bytes at +", off, " from ",
                       topo.node(g->borrower).name);
      if (reachable) {
        if (!w.landed) {
          v.Add(what, " fault: ", w.fault);
        } else if (w.node != g->target || w.addr != g->target_addr + off) {
          v.Add(what, " land on ", topo.node(w.node).name, " at ",
                FormatAddr(w.addr), ", expected ", topo.node(g->target).name,
                " at ", FormatAddr(g->target_addr + off));
        }
      } else if (w.landed) {
        v.Add(what, " land on ", topo.node(w.node).name, " at ",
              FormatAddr(w.addr), " although ", topo.node(g->target).name,
              " is cut off");
      }
    }
  }
  return v.ToStatus();
}

absl::Status CheckInvariants(const FabricState& state) {
  std::vector<BridgeConfig> configs;
  configs.reserve(state.topology().node_count());
  for (int i = 0; i < state.topology().node_count(); ++i) {
    configs.push_back(state.ConfigFor(i));
  }
  return CheckConfigs(state.topology(), state.link_states(), state.grants(),
                      configs);
}

}  // namespace fabric::core
