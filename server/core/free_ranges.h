// The free ranges of one address region, found by size and alignment in
// O(log n).
//
//   FreeRanges r(/*base=*/0x1000'0000, /*size=*/1 << 30);
//   RETURN_IF_ERROR(r.Take(0x1000'0000, 1 << 20));        // a grant's range
//   std::optional<uint64_t> a = r.FirstFit(1 << 20, 4096, aperture - base);
//   RETURN_IF_ERROR(r.Release(0x1000'0000, 1 << 20));     // merges it back
#ifndef FABRIC_SERVER_CORE_FREE_RANGES_H_
#define FABRIC_SERVER_CORE_FREE_RANGES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"

namespace fabric::core {

// A free range [base, end) of a region. Never empty.
struct FreeRange {
  uint64_t base;
  uint64_t end;
};

bool operator==(const FreeRange& a, const FreeRange& b);

// The free ranges of a region [base, base + size): maximal, non-empty,
// pairwise disjoint and non-adjacent (two free ranges that touch are one).
// Kept in a treap ordered by base in which every subtree knows its longest
// free range, so that taking, releasing and first-fit search cost O(log n)
// expected, n the number of free ranges (the priorities come from a fixed
// seed: the same operations give the same tree).
//
// Not thread-safe; copyable and movable (a copy is independent).
class FreeRanges {
 public:
  // An empty region: nothing free, nothing can be taken.
  FreeRanges() = default;
  // All of [base, base + size) is free. REQUIRES: base + size does not
  // overflow.
  FreeRanges(uint64_t base, uint64_t size);

  uint64_t base() const { return base_; }
  uint64_t end() const { return end_; }

  // Marks [addr, addr + size) taken, splitting the free range it is in.
  // INVALID_ARGUMENT: size 0 or the range not inside the region.
  // FAILED_PRECONDITION: part of the range is not free. On error nothing
  // changes. O(log n).
  absl::Status Take(uint64_t addr, uint64_t size);

  // Marks [addr, addr + size) free again, merging it with the free ranges
  // it touches. INVALID_ARGUMENT: size 0 or the range not inside the
  // region. FAILED_PRECONDITION: part of the range is already free. On
  // error nothing changes. O(log n).
  absl::Status Release(uint64_t addr, uint64_t size);

  // The lowest `start` such that [start, start + size) is free and
  // (fabric_offset + start) % align == 0, where the sum wraps modulo 2^64
  // (fabric_offset = fabric base - region base, so the sum is the range's
  // fabric address); nullopt if there is none. Adds the number of free
  // ranges it reads to `*visited` when not null. REQUIRES: size > 0, align > 0. O(log n) per free range whose
  // length is at least `size` but that fails on alignment (at most those
  // shorter than size + align - 1): O(log n) when none does.
  std::optional<uint64_t> FirstFit(uint64_t size, uint64_t align,
                                   uint64_t fabric_offset,
                                   uint64_t* visited = nullptr) const;

  // The length of the longest free range, 0 if none. O(1).
  uint64_t Largest() const;
  // How many free ranges there are. O(1).
  size_t count() const { return nodes_.size() - free_slots_.size(); }
  // Every free range, ordered by base. O(n): for tests and diagnostics.
  std::vector<FreeRange> Ranges() const;

 private:
  // One free range. Children are indexes into nodes_, kNone for none.
  struct Node {
    uint64_t base;
    uint64_t end;
    uint64_t max_len;  // Longest free range in this subtree.
    uint64_t priority;  // Max-heap order.
    int left;
    int right;
  };
  static constexpr int kNone = -1;

  uint64_t MaxLen(int t) const { return t == kNone ? 0 : nodes_[t].max_len; }
  void Update(int t);
  // Splits t into ranges with base < key and the rest.
  void Split(int t, uint64_t key, int* lo, int* hi);
  // REQUIRES: every base in lo < every base in hi.
  int Merge(int lo, int hi);
  void Insert(uint64_t base, uint64_t end);
  // REQUIRES: a free range starts at base.
  void Erase(uint64_t base);
  // The free range with the greatest base <= key / smallest base >= key,
  // or kNone.
  int Floor(uint64_t key) const;
  int Ceiling(uint64_t key) const;
  // Of the free ranges in t with base >= from, the first (by base) at
  // least `size` long, or kNone. Counts the nodes it reads in *visited.
  int FirstAtLeast(int t, uint64_t from, uint64_t size,
                   uint64_t* visited) const;
  // Validates [addr, addr + size) as an argument of Take/Release.
  absl::Status CheckInRegion(const char* op, uint64_t addr,
                             uint64_t size) const;

  uint64_t base_ = 0;
  uint64_t end_ = 0;
  std::vector<Node> nodes_;
  std::vector<int> free_slots_;  // Unused entries of nodes_.
  int root_ = kNone;
  uint64_t seed_ = 0;  // State of the priority generator (splitmix64).
};

}  // namespace fabric::core

#endif  // FABRIC_SERVER_CORE_FREE_RANGES_H_
