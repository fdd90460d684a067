#include "server/core/free_ranges.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::core {
namespace {

// "take: [0x1000, +4 KiB)", the start of an error message.
std::string OpOnRange(const char* op, uint64_t addr, uint64_t size) {
  return absl::StrCat(op, ": [", FormatAddr(addr), ", +", FormatSize(size),
                      ")");
}

}  // namespace

bool operator==(const FreeRange& a, const FreeRange& b) {
  return a.base == b.base && a.end == b.end;
}

FreeRanges::FreeRanges(uint64_t base, uint64_t size)
    : base_(base), end_(base + size) {
  if (size > 0) Insert(base_, end_);
}

absl::Status FreeRanges::CheckInRegion(const char* op, uint64_t addr,
                                       uint64_t size) const {
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": size must be greater than 0"));
  }
  if (addr < base_ || addr > end_ || end_ - addr < size) {
    return absl::InvalidArgumentError(
        absl::StrCat(OpOnRange(op, addr, size), " is outside the region [",
                     FormatAddr(base_), ", ", FormatAddr(end_), ")"));
  }
  return absl::OkStatus();
}

absl::Status FreeRanges::Take(uint64_t addr, uint64_t size) {
  RETURN_IF_ERROR(CheckInRegion("take", addr, size));
  const uint64_t end = addr + size;
  const int f = Floor(addr);
  if (f == kNone || nodes_[f].end < end) {
    return absl::FailedPreconditionError(
        absl::StrCat(OpOnRange("take", addr, size), " is not all free"));
  }
  const FreeRange was{nodes_[f].base, nodes_[f].end};
  Erase(was.base);
  if (was.base < addr) Insert(was.base, addr);
  if (end < was.end) Insert(end, was.end);
  return absl::OkStatus();
}

absl::Status FreeRanges::Release(uint64_t addr, uint64_t size) {
  RETURN_IF_ERROR(CheckInRegion("release", addr, size));
  const uint64_t end = addr + size;
  // The free ranges just below and from addr on.
  const int below = Floor(addr);
  const int above = Ceiling(addr);
  if ((below != kNone && nodes_[below].end > addr) ||
      (above != kNone && nodes_[above].base < end)) {
    return absl::FailedPreconditionError(absl::StrCat(
        OpOnRange("release", addr, size), " is partly free already"));
  }
  FreeRange merged{addr, end};
  if (below != kNone && nodes_[below].end == addr) {
    merged.base = nodes_[below].base;
  }
  if (above != kNone && nodes_[above].base == end) {
    merged.end = nodes_[above].end;
  }
  if (merged.base != addr) Erase(merged.base);
  if (merged.end != end) Erase(end);
  Insert(merged.base, merged.end);
  return absl::OkStatus();
}

std::optional<uint64_t> FreeRanges::FirstFit(uint64_t size, uint64_t align,
                                             uint64_t fabric_offset,
                                             uint64_t* visited) const {
  uint64_t from = base_;
  for (;;) {
    const int t = FirstAtLeast(root_, from, size, visited);
    if (t == kNone) return std::nullopt;
    const Node& n = nodes_[t];
    // The first aligned start in n; a later one would leave less room.
    const uint64_t fab = (fabric_offset + n.base + align - 1) / align * align;
    const uint64_t start = fab - fabric_offset;
    if (start <= n.end && n.end - start >= size) return start;
    from = n.base + 1;  // n.base < n.end: no overflow.
  }
}

uint64_t FreeRanges::Largest() const { return MaxLen(root_); }

std::vector<FreeRange> FreeRanges::Ranges() const {
  std::vector<FreeRange> out;
  out.reserve(count());
  std::vector<int> stack;
  int t = root_;
  while (t != kNone || !stack.empty()) {
    for (; t != kNone; t = nodes_[t].left) stack.push_back(t);
    t = stack.back();
    stack.pop_back();
    out.push_back({nodes_[t].base, nodes_[t].end});
    t = nodes_[t].right;
  }
  return out;
}

void FreeRanges::Update(int t) {
  Node& n = nodes_[t];
  n.max_len = std::max({n.end - n.base, MaxLen(n.left), MaxLen(n.right)});
}

void FreeRanges::Split(int t, uint64_t key, int* lo, int* hi) {
  if (t == kNone) {
    *lo = *hi = kNone;
    return;
  }
  // nodes_ does not grow during a split: the pointers stay valid.
  if (nodes_[t].base < key) {
    Split(nodes_[t].right, key, &nodes_[t].right, hi);
    *lo = t;
  } else {
    Split(nodes_[t].left, key, lo, &nodes_[t].left);
    *hi = t;
  }
  Update(t);
}

int FreeRanges::Merge(int lo, int hi) {
  if (lo == kNone) return hi;
  if (hi == kNone) return lo;
  if (nodes_[lo].priority > nodes_[hi].priority) {
    const int right = Merge(nodes_[lo].right, hi);
    nodes_[lo].right = right;
    Update(lo);
    return lo;
  }
  const int left = Merge(lo, nodes_[hi].left);
  nodes_[hi].left = left;
  Update(hi);
  return hi;
}

void FreeRanges::Insert(uint64_t base, uint64_t end) {
  // splitmix64: well-mixed, deterministic priorities.
  uint64_t z = (seed_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  const Node n{base, end, end - base, z ^ (z >> 31), kNone, kNone};
  int t;
  if (free_slots_.empty()) {
    t = static_cast<int>(nodes_.size());
    nodes_.push_back(n);
  } else {
    t = free_slots_.back();
    free_slots_.pop_back();
    nodes_[t] = n;
  }
  int lo, hi;
  Split(root_, base, &lo, &hi);
  root_ = Merge(Merge(lo, t), hi);
}

void FreeRanges::Erase(uint64_t base) {
  int lo, rest, mid, hi;
  Split(root_, base, &lo, &rest);
  Split(rest, base + 1, &mid, &hi);
  free_slots_.push_back(mid);
  root_ = Merge(lo, hi);
}

int FreeRanges::Floor(uint64_t key) const {
  int best = kNone;
  for (int t = root_; t != kNone;) {
    if (nodes_[t].base <= key) {
      best = t;
      t = nodes_[t].right;
    } else {
      t = nodes_[t].left;
    }
  }
  return best;
}

int FreeRanges::Ceiling(uint64_t key) const {
  int best = kNone;
  for (int t = root_; t != kNone;) {
    if (nodes_[t].base >= key) {
      best = t;
      t = nodes_[t].left;
    } else {
      t = nodes_[t].right;
    }
  }
  return best;
}

int FreeRanges::FirstAtLeast(int t, uint64_t from, uint64_t size,
                             uint64_t* visited) const {
  // Cost: nodes whose subtree lies wholly at or above `from` are entered
  // only on the way down to the answer (their max_len says whether it is
  // there); the others lie on the search path of `from`. O(depth).
  while (t != kNone) {
    if (visited != nullptr) ++*visited;
    const Node& n = nodes_[t];
    if (n.max_len < size) return kNone;
    if (n.base < from) {
      t = n.right;
      continue;
    }
    const int left = FirstAtLeast(n.left, from, size, visited);
    if (left != kNone) return left;
    if (n.end - n.base >= size) return t;
    t = n.right;
  }
  return kNone;
}

}  // namespace fabric::core
