#include "server/offers/offer_book.h"

#include <algorithm>
#include <deque>
#include <tuple>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace fabric::offers {
namespace {

constexpr uint64_t kDefaultChunk = uint64_t{1} << 30;
constexpr uint64_t kMinChunk = uint64_t{4} << 10;
constexpr uint64_t kMaxChunk = uint64_t{1} << 40;
// At most this many memory chunks of one lender are offered: offer sets stay
// small, and a recompute (quadratic in the devices of a pool) fast, even
// for tiny chunks of a huge region.
constexpr int kMaxChunksPerLender = 256;
constexpr size_t kMaxIdLength = 63;
constexpr absl::string_view kMemoryPool = "memory";
// Windows an attachment takes on its VF's lender: the VF's DMA onto the
// borrower's memory and its MSI-X doorbell (AttachmentPlanner).
constexpr int kLenderWindowsPerVf = 2;

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
uint64_t AlignDown(uint64_t v, uint64_t a) { return v / a * a; }

// A stable 64-bit FNV-1a hash (absl::Hash is salted per process).
uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string ConsumerOwner(absl::string_view node) {
  return absl::StrCat("node/", absl::StripPrefix(node, "nodes/"));
}

std::string OfferId(absl::string_view raw) {
  std::string id = absl::AsciiStrToLower(raw);
  for (char& c : id) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-') c = '-';
  }
  if (id.size() <= kMaxIdLength) return id;
  return absl::StrFormat("%s-%016x", id.substr(0, kMaxIdLength - 17),
                         Fnv1a(raw));
}

std::string VfOfferId(absl::string_view lender, absl::string_view address) {
  return OfferId(absl::StrCat("vf-", lender, "-", address));
}

std::string VfOfferIdOf(absl::string_view vf) {
  // "nodes/{lender}/vfs/{0000-3b-02.0}" or "{lender}/{0000:3b:02.0}"; the
  // id maps ':' to '-', so both spellings give the same one.
  absl::string_view rest = absl::StripPrefix(vf, "nodes/");
  size_t cut = rest.find("/vfs/");
  size_t skip = 5;
  if (cut == absl::string_view::npos) {
    cut = rest.find('/');
    skip = 1;
  }
  if (cut == absl::string_view::npos || cut + skip >= rest.size()) return "";
  return VfOfferId(rest.substr(0, cut), rest.substr(cut + skip));
}

std::string MemoryOfferId(absl::string_view lender, int index) {
  return OfferId(absl::StrCat("mem-", lender, "-", index));
}

OfferBook::OfferBook(OfferBookOptions options) : options_(options) {}

void OfferBook::SetView(FabricView view, absl::Time now) {
  view_ = std::move(view);
  hops_.clear();
  node_index_.clear();
  for (size_t i = 0; i < view_.nodes.size(); ++i) {
    node_index_.emplace(view_.nodes[i].name, i);
  }
  load_.clear();
  Recompute(now);
  view_.freed_vfs.clear();
  view_.freed_lenders.clear();
  view_.all_freed = false;
}

void OfferBook::Tick(absl::Time now) {
  if (now < NextDeadline()) {
    now_ = now;
    return;
  }
  Recompute(now);
}

absl::Time OfferBook::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, a] : assigned_) {
    if (a.withdrawn) next = std::min(next, a.until);
  }
  for (const auto& [node, w] : watchers_) {
    if (w.streams == 0) next = std::min(next, w.leaving_until);
  }
  return next;
}

absl::Status OfferBook::Watch(absl::string_view node, uint64_t chunk_bytes,
                              absl::Time now) {
  if (chunk_bytes == 0) chunk_bytes = kDefaultChunk;
  if (chunk_bytes < kMinChunk || chunk_bytes > kMaxChunk ||
      (chunk_bytes & (chunk_bytes - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "memory_chunk_bytes: ", chunk_bytes,
        " is not a power of two from 4096 (4 KiB) to 1099511627776 (1 TiB)"));
  }
  const NodeInfo* info = FindNode(node);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat("node: no node ", node));
  }
  for (const auto& [other, w] : watchers_) {
    const NodeInfo* o = FindNode(other);
    if (other != info->name && o != nullptr && o->fabric == info->fabric &&
        !info->fabric.empty() && w.chunk_bytes != chunk_bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "memory_chunk_bytes: fabric ", info->fabric, " uses chunks of ",
          w.chunk_bytes, " bytes (node ", other, "); this request asks ",
          chunk_bytes));
    }
  }
  Watcher& w = watchers_[info->name];
  if (w.streams > 0 && w.chunk_bytes != chunk_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("memory_chunk_bytes: node ", info->name,
                     " already watches with chunks of ", w.chunk_bytes));
  }
  if (w.chunk_bytes != chunk_bytes) {
    // A new chunk size (after a grace): the old chunks are not this one's.
    for (auto it = assigned_.begin(); it != assigned_.end();) {
      const bool memory = it->first.rfind("mem-", 0) == 0;
      it = memory && it->second.node == info->name ? assigned_.erase(it)
                                                   : std::next(it);
    }
  }
  w.chunk_bytes = chunk_bytes;
  ++w.streams;
  w.leaving_until = absl::InfiniteFuture();
  Recompute(now);
  return absl::OkStatus();
}

void OfferBook::Unwatch(absl::string_view node, absl::Time now) {
  auto it = watchers_.find(absl::StripPrefix(node, "nodes/"));
  if (it == watchers_.end() || it->second.streams == 0) return;
  if (--it->second.streams == 0) {
    it->second.leaving_until = now + options_.stream_grace;
  }
  Recompute(now);
}

const NodeInfo* OfferBook::FindNode(absl::string_view node) const {
  auto it = node_index_.find(absl::StripPrefix(node, "nodes/"));
  return it == node_index_.end() ? nullptr : &view_.nodes[it->second];
}

bool OfferBook::Watching(const std::string& node) const {
  auto it = watchers_.find(node);
  return it != watchers_.end() && it->second.streams > 0;
}

uint64_t OfferBook::ChunkOf(const std::string& fabric) const {
  for (const auto& [node, w] : watchers_) {
    const NodeInfo* n = FindNode(node);
    if (n != nullptr && n->fabric == fabric) return w.chunk_bytes;
  }
  return 0;
}

int OfferBook::Hops(const std::string& from, const std::string& to) const {
  auto it = hops_.find(from);
  if (it == hops_.end()) {
    std::map<std::string, int, std::less<>> dist{{from, 0}};
    std::deque<std::string> queue{from};
    while (!queue.empty()) {
      const std::string u = std::move(queue.front());
      queue.pop_front();
      auto next = view_.adjacent.find(u);
      if (next == view_.adjacent.end()) continue;
      const int d = dist[u] + 1;
      for (const std::string& w : next->second) {
        if (dist.emplace(w, d).second) queue.push_back(w);
      }
    }
    it = hops_.emplace(from, std::move(dist)).first;
  }
  auto d = it->second.find(to);
  return d == it->second.end() ? -1 : d->second;
}

double OfferBook::LenderLoad(const std::string& lender) const {
  auto it = load_.find(lender);
  return it == load_.end() ? 0.0 : it->second;
}

void OfferBook::Recompute(absl::Time now) {
  now_ = now;
  BuildDevices();
  UpdateEpochs();
  ExpireGraces(now);
  Rebalance(now);
  Assign();
}

void OfferBook::BuildDevices() {
  devices_.clear();
  // Lender load: the mean of the lent fractions of what it lends.
  std::map<std::string, std::pair<int, int>> vf_counts;  // lent, total
  for (const VfInfo& vf : view_.vfs) {
    auto& c = vf_counts[vf.lender];
    ++c.second;
    if (!vf.borrower.empty()) ++c.first;
  }
  for (const MemoryInfo& m : view_.memory) {
    uint64_t used = 0;
    for (const auto& [addr, size] : m.used) used += size;
    double sum = m.export_size == 0
                     ? 0.0
                     : std::min(1.0, static_cast<double>(used) /
                                         static_cast<double>(m.export_size));
    int kinds = m.export_size == 0 ? 0 : 1;
    if (auto it = vf_counts.find(m.lender); it != vf_counts.end()) {
      sum += static_cast<double>(it->second.first) / it->second.second;
      ++kinds;
    }
    load_[m.lender] = kinds == 0 ? 0.0 : sum / kinds;
  }
  for (const auto& [lender, c] : vf_counts) {
    if (!load_.count(lender)) {
      load_[lender] = static_cast<double>(c.first) / c.second;
    }
  }

  for (const VfInfo& vf : view_.vfs) {
    const NodeInfo* lender = FindNode(vf.lender);
    Device d;
    d.id = VfOfferId(vf.lender, vf.address);
    d.pool = absl::StrFormat("vf-%04x-%04x", vf.vendor_id, vf.device_id);
    d.lender = vf.lender;
    d.fabric = lender == nullptr ? "" : lender->fabric;
    d.free = vf.borrower.empty();
    if (!d.free) {
      if (vf.owner != ConsumerOwner(vf.borrower)) continue;  // lent elsewhere
      d.held_by = vf.borrower;
      d.claim = vf.attachment;
    }
    d.healthy = vf.healthy;
    d.reason = vf.healthy ? "" : absl::StrCat("VF unhealthy: ",
                                              vf.health_reason);
    d.vf = &vf;
    d.borrower_windows = std::max(0, vf.windows);
    d.lender_windows = kLenderWindowsPerVf;
    devices_[d.id] = std::move(d);
  }
  // Node consumers' memory claims by lender, in view order: one pass over
  // the claims, not one per lender (a fabric holds tens of thousands).
  absl::flat_hash_map<absl::string_view, std::vector<const MemoryClaim*>>
      holds_by_lender;
  for (const MemoryClaim& c : view_.claims) {
    if (c.owner == ConsumerOwner(c.borrower)) {
      holds_by_lender[c.lender].push_back(&c);
    }
  }
  for (const MemoryInfo& m : view_.memory) {
    const NodeInfo* lender = FindNode(m.lender);
    if (lender == nullptr || lender->fabric.empty()) continue;
    const uint64_t chunk = ChunkOf(lender->fabric);
    if (chunk == 0) continue;
    auto holds = holds_by_lender.find(m.lender);
    BuildMemory(m, chunk, lender->fabric,
                holds == holds_by_lender.end()
                    ? absl::Span<const MemoryClaim* const>()
                    : absl::MakeConstSpan(holds->second));
  }
  // Forget the indices of chunks no longer held.
  std::set<std::string> held;
  memory_by_lender_.clear();
  for (const auto& [id, d] : devices_) {
    if (d.vf != nullptr) continue;
    memory_by_lender_[d.lender].push_back(&d);
    if (!d.held_by.empty()) held.insert(d.claim);
  }
  for (auto it = chunk_index_.begin(); it != chunk_index_.end();) {
    it = held.count(it->first) ? std::next(it) : chunk_index_.erase(it);
  }
}

void OfferBook::BuildMemory(const MemoryInfo& m, uint64_t chunk,
                            const std::string& fabric,
                            absl::Span<const MemoryClaim* const> claims) {
  // Free chunks: chunk-aligned, wholly outside every used range.
  std::vector<std::pair<uint64_t, uint64_t>> used = m.used;
  std::sort(used.begin(), used.end());
  int free_chunks = 0;
  uint64_t cursor = m.export_base;
  const uint64_t end = m.export_base + m.export_size;
  auto count_gap = [&](uint64_t from, uint64_t to) {
    if (to <= from) return;
    const uint64_t a = AlignUp(from, chunk), b = AlignDown(to, chunk);
    if (b > a) {
      free_chunks = static_cast<int>(std::min<uint64_t>(
          kMaxChunksPerLender, free_chunks + (b - a) / chunk));
    }
  };
  for (const auto& [addr, size] : used) {
    count_gap(cursor, std::min(addr, end));
    cursor = std::max(cursor, addr + size);
  }
  count_gap(cursor, end);

  // Held chunks keep their index; a new one takes its label's index, else
  // its node's lowest offer here, else the lowest index free.
  std::set<int> taken;
  std::vector<const MemoryClaim*> holds;
  for (const MemoryClaim* c : claims) {
    if (c->size == chunk) holds.push_back(c);
  }
  std::map<std::string, int> kept;
  for (const MemoryClaim* c : holds) {
    auto it = chunk_index_.find(c->allocation);
    if (it != chunk_index_.end() && taken.insert(it->second).second) {
      kept[c->allocation] = it->second;
    }
  }
  // New claims that name their offer first, so that one which does not can
  // never take the index another names (claims of one view come in
  // allocation-name order, not the order they were made in).
  auto labelled = [&](const MemoryClaim& c) {
    const absl::string_view label = c.offer_label;
    const size_t dash = label.rfind('-');
    int k;
    if (dash != absl::string_view::npos &&
        absl::SimpleAtoi(label.substr(dash + 1), &k) && k >= 0 &&
        MemoryOfferId(m.lender, k) == label) {
      return k;
    }
    if (label.size() == kMaxIdLength) {  // shortened: ends in a hash
      for (k = 0; k < kMaxChunksPerLender + 1024; ++k) {
        if (MemoryOfferId(m.lender, k) == label) return k;
      }
    }
    return -1;
  };
  for (const MemoryClaim* c : holds) {
    if (kept.count(c->allocation)) continue;
    const int k = labelled(*c);
    if (k >= 0 && taken.insert(k).second) kept[c->allocation] = k;
  }
  for (const MemoryClaim* c : holds) {
    if (kept.count(c->allocation)) continue;
    int index = -1;
    for (int k = 0; index < 0 && k < kMaxChunksPerLender + 1024; ++k) {
      auto a = assigned_.find(MemoryOfferId(m.lender, k));
      if (!taken.count(k) && a != assigned_.end() &&
          a->second.node == c->borrower) {
        index = k;
      }
    }
    // Else the lowest offered to nobody (another node's offers keep their
    // ids), else the lowest free.
    for (int k = 0; index < 0 && k < kMaxChunksPerLender + 1024; ++k) {
      if (!taken.count(k) && !assigned_.count(MemoryOfferId(m.lender, k))) {
        index = k;
      }
    }
    for (int k = 0; index < 0; ++k) {
      if (!taken.count(k)) index = k;
    }
    taken.insert(index);
    kept[c->allocation] = index;
  }
  for (const MemoryClaim* c : holds) {
    const int index = kept[c->allocation];
    chunk_index_[c->allocation] = index;
    Device d;
    d.id = MemoryOfferId(m.lender, index);
    d.pool = std::string(kMemoryPool);
    d.lender = m.lender;
    d.fabric = fabric;
    d.held_by = c->borrower;
    d.claim = c->allocation;
    d.chunk = chunk;
    devices_[d.id] = std::move(d);
  }
  for (int k = 0, made = 0; made < free_chunks; ++k) {
    if (taken.count(k)) continue;
    Device d;
    d.id = MemoryOfferId(m.lender, k);
    d.pool = std::string(kMemoryPool);
    d.lender = m.lender;
    d.fabric = fabric;
    d.free = true;
    d.chunk = chunk;
    devices_[d.id] = std::move(d);
    ++made;
  }
}

void OfferBook::UpdateEpochs() {
  std::set<std::string, std::less<>> freed_vfs;
  for (const std::string& name : view_.freed_vfs) {
    freed_vfs.insert(VfOfferIdOf(name));
  }
  std::set<std::string, std::less<>> free_now;
  for (const auto& [id, d] : devices_) {
    if (!d.free) continue;
    free_now.insert(id);
    const bool freed =
        view_.all_freed || !was_free_.count(id) ||
        (d.vf != nullptr && freed_vfs.count(id)) ||
        (d.vf == nullptr && view_.freed_lenders.count(d.lender));
    if (!freed && epochs_.count(id)) continue;
    int64_t& epoch = epochs_[id];
    epoch = std::max(view_.generation, epoch + 1);
  }
  was_free_ = std::move(free_now);
}

bool OfferBook::Eligible(const std::string& node, const Device& d) const {
  if (!d.free || !d.healthy || !Watching(node) || node == d.lender) {
    return false;
  }
  const NodeInfo* n = FindNode(node);
  const NodeInfo* l = FindNode(d.lender);
  if (n == nullptr || l == nullptr || !l->up || d.fabric.empty() ||
      n->fabric != d.fabric || Hops(node, d.lender) < 0) {
    return false;
  }
  if (d.pool == kMemoryPool && watchers_.at(node).chunk_bytes != d.chunk) {
    return false;
  }
  // Windows: what is counted already is within the budget (TrimToWindows).
  const auto it = assigned_.find(d.id);
  const bool assigned = it != assigned_.end();
  const bool counted = assigned && (it->second.withdrawn
                                        ? it->second.next == node
                                        : it->second.node == node);
  if (!counted && WindowUse(node) + d.borrower_windows > n->free_windows) {
    return false;
  }
  const bool lender_counted = assigned && (!it->second.withdrawn ||
                                           !it->second.next.empty());
  if (!lender_counted && d.lender_windows > 0 &&
      WindowUse(d.lender) + d.lender_windows > l->free_windows) {
    return false;
  }
  return true;
}

int OfferBook::WindowUse(const std::string& node) const {
  auto it = window_use_.find(node);
  return it == window_use_.end() ? 0 : it->second;
}

void OfferBook::Count(const std::string& node, const Device& d, int sign,
                      bool lender) {
  counts_[{node, d.pool}] += sign;
  if (!node.empty()) window_use_[node] += sign * d.borrower_windows;
  if (lender) window_use_[d.lender] += sign * d.lender_windows;
}

int OfferBook::CountFor(const std::string& node,
                        const std::string& pool) const {
  auto it = counts_.find({node, pool});
  return it == counts_.end() ? 0 : it->second;
}

void OfferBook::Recount() {
  counts_.clear();
  window_use_.clear();
  for (const auto& [id, a] : assigned_) {
    auto d = devices_.find(id);
    if (d == devices_.end()) continue;
    // Withdrawn to nobody: its windows are nobody's.
    const std::string& to = a.withdrawn ? a.next : a.node;
    Count(to, d->second, +1, /*lender=*/!to.empty());
  }
}

void OfferBook::TrimToWindows(absl::Time now) {
  for (const NodeInfo& n : view_.nodes) {
    while (WindowUse(n.name) > n.free_windows) {
      // The farthest offer whose claim would take windows of n's bridge.
      std::tuple<int, std::string> worst{-1, ""};
      for (const auto& [id, a] : assigned_) {
        const std::string& to = a.withdrawn ? a.next : a.node;
        const Device& d = devices_.at(id);
        if (to.empty() || !((to == n.name && d.borrower_windows > 0) ||
                            (d.lender == n.name && d.lender_windows > 0))) {
          continue;
        }
        worst = std::max(worst, std::make_tuple(Hops(to, d.lender), id));
      }
      if (std::get<1>(worst).empty()) break;
      Assignment& a = assigned_.at(std::get<1>(worst));
      const Device& d = devices_.at(std::get<1>(worst));
      Count(a.withdrawn ? a.next : a.node, d, -1, /*lender=*/true);
      Count("", d, +1, /*lender=*/false);
      if (a.withdrawn) {
        a.next.clear();  // its move is off; its old node's grace runs on
      } else {
        a = Assignment{a.node, true, "", now + options_.withdrawal_grace};
      }
    }
  }
}

void OfferBook::ExpireGraces(absl::Time now) {
  Recount();
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (it->second.streams > 0 || it->second.leaving_until > now) {
      ++it;
      continue;
    }
    for (auto a = assigned_.begin(); a != assigned_.end();) {
      a = a->second.node == it->first ? assigned_.erase(a) : std::next(a);
    }
    it = watchers_.erase(it);
  }
  for (auto it = assigned_.begin(); it != assigned_.end();) {
    auto d = devices_.find(it->first);
    Assignment& a = it->second;
    if (d == devices_.end() || !d->second.free) {
      it = assigned_.erase(it);  // claimed, lent elsewhere or gone
      continue;
    }
    if (a.withdrawn && a.until <= now) {
      if (!a.next.empty() && Eligible(a.next, d->second)) {
        a = Assignment{a.next, false, "", absl::InfinitePast()};
      } else {
        it = assigned_.erase(it);
        continue;
      }
    }
    if (!a.withdrawn && !watchers_.count(a.node)) {
      it = assigned_.erase(it);
      continue;
    }
    if (a.withdrawn && !a.next.empty() && !Watching(a.next)) a.next.clear();
    ++it;
  }
  Recount();
  TrimToWindows(now);
}

OfferBook::Candidate OfferBook::BestOffer(const std::string& pool) const {
  // The watching node with the fewest offers of the pool that can take one,
  // and its nearest device.
  Candidate best{INT32_MAX, "", ""};
  for (const auto& [node, w] : watchers_) {
    if (w.streams == 0) continue;
    const int count = CountFor(node, pool);
    if (std::tie(count, node) >= std::tie(best.count, best.node)) continue;
    std::tuple<int, double, std::string> nearest{INT32_MAX, 0, ""};
    for (const auto& [id, d] : devices_) {
      if (d.pool != pool || assigned_.count(id) || !Eligible(node, d)) {
        continue;
      }
      auto key =
          std::make_tuple(Hops(node, d.lender), LenderLoad(d.lender), id);
      if (key < nearest) nearest = key;
    }
    if (std::get<2>(nearest).empty()) continue;
    best = Candidate{count, node, std::get<2>(nearest)};
  }
  return best;
}

void OfferBook::Assign() {
  std::set<std::string> pools;
  for (const auto& [id, d] : devices_) {
    if (d.free && !assigned_.count(id)) pools.insert(d.pool);
  }
  // One offer at a time, to the pool and node with the fewest offers: the
  // pools share the nodes' windows, so none takes them all.
  while (true) {
    Candidate best{INT32_MAX, "", ""};
    for (const std::string& pool : pools) {
      Candidate c = BestOffer(pool);
      if (!c.device.empty() && c.count < best.count) best = std::move(c);
    }
    if (best.device.empty()) break;
    assigned_[best.device] =
        Assignment{best.node, false, "", absl::InfinitePast()};
    Count(best.node, devices_.at(best.device), +1, /*lender=*/true);
  }
}

void OfferBook::Rebalance(absl::Time now) {
  std::set<std::string> pools;
  for (const auto& [id, d] : devices_) pools.insert(d.pool);
  for (const std::string& pool : pools) {
    while (true) {
      // A watching node short of its share, an offer of a node with two or
      // more above it that the short node could take: withdraw it.
      std::string from, to, device;
      // Largest gap first, then the device nearest to the short node.
      std::tuple<int, int, std::string> best{-1, 0, ""};
      for (const auto& [b, wb] : watchers_) {
        if (wb.streams == 0) continue;
        const int count_b = CountFor(b, pool);
        for (const auto& [id, a] : assigned_) {
          if (a.withdrawn || !Watching(a.node)) continue;
          const Device& d = devices_.at(id);
          if (d.pool != pool || a.node == b) continue;
          const int gap = CountFor(a.node, pool) - count_b;
          if (gap < 2) continue;
          auto key = std::make_tuple(-gap, Hops(b, d.lender), id);
          if (device.empty() ? false : key >= best) continue;
          if (!Eligible(b, d)) continue;
          best = key;
          from = a.node;
          to = b;
          device = id;
        }
      }
      if (device.empty()) break;
      assigned_[device] =
          Assignment{from, true, to, now + options_.withdrawal_grace};
      Count(from, devices_.at(device), -1, /*lender=*/false);
      Count(to, devices_.at(device), +1, /*lender=*/false);
    }
  }
}

v1::OfferSet OfferBook::OffersFor(absl::string_view node_name) const {
  const std::string node(absl::StripPrefix(node_name, "nodes/"));
  v1::OfferSet set;
  set.set_node(node);
  const NodeInfo* self = FindNode(node);
  for (const auto& [id, d] : devices_) {
    const auto a = assigned_.find(id);
    const bool offered = a != assigned_.end() && !a->second.withdrawn &&
                         a->second.node == node;
    if (d.held_by != node && !offered) continue;
    v1::Offer* o = set.add_offers();
    o->set_id(id);
    if (d.vf != nullptr) {
      o->mutable_vf()->set_vf(d.vf->name);
      o->mutable_vf()->set_vendor_id(d.vf->vendor_id);
      o->mutable_vf()->set_device_id(d.vf->device_id);
    } else {
      o->mutable_memory()->set_size(d.chunk);
    }
    o->set_lender(d.lender);
    const NodeInfo* lender = FindNode(d.lender);
    const int hops = Hops(node, d.lender);
    std::string reason;
    if (lender == nullptr || !lender->up) {
      reason = absl::StrCat("lender ", d.lender, " is down");
    } else if (hops < 0 || self == nullptr) {
      reason = absl::StrCat("the path from ", node, " to ", d.lender,
                            " is cut");
    } else if (!d.healthy) {
      reason = d.reason;
    }
    o->set_healthy(reason.empty());
    o->set_reason(reason);
    o->set_hops(std::max(hops, 0));
    o->set_lender_load(LenderLoad(d.lender));
    o->set_held(d.held_by == node);
    if (d.held_by == node) {
      if (d.vf != nullptr) {
        o->set_attachment(d.claim);
      } else {
        o->set_allocation(d.claim);
      }
    }
    auto e = epochs_.find(id);
    o->set_epoch(e == epochs_.end() ? view_.generation : e->second);
  }
  return set;
}

absl::Status OfferBook::Refused(absl::string_view what, const Assignment& a,
                                absl::string_view id) const {
  return absl::FailedPreconditionError(absl::StrCat(
      what, " is offered to node ", a.node, " (offer ", id, ")",
      a.withdrawn ? ", which may still claim it in its withdrawal grace" : "",
      "; claim an offer of this node"));
}

absl::Status OfferBook::CheckVfClaim(absl::string_view borrower,
                                     absl::string_view vf,
                                     bool consumer) const {
  borrower = absl::StripPrefix(borrower, "nodes/");
  const std::string id = VfOfferIdOf(vf);
  if (id.empty()) return absl::OkStatus();  // the call says why
  const auto a = assigned_.find(id);
  if (a == assigned_.end()) return absl::OkStatus();
  if (consumer && a->second.node == borrower) return absl::OkStatus();
  return Refused(absl::StrCat("vf ", vf), a->second, id);
}

absl::Status OfferBook::CheckMemoryClaim(absl::string_view borrower,
                                         absl::string_view lender,
                                         uint64_t size, bool consumer) const {
  borrower = absl::StripPrefix(borrower, "nodes/");
  lender = absl::StripPrefix(lender, "nodes/");
  // Nothing offered: nothing to refuse (the common case while no node
  // watches).
  if (assigned_.empty()) return absl::OkStatus();
  const auto chunks = memory_by_lender_.find(lender);
  if (chunks == memory_by_lender_.end()) return absl::OkStatus();
  int mine = 0, unoffered = 0;
  const Assignment* other = nullptr;
  std::string other_id;
  uint64_t chunk = 0;
  for (const Device* d : chunks->second) {
    if (!d->free) continue;
    chunk = d->chunk;
    const auto a = assigned_.find(d->id);
    if (a == assigned_.end()) {
      ++unoffered;
    } else if (consumer && a->second.node == borrower) {
      ++mine;
    } else if (other == nullptr) {
      other = &a->second;
      other_id = d->id;
    }
  }
  if (other == nullptr) return absl::OkStatus();
  // A consumer that holds a chunk here may be retrying that claim (its
  // request_id answers the original allocation): not refused.
  if (consumer) {
    for (const Device* d : chunks->second) {
      if (d->held_by == borrower) return absl::OkStatus();
    }
  }
  const int need =
      static_cast<int>(std::max<uint64_t>(1, (size + chunk - 1) / chunk));
  if (mine + unoffered >= need) return absl::OkStatus();
  return Refused(absl::StrCat("memory of ", lender), *other, other_id);
}

std::string OfferBook::OfferedTo(absl::string_view id) const {
  const auto a = assigned_.find(std::string(id));
  if (a == assigned_.end() || a->second.withdrawn) return "";
  return a->second.node;
}

std::string OfferBook::InGraceOf(absl::string_view id) const {
  const auto a = assigned_.find(std::string(id));
  if (a == assigned_.end() || !a->second.withdrawn) return "";
  return a->second.node;
}

}  // namespace fabric::offers
