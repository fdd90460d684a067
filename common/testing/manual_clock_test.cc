#include "common/testing/manual_clock.h"

#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fabric {
namespace {

TEST(ManualClockTest, StartsWhereToldAndStandsStill) {
  const absl::Time start = absl::FromUnixSeconds(42);
  ManualClock clock(start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
}

TEST(ManualClockTest, DefaultStartIsFixed) {
  EXPECT_EQ(ManualClock().Now(), absl::FromUnixSeconds(1700000000));
}

TEST(ManualClockTest, AdvanceMovesByExactlyTheDuration) {
  ManualClock clock(absl::FromUnixSeconds(100));
  clock.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(101500));
  clock.Advance(absl::Seconds(-1));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(100500));
}

TEST(ManualClockTest, UsableThroughTheClockInterface) {
  ManualClock manual(absl::FromUnixSeconds(7));
  Clock* clock = &manual;
  manual.Advance(absl::Seconds(3));
  EXPECT_EQ(clock->Now(), absl::FromUnixSeconds(10));
}

TEST(ManualClockTest, ConcurrentAdvancesAllCount) {
  ManualClock clock(absl::FromUnixSeconds(0));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&clock] {
      for (int i = 0; i < 1000; ++i) {
        clock.Advance(absl::Milliseconds(1));
        (void)clock.Now();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(4));
}

}  // namespace
}  // namespace fabric
