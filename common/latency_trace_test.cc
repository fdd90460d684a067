#include "common/latency_trace.h"

#include <gtest/gtest.h>

namespace fabric {
namespace {

TEST(LatencyTraceTest, ParsesLinesAndSkipsMalformedOnes) {
  const std::vector<LatencyTrace::Point> points = LatencyTrace::Parse(
      "100 agent.applied n3 42\n"
      "garbage\n"
      "200 manager.generation - 7\n"
      "300 too few\n"
      "x agent.applied n3 42\n");
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].ns, 100);
  EXPECT_EQ(points[0].point, "agent.applied");
  EXPECT_EQ(points[0].key, "n3");
  EXPECT_EQ(points[0].value, 42);
  EXPECT_EQ(points[1].ns, 200);
  EXPECT_EQ(points[1].point, "manager.generation");
  EXPECT_EQ(points[1].value, 7);
}

TEST(LatencyTraceTest, OffWithoutTheVariableAndRecordIsANoOp) {
  // The test runs without FABRIC_LATENCY_TRACE.
  ASSERT_EQ(std::getenv(LatencyTrace::kEnv), nullptr);
  EXPECT_FALSE(LatencyTrace::enabled());
  LatencyTrace::Record("test.point", "key", 1);  // nothing to write to
}

TEST(LatencyTraceTest, MonotonicClockMoves) {
  const int64_t a = LatencyTrace::NowNs();
  const int64_t b = LatencyTrace::NowNs();
  EXPECT_GT(a, 0);
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace fabric
