#include "server/service/gather_policy.h"

#include "gtest/gtest.h"

namespace fabric::service {
namespace {

GatherOptions Half() {
  GatherOptions o;
  o.fraction = 0.5;
  o.max_wait = absl::Milliseconds(5);
  return o;
}

TEST(GatherPolicyTest, ALoneCallerIsNeverMadeToWait) {
  GatherPolicy p(Half());
  EXPECT_EQ(p.Before(1).at_most, absl::ZeroDuration());  // nothing seen yet
  for (int i = 0; i < 5; ++i) {
    p.Committed(1, absl::Milliseconds(4));
    EXPECT_EQ(p.Before(1).at_most, absl::ZeroDuration()) << i;
  }
}

TEST(GatherPolicyTest, AfterAGroupItWaitsAFractionOfTheCommitForOneMore) {
  GatherPolicy p(Half());
  p.Committed(3, absl::Milliseconds(4));
  EXPECT_EQ(p.goal(), 3u);
  GatherPolicy::Wait w = p.Before(1);
  EXPECT_EQ(w.queued, 4u);
  EXPECT_EQ(w.at_most, absl::Milliseconds(2));
  // Already as many as it would wait for: no wait.
  EXPECT_EQ(p.Before(4).at_most, absl::ZeroDuration());
  EXPECT_EQ(p.Before(9).at_most, absl::ZeroDuration());
}

TEST(GatherPolicyTest, TheWaitIsCapped) {
  GatherPolicy p(Half());
  p.Committed(2, absl::Seconds(1));
  EXPECT_EQ(p.Before(1).at_most, absl::Milliseconds(5));
}

TEST(GatherPolicyTest, TheGoalGrowsWhileMetAndFallsToWhatCameOnATimeout) {
  GatherPolicy p(Half());
  p.Committed(2, absl::Milliseconds(4));
  p.Waited(/*met=*/true, 3);
  EXPECT_EQ(p.goal(), 3u);
  p.Committed(3, absl::Milliseconds(4));
  EXPECT_EQ(p.Before(1).queued, 4u);
  p.Waited(/*met=*/true, 6);  // more came than asked for
  EXPECT_EQ(p.goal(), 6u);
  p.Committed(6, absl::Milliseconds(4));
  p.Waited(/*met=*/false, 2);  // fewer callers now
  EXPECT_EQ(p.goal(), 2u);
  EXPECT_EQ(p.Before(1).queued, 3u);
  p.Waited(/*met=*/false, 0);
  EXPECT_EQ(p.goal(), 1u);
}

TEST(GatherPolicyTest, ZeroFractionOrAnInstantCommitNeverWaits) {
  GatherPolicy off(GatherOptions{});
  off.Committed(8, absl::Milliseconds(4));
  EXPECT_EQ(off.Before(1).at_most, absl::ZeroDuration());
  GatherPolicy p(Half());
  p.Committed(8, absl::ZeroDuration());
  EXPECT_EQ(p.Before(1).at_most, absl::ZeroDuration());
}

TEST(GatherPolicyTest, OptionsOutOfRangeAreRefusedByName) {
  GatherOptions o;
  EXPECT_TRUE(ValidateGatherOptions(o).ok());
  o.fraction = kMaxGatherFraction;
  EXPECT_TRUE(ValidateGatherOptions(o).ok());
  o.fraction = 1.5;
  absl::Status s = ValidateGatherOptions(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("commit_gather: 1.5 must be between 0 and 1"),
            absl::string_view::npos)
      << s;
  o.fraction = -0.1;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateGatherOptions(o)));
  o.fraction = 0.5;
  o.max_wait = absl::Milliseconds(-1);
  s = ValidateGatherOptions(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("commit_gather_max_wait"),
            absl::string_view::npos)
      << s;
}

}  // namespace
}  // namespace fabric::service
