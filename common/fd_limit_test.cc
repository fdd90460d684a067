#include "common/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>

#include "gtest/gtest.h"

namespace fabric {
namespace {

// Restores the process's RLIMIT_NOFILE when the test ends.
class SavedLimit {
 public:
  SavedLimit() { ok_ = getrlimit(RLIMIT_NOFILE, &saved_) == 0; }
  ~SavedLimit() {
    if (ok_) setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool ok() const { return ok_; }
  const rlimit& saved() const { return saved_; }

 private:
  bool ok_ = false;
  rlimit saved_{};
};

uint64_t Target(const rlimit& l) {
  return l.rlim_max == RLIM_INFINITY ? kUnlimitedTarget : l.rlim_max;
}

TEST(FdLimitTest, RaisesALowSoftLimitToTheHardOne) {
  SavedLimit saved;
  ASSERT_TRUE(saved.ok());
  if (Target(saved.saved()) <= 256) GTEST_SKIP() << "hard limit too low";
  rlimit low = saved.saved();
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  absl::StatusOr<OpenFileLimit> raised = RaiseOpenFileLimit();
  ASSERT_TRUE(raised.ok()) << raised.status();
  EXPECT_EQ(raised->before, 256u);
  EXPECT_EQ(raised->after, Target(saved.saved()));
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, Target(saved.saved()));
  EXPECT_EQ(now.rlim_max, saved.saved().rlim_max);  // the hard one is kept
}

TEST(FdLimitTest, LeavesASoftLimitAtTheHardOneAlone) {
  SavedLimit saved;
  ASSERT_TRUE(saved.ok());
  ASSERT_TRUE(RaiseOpenFileLimit().ok());
  absl::StatusOr<OpenFileLimit> again = RaiseOpenFileLimit();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->before, again->after);
}

}  // namespace
}  // namespace fabric
