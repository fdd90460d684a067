#include "server/core/free_ranges.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace fabric::core {

// For gtest messages (found by argument-dependent lookup).
void PrintTo(const FreeRange& r, std::ostream* os) {
  *os << "[" << r.base << ", " << r.end << ")";
}

namespace {

TEST(FreeRangesTest, StartsAllFree) {
  FreeRanges r(0x1000, 0x100);
  EXPECT_EQ(r.Ranges(), (std::vector<FreeRange>{{0x1000, 0x1100}}));
  EXPECT_EQ(r.count(), 1u);
  EXPECT_EQ(r.Largest(), 0x100u);
  EXPECT_EQ(r.FirstFit(0x100, 1, 0), 0x1000u);
  EXPECT_EQ(r.FirstFit(0x101, 1, 0), std::nullopt);
}

TEST(FreeRangesTest, EmptyRegionHasNothing) {
  FreeRanges none;
  EXPECT_EQ(none.count(), 0u);
  EXPECT_EQ(none.Largest(), 0u);
  EXPECT_EQ(none.FirstFit(1, 1, 0), std::nullopt);
  FreeRanges zero(0x1000, 0);
  EXPECT_EQ(zero.count(), 0u);
  EXPECT_EQ(zero.Take(0x1000, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(FreeRangesTest, TakeSplitsAndReleaseMerges) {
  FreeRanges r(0, 100);
  ASSERT_TRUE(r.Take(10, 10).ok());
  ASSERT_TRUE(r.Take(30, 10).ok());
  ASSERT_TRUE(r.Take(0, 5).ok());
  EXPECT_EQ(r.Ranges(),
            (std::vector<FreeRange>{{5, 10}, {20, 30}, {40, 100}}));
  EXPECT_EQ(r.Largest(), 60u);
  ASSERT_TRUE(r.Release(10, 10).ok());  // Joins [5, 10) and [20, 30).
  EXPECT_EQ(r.Ranges(), (std::vector<FreeRange>{{5, 30}, {40, 100}}));
  ASSERT_TRUE(r.Release(30, 10).ok());
  ASSERT_TRUE(r.Release(0, 5).ok());
  EXPECT_EQ(r.Ranges(), (std::vector<FreeRange>{{0, 100}}));
  EXPECT_EQ(r.count(), 1u);
}

TEST(FreeRangesTest, RefusesBadRangesAndChangesNothing) {
  FreeRanges r(100, 100);
  ASSERT_TRUE(r.Take(120, 10).ok());
  const std::vector<FreeRange> before = r.Ranges();
  EXPECT_EQ(r.Take(120, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Take(90, 20).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Take(190, 11).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Take(UINT64_MAX, 2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Take(115, 10).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.Take(125, 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.Release(115, 10).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.Release(125, 10).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.Release(200, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Release(120, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Take(90, 20).message(),
            "take: [0x5a, +20 B) is outside the region [0x64, 0xc8)");
  EXPECT_EQ(r.Ranges(), before);
}

TEST(FreeRangesTest, FirstFitSkipsARangeLongEnoughButMisaligned) {
  FreeRanges r(0, 100);
  ASSERT_TRUE(r.Take(0, 1).ok());
  ASSERT_TRUE(r.Take(9, 11).ok());
  // Free: [1, 9) (8 long) and [20, 100).
  EXPECT_EQ(r.FirstFit(8, 1, 0), 1u);
  EXPECT_EQ(r.FirstFit(8, 4, 0), 20u);  // 4 + 8 > 9.
  EXPECT_EQ(r.FirstFit(5, 4, 0), 4u);
  EXPECT_EQ(r.FirstFit(8, 4, 3), 1u);   // Fabric address 4.
  EXPECT_EQ(r.FirstFit(8, 4, 2), 22u);  // Fabric address 24.
  // The offset wraps: fabric address = offset + start modulo 2^64.
  EXPECT_EQ(r.FirstFit(8, 4, ~uint64_t{0}), 1u);  // Fabric address 0.
  EXPECT_EQ(r.FirstFit(80, 1, 0), 20u);
  EXPECT_EQ(r.FirstFit(80, 2, 1), std::nullopt);
  EXPECT_EQ(r.FirstFit(81, 1, 0), std::nullopt);
}

// Random takes and releases against a bitmap of free units, each answer
// against a scan of it.
class Brute {
 public:
  Brute(uint64_t base, uint64_t size) : base_(base), free_(size, true) {}

  bool AllAre(uint64_t addr, uint64_t size, bool free) const {
    for (uint64_t a = addr; a < addr + size; ++a) {
      if (free_[a - base_] != free) return false;
    }
    return true;
  }
  void Set(uint64_t addr, uint64_t size, bool free) {
    for (uint64_t a = addr; a < addr + size; ++a) free_[a - base_] = free;
  }
  std::vector<FreeRange> Ranges() const {
    std::vector<FreeRange> out;
    for (uint64_t i = 0; i < free_.size(); ++i) {
      if (!free_[i]) continue;
      if (!out.empty() && out.back().end == base_ + i) {
        ++out.back().end;
      } else {
        out.push_back({base_ + i, base_ + i + 1});
      }
    }
    return out;
  }
  std::optional<uint64_t> FirstFit(uint64_t size, uint64_t align,
                                   uint64_t offset) const {
    for (uint64_t s = base_; s + size <= base_ + free_.size(); ++s) {
      if ((offset + s) % align == 0 && AllAre(s, size, true)) return s;
    }
    return std::nullopt;
  }

 private:
  uint64_t base_;
  std::vector<bool> free_;
};

TEST(FreeRangesTest, RandomStepsAnswerAsABitmapScan) {
  constexpr uint64_t kBase = 1000;
  constexpr uint64_t kSize = 400;
  std::mt19937_64 rng(12);
  for (int round = 0; round < 4; ++round) {
    FreeRanges r(kBase, kSize);
    Brute brute(kBase, kSize);
    std::vector<std::pair<uint64_t, uint64_t>> taken;
    int took = 0, released = 0, refused = 0, skipped_misaligned = 0;
    for (int step = 0; step < 3000; ++step) {
      SCOPED_TRACE(::testing::Message() << "round " << round << " step "
                                        << step);
      const uint64_t size = 1 + rng() % (round % 2 == 0 ? 8 : 40);
      const uint64_t addr = kBase + rng() % (kSize - size + 1);
      const int op = static_cast<int>(rng() % 10);
      if (op < 5) {
        const bool free = brute.AllAre(addr, size, true);
        const absl::Status st = r.Take(addr, size);
        ASSERT_EQ(st.ok(), free) << st;
        if (free) {
          brute.Set(addr, size, false);
          taken.push_back({addr, size});
          ++took;
        } else {
          ASSERT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
          ++refused;
        }
      } else if (op < 8 && !taken.empty()) {
        // Release a taken range, or part of one.
        const size_t k = rng() % taken.size();
        auto [a, s] = taken[k];
        taken.erase(taken.begin() + k);
        if (rng() % 3 == 0 && s > 1) {
          const uint64_t cut = 1 + rng() % (s - 1);
          taken.push_back({a + cut, s - cut});
          s = cut;
        }
        ASSERT_TRUE(r.Release(a, s).ok());
        brute.Set(a, s, true);
        ++released;
      } else {
        // Any range: refused unless all of it is taken.
        const bool all_taken = brute.AllAre(addr, size, false);
        const absl::Status st = r.Release(addr, size);
        if (all_taken) {
          // Keep `taken` exact: only ranges it lists are released.
          ASSERT_TRUE(r.Take(addr, size).ok());
        } else {
          ASSERT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
          ++refused;
        }
      }
      const std::vector<FreeRange> want = brute.Ranges();
      ASSERT_EQ(r.Ranges(), want);
      ASSERT_EQ(r.count(), want.size());
      uint64_t largest = 0;
      for (const FreeRange& g : want) {
        largest = std::max(largest, g.end - g.base);
      }
      ASSERT_EQ(r.Largest(), largest);
      for (int q = 0; q < 4; ++q) {
        const uint64_t fit_size = 1 + rng() % 24;
        const uint64_t align = uint64_t{1} << (rng() % 5);
        // Fabric address = offset + start, no overflow when aligning up;
        // below and above the region's own addresses.
        const uint64_t offset = rng() % (1ull << 40) - kBase;
        const std::optional<uint64_t> fit = brute.FirstFit(fit_size, align,
                                                           offset);
        ASSERT_EQ(r.FirstFit(fit_size, align, offset), fit)
            << "size " << fit_size << " align " << align << " offset "
            << offset;
        // Count the answers that skip a free range long enough but
        // misaligned for this size.
        for (const FreeRange& g : want) {
          if (g.end - g.base < fit_size) continue;
          if (!fit.has_value() || *fit >= g.end) ++skipped_misaligned;
          break;
        }
      }
    }
    EXPECT_GT(took, 300);
    EXPECT_GT(released, 300);
    EXPECT_GT(refused, 300);
    EXPECT_GT(skipped_misaligned, 100);
  }
}

TEST(FreeRangesTest, CopiesAreIndependent) {
  FreeRanges a(0, 100);
  ASSERT_TRUE(a.Take(10, 10).ok());
  FreeRanges b = a;
  ASSERT_TRUE(b.Take(50, 10).ok());
  ASSERT_TRUE(a.Release(10, 10).ok());
  EXPECT_EQ(a.Ranges(), (std::vector<FreeRange>{{0, 100}}));
  EXPECT_EQ(b.Ranges(),
            (std::vector<FreeRange>{{0, 10}, {20, 50}, {60, 100}}));
}

// With 100,000 free ranges, first fit reads O(log n) of them: the tree is
// shallow and the descent follows the longest-range marks.
TEST(FreeRangesTest, FirstFitAt100kRangesReadsALogarithmicNumber) {
  constexpr uint64_t kN = 100'000;
  FreeRanges r(0, 4 * kN + 100);
  // Free ranges of 1 unit at 4k + 1, 2 units at 400,002, then the tail.
  for (uint64_t k = 0; k < kN; ++k) {
    ASSERT_TRUE(r.Take(4 * k, 1).ok());
    ASSERT_TRUE(r.Take(4 * k + 2, 2).ok());
  }
  ASSERT_TRUE(r.Take(4 * kN, 2).ok());
  ASSERT_TRUE(r.Take(4 * kN + 4, 4).ok());
  ASSERT_EQ(r.count(), kN + 2);
  uint64_t visited = 0;
  EXPECT_EQ(r.FirstFit(2, 1, 0, &visited), 4 * kN + 2);
  EXPECT_LT(visited, 200u);
  std::printf("100k free ranges: a first fit past all of them read %llu\n",
              static_cast<unsigned long long>(visited));
  visited = 0;
  EXPECT_EQ(r.FirstFit(3, 1, 0, &visited), 4 * kN + 8);
  EXPECT_LT(visited, 200u);
  visited = 0;
  EXPECT_EQ(r.FirstFit(1, 1, 0, &visited), 1u);
  EXPECT_LT(visited, 200u);
  visited = 0;
  EXPECT_EQ(r.FirstFit(1000, 1, 0, &visited), std::nullopt);
  EXPECT_EQ(visited, 1u);
  EXPECT_EQ(r.Largest(), 92u);
}

}  // namespace
}  // namespace fabric::core
