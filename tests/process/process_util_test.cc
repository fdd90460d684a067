// The process helpers the process tests, benches and fabric-chaos rely on.
#include "tests/process/process_util.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::proctest {
namespace {

using ::testing::HasSubstr;

TEST(ChildTest, ExitCodeAndOutputReachTheLog) {
  TempDir dir;
  const std::string log = dir.path() + "/log";
  Child c({"/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"}, log);
  ASSERT_GT(c.pid(), 0);
  EXPECT_EQ(c.Wait(), 3);
  EXPECT_EQ(ReadFile(log), "hello\noops\n");
}

TEST(ChildTest, AProgramThatCannotStartSaysSoInItsLog) {
  TempDir dir;
  const std::string log = dir.path() + "/log";
  Child c({dir.path() + "/no-such-binary"}, log);
  EXPECT_EQ(c.pid(), -1);
  int code = 0;
  EXPECT_FALSE(c.TryWait(&code));
  EXPECT_THAT(ReadFile(log), HasSubstr("cannot start " + dir.path() +
                                       "/no-such-binary: No such file"));
}

}  // namespace
}  // namespace fabric::proctest
