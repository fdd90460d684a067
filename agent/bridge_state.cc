#include "agent/bridge_state.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/units.h"

namespace fabric::agent {
namespace {

hw::SlotKind SlotKindOf(v1::SlotKind k) {
  return k == v1::LUT ? hw::SlotKind::kLut : hw::SlotKind::kWindow;
}

// FNV-1a, folded over the values the hardware holds.
class Fnv {
 public:
  void Add(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h_ ^= (v >> (8 * i)) & 0xff;
      h_ *= 0x100000001b3ull;
    }
  }
  void Add(const std::string& s) {
    Add(s.size());
    for (unsigned char c : s) {
      h_ ^= c;
      h_ *= 0x100000001b3ull;
    }
  }
  uint64_t value() const { return h_ == 0 ? 1 : h_; }  // 0 means "none"

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace

std::string SlotEntryName(hw::SlotKind kind, int slot) {
  return absl::StrCat(kind == hw::SlotKind::kLut ? "lut slot " : "window ",
                      slot);
}

// Windows compare by what the hardware holds; the tag is bookkeeping that
// some hardware (ntb_tool) cannot store.
bool SameWindow(const hw::Window& a, const hw::Window& b) {
  return a.kind == b.kind && a.slot == b.slot && a.local_base == b.local_base &&
         a.size == b.size && a.xlat == b.xlat;
}

bool SameHostMemory(const hw::HostMemory& a, const hw::HostMemory& b) {
  return a.base == b.base && a.size == b.size &&
         a.window_base == b.window_base && a.mmio_base == b.mmio_base &&
         a.mmio_size == b.mmio_size;
}

bool SameMapEntry(const hw::MapEntry& a, const hw::MapEntry& b) {
  return a.kind == b.kind && a.base == b.base && a.size == b.size &&
         a.port == b.port && a.local_base == b.local_base;
}

bool SamePort(const hw::Port& a, const hw::Port& b) {
  return a.number == b.number && a.peer_bridge == b.peer_bridge &&
         a.peer_port == b.peer_port && a.up == b.up;
}

uint64_t RecordedFingerprint(const hw::BridgeState& s) {
  if (s.scratchpads.size() <= kFingerprintSpadHigh) return 0;
  return (static_cast<uint64_t>(s.scratchpads[kFingerprintSpadHigh]) << 32) |
         s.scratchpads[kFingerprintSpadLow];
}

hw::BridgeState DesiredState(const agentproto::v1::DesiredConfig& config) {
  hw::BridgeState s;
  s.memory.base = config.export_base();
  s.memory.size = config.export_size();
  s.memory.mmio_base = config.mmio_base();
  s.memory.mmio_size = config.mmio_size();
  s.memory.window_base = config.window_base();
  for (const auto& e : config.address_map().entries()) {
    hw::MapEntry m;
    m.kind = e.kind() == v1::MapEntry::CLAIM ? hw::MapEntry::Kind::kClaim
                                             : hw::MapEntry::Kind::kForward;
    m.base = e.base();
    m.size = e.size();
    m.port = e.port();
    m.local_base = e.local_base();
    s.map.push_back(m);
  }
  for (const auto& w : config.address_map().windows()) {
    hw::Window h;
    h.kind = SlotKindOf(w.slot_kind());
    h.slot = w.slot();
    h.local_base = w.local_base();
    h.size = w.size();
    h.xlat = w.translated_addr();
    h.tag = std::string(absl::StripPrefix(w.allocation(), "allocations/"));
    s.windows.push_back(h);
  }
  for (const auto& i : config.address_map().inbound()) {
    s.inbound.push_back(
        {i.local_base(), i.size(),
         std::string(absl::StripPrefix(i.allocation(), "allocations/"))});
  }
  for (const auto& p : config.ports()) {
    s.ports.push_back(
        {p.number(),
         std::string(absl::StripPrefix(p.peer_bridge(), "bridges/")),
         p.peer_port(), p.up()});
  }
  std::sort(s.map.begin(), s.map.end(),
            [](const auto& a, const auto& b) { return a.base < b.base; });
  std::sort(s.windows.begin(), s.windows.end(),
            [](const auto& a, const auto& b) {
              return std::tie(a.kind, a.slot) < std::tie(b.kind, b.slot);
            });
  std::sort(
      s.inbound.begin(), s.inbound.end(),
      [](const auto& a, const auto& b) { return a.local_base < b.local_base; });
  std::sort(s.ports.begin(), s.ports.end(),
            [](const auto& a, const auto& b) { return a.number < b.number; });
  return s;
}

uint64_t Fingerprint(const hw::BridgeState& s) {
  Fnv f;
  f.Add(s.memory.base);
  f.Add(s.memory.size);
  f.Add(s.memory.window_base);
  // Folded in only when set, so that a state without an MMIO range keeps
  // the fingerprint it had before the range took part: a restarted agent
  // still tells drift from news on bridges an older agent programmed.
  if (s.memory.mmio_base != 0 || s.memory.mmio_size != 0) {
    f.Add(s.memory.mmio_base);
    f.Add(s.memory.mmio_size);
  }
  f.Add(s.map.size());
  for (const auto& m : s.map) {
    f.Add(static_cast<uint64_t>(m.kind));
    f.Add(m.base);
    f.Add(m.size);
    f.Add(static_cast<uint64_t>(m.port));
    f.Add(m.local_base);
  }
  f.Add(s.windows.size());
  for (const auto& w : s.windows) {
    f.Add(static_cast<uint64_t>(w.kind));
    f.Add(static_cast<uint64_t>(w.slot));
    f.Add(w.local_base);
    f.Add(w.size);
    f.Add(w.xlat);
  }
  f.Add(s.inbound.size());
  for (const auto& i : s.inbound) {
    f.Add(i.local_base);
    f.Add(i.size);
  }
  f.Add(s.ports.size());
  for (const auto& p : s.ports) {
    f.Add(static_cast<uint64_t>(p.number));
    f.Add(p.peer_bridge);
    f.Add(static_cast<uint64_t>(p.peer_port));
    f.Add(static_cast<uint64_t>(p.up));
  }
  return f.value();
}

std::vector<std::string> DiffEntries(const hw::BridgeState& have,
                                     const hw::BridgeState& want) {
  std::vector<std::string> out;
  if (!SameHostMemory(have.memory, want.memory)) out.push_back("host memory");
  for (size_t i = 0; i < std::max(have.map.size(), want.map.size()); ++i) {
    if (i >= have.map.size() || i >= want.map.size() ||
        !SameMapEntry(have.map[i], want.map[i])) {
      out.push_back(absl::StrCat("map entry ", i));
    }
  }
  std::map<std::pair<hw::SlotKind, int>, const hw::Window*> have_w, want_w;
  for (const auto& w : have.windows) have_w[{w.kind, w.slot}] = &w;
  for (const auto& w : want.windows) want_w[{w.kind, w.slot}] = &w;
  std::set<std::pair<hw::SlotKind, int>> slots;
  for (const auto& [k, w] : have_w) slots.insert(k);
  for (const auto& [k, w] : want_w) slots.insert(k);
  for (const auto& k : slots) {
    auto h = have_w.find(k);
    auto w = want_w.find(k);
    if (h == have_w.end() || w == want_w.end() ||
        !SameWindow(*h->second, *w->second)) {
      out.push_back(SlotEntryName(k.first, k.second));
    }
  }
  std::set<std::pair<uint64_t, uint64_t>> have_i, want_i;
  for (const auto& i : have.inbound) have_i.insert({i.local_base, i.size});
  for (const auto& i : want.inbound) want_i.insert({i.local_base, i.size});
  for (const auto& i : want_i) {
    if (!have_i.count(i))
      out.push_back(absl::StrCat("inbound ", FormatAddr(i.first)));
  }
  for (const auto& i : have_i) {
    if (!want_i.count(i))
      out.push_back(absl::StrCat("inbound ", FormatAddr(i.first)));
  }
  for (const auto& p : want.ports) {
    auto it =
        std::find_if(have.ports.begin(), have.ports.end(),
                     [&](const hw::Port& h) { return h.number == p.number; });
    if (it == have.ports.end() || !SamePort(*it, p)) {
      out.push_back(absl::StrCat("port ", p.number));
    }
  }
  return out;
}

}  // namespace fabric::agent
