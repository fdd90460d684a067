#include "agent/report_schedule.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

// The clock never moves in these tests unless told to, so a report that
// goes out proves it was not waiting for the heartbeat.
constexpr absl::Duration kInterval = absl::Hours(1);

TEST(ReportScheduleTest, ARequestWakesAWaitAtOnce) {
  ManualClock clock;
  ReportSchedule schedule(&clock);
  schedule.Start(kInterval);
  std::atomic<int> reports{0};
  absl::Notification first, second;
  std::thread heartbeat([&] {
    while (schedule.Wait()) {
      if (++reports == 1) first.Notify();
      if (reports == 2) second.Notify();
    }
  });
  schedule.Request();
  first.WaitForNotification();
  schedule.Request();
  second.WaitForNotification();
  schedule.Stop();
  heartbeat.join();
  EXPECT_EQ(reports, 2);
}

TEST(ReportScheduleTest, AHeartbeatIsDueOnceTheIntervalHasPassed) {
  ManualClock clock;
  ReportSchedule schedule(&clock);
  schedule.Start(kInterval);
  clock.Advance(kInterval);
  EXPECT_TRUE(schedule.Wait());  // due by the clock: returns at once
  // The next one is an interval later again; a request comes first.
  clock.Advance(kInterval / 2);
  schedule.Request();
  EXPECT_TRUE(schedule.Wait());
}

TEST(ReportScheduleTest, StopEndsAWaitAndStartArmsItAgain) {
  ManualClock clock;
  ReportSchedule schedule(&clock);
  EXPECT_FALSE(schedule.Wait());  // never started
  schedule.Start(kInterval);
  absl::Notification stopped;
  std::thread heartbeat([&] {
    EXPECT_FALSE(schedule.Wait());
    stopped.Notify();
  });
  schedule.Stop();
  stopped.WaitForNotification();
  heartbeat.join();
  // A request made between sessions goes out first in the next one.
  schedule.Request();
  schedule.Start(kInterval);
  EXPECT_TRUE(schedule.Wait());
}

}  // namespace
}  // namespace fabric::agent
