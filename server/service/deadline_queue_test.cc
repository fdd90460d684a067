#include "server/service/deadline_queue.h"

#include <map>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

absl::Time At(int s) { return kT0 + absl::Seconds(s); }

TEST(DeadlineQueueTest, PopsDueKeysEarliestFirst) {
  DeadlineQueue q;
  q.Set("c", At(3));
  q.Set("a", At(1));
  q.Set("b", At(2));
  q.Set("d", At(9));
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.Earliest(), At(1));
  EXPECT_THAT(q.PopDue(At(0)), IsEmpty());
  EXPECT_THAT(q.PopDue(At(3)), ElementsAre("a", "b", "c"));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.Deadline("d"), At(9));
  EXPECT_EQ(q.Deadline("a"), std::nullopt);
}

TEST(DeadlineQueueTest, DeadlineAtNowIsDue) {
  DeadlineQueue q;
  q.Set("a", At(5));
  EXPECT_THAT(q.PopDue(At(5)), ElementsAre("a"));
  EXPECT_TRUE(q.empty());
}

TEST(DeadlineQueueTest, TiesAreOrderedByKey) {
  DeadlineQueue q;
  q.Set("b", At(1));
  q.Set("a", At(1));
  EXPECT_THAT(q.PopDue(At(1)), ElementsAre("a", "b"));
}

TEST(DeadlineQueueTest, SetReplacesTheDeadline) {
  DeadlineQueue q;
  q.Set("a", At(1));
  q.Set("a", At(10));  // renewed
  q.Set("b", At(5));
  q.Set("b", At(2));  // moved earlier
  EXPECT_EQ(q.size(), 2u);
  EXPECT_THAT(q.PopDue(At(5)), ElementsAre("b"));
  EXPECT_EQ(q.Deadline("a"), At(10));
  EXPECT_THAT(q.PopDue(At(10)), ElementsAre("a"));
}

TEST(DeadlineQueueTest, ClearedKeysNeverPop) {
  DeadlineQueue q;
  q.Set("a", At(1));
  q.Set("b", At(2));
  q.Clear("a");
  q.Clear("missing");
  EXPECT_EQ(q.Earliest(), At(2));
  EXPECT_THAT(q.PopDue(At(100)), ElementsAre("b"));
  EXPECT_EQ(q.Earliest(), std::nullopt);
}

TEST(DeadlineQueueTest, LimitLeavesTheRestForLater) {
  DeadlineQueue q;
  for (int i = 0; i < 5; ++i) q.Set(absl::StrCat("k", i), At(i));
  EXPECT_THAT(q.PopDue(At(10), 2), ElementsAre("k0", "k1"));
  EXPECT_THAT(q.PopDue(At(10)), ElementsAre("k2", "k3", "k4"));
}

TEST(DeadlineQueueTest, AgreesWithAMapUnderRandomChurn) {
  // Many replacements exercise the compaction of stale entries.
  DeadlineQueue q;
  std::map<std::string, absl::Time> model;
  absl::BitGen gen;
  int now = 0;
  for (int step = 0; step < 20000; ++step) {
    const std::string key = absl::StrCat("k", absl::Uniform(gen, 0, 50));
    switch (absl::Uniform(gen, 0, 4)) {
      case 0:
      case 1: {
        const absl::Time t = At(now + absl::Uniform(gen, 0, 100));
        q.Set(key, t);
        model[key] = t;
        break;
      }
      case 2:
        q.Clear(key);
        model.erase(key);
        break;
      case 3: {
        now += absl::Uniform(gen, 0, 5);
        std::vector<std::pair<absl::Time, std::string>> due;
        for (const auto& [k, t] : model) {
          if (t <= At(now)) due.push_back({t, k});
        }
        std::sort(due.begin(), due.end());
        std::vector<std::string> want;
        for (const auto& [t, k] : due) {
          want.push_back(k);
          model.erase(k);
        }
        ASSERT_EQ(q.PopDue(At(now)), want) << "step " << step;
        break;
      }
    }
    ASSERT_EQ(q.size(), model.size());
  }
  std::map<std::string, absl::Time> entries;
  for (const auto& [k, t] : q.Entries()) entries[k] = t;
  EXPECT_EQ(entries, model);
}

}  // namespace
}  // namespace fabric::service
