// fabric-manager and fabric-agent as an operator starts them: one manager
// per store, one server per port, and bad flags refused with a clear error
// and exit code 2 (never a crash).
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process/process_util.h"

namespace fabric::proctest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Runs fabric-manager with `args` until it exits (it must, quickly: every
// case here is refused at startup); returns its exit code, its output in
// *log.
int RunManager(const std::vector<std::string>& args, std::string* log) {
  std::vector<std::string> argv = {BinDir() + "/fabric-manager"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out, err;
  const int code = RunCommand(argv, &out, &err);
  *log = out + err;
  return code;
}

TEST(ManagerStartupTest, SecondManagerOnOneStoreIsRefusedAndTouchesNothing) {
  TempDir dir;
  const std::string db = dir.path() + "/fabric.db";
  Manager first = StartManager(db, dir.path() + "/first.log");
  ASSERT_GT(first.port, 0) << ReadFile(dir.path() + "/first.log");
  const std::string db_bytes = ReadFile(db);
  const std::string wal_bytes = ReadFile(db + "-wal");

  std::string log;
  const int code = RunManager(
      {"--db", db, "--listen", "127.0.0.1:0"}, &log);
  EXPECT_EQ(code, 1) << log;
  EXPECT_THAT(log, HasSubstr("in use by another process"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("pid ", first.child.pid())));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("fabric-manager listening on "
                                          "127.0.0.1:",
                                          first.port)));
  EXPECT_EQ(ReadFile(db), db_bytes);
  EXPECT_EQ(ReadFile(db + "-wal"), wal_bytes);

  // Once the first is gone (kill -9 included), the store opens again.
  first.child.Signal(SIGKILL);
  first.child.Wait();
  Manager again = StartManager(db, dir.path() + "/again.log");
  EXPECT_GT(again.port, 0) << ReadFile(dir.path() + "/again.log");
}

TEST(ManagerStartupTest, PortInUseIsRefused) {
  TempDir dir;
  Manager first = StartManager(dir.path() + "/a.db", dir.path() + "/a.log");
  ASSERT_GT(first.port, 0) << ReadFile(dir.path() + "/a.log");
  const std::string taken = absl::StrCat("127.0.0.1:", first.port);

  std::string log;
  EXPECT_EQ(RunManager({"--db", dir.path() + "/b.db", "--listen", taken}, &log),
            2)
      << log;
  EXPECT_THAT(log, HasSubstr("--listen"));
  EXPECT_THAT(log, HasSubstr("in use"));

  // The agent's data-path port too.
  std::string out, err;
  const int code = RunCommand(
      {BinDir() + "/fabric-agent", "--manager", taken, "--node", "n0",
       "--backend", "sim", "--sim-dir", dir.path() + "/sim", "--listen",
       taken},
      &out, &err);
  EXPECT_EQ(code, 2) << out << err;
  EXPECT_THAT(out + err, HasSubstr("in use"));
}

TEST(ManagerStartupTest, BadListenAddressesExitTwoWithoutACrash) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nonsense", "HOST:PORT"},
      {"127.0.0.1:abc", "\"abc\""},
      {"", "empty"},
      {"127.0.0.1:99999", "99999"},
      {"127.0.0.1:-1", "-1"},
      // TEST-NET-1: an address of no interface here; binding fails, no
      // packet is sent.
      {"192.0.2.1:7070", "not an address of this host"},
  };
  for (const auto& [listen, says] : cases) {
    std::string log;
    const int code =
        RunManager({"--db", dir.path() + "/x.db", "--listen", listen}, &log);
    EXPECT_EQ(code, 2) << "--listen '" << listen << "': " << log;
    EXPECT_THAT(log, HasSubstr("--listen")) << listen;
    EXPECT_THAT(log, HasSubstr(says)) << listen;
    EXPECT_THAT(log, Not(HasSubstr("Segmentation"))) << listen;
  }
}

TEST(ManagerStartupTest, BadFlagsExitTwo) {
  TempDir dir;
  const std::string db = dir.path() + "/x.db";
  std::string log;
  EXPECT_EQ(RunManager({"--no-such-flag"}, &log), 2) << log;
  EXPECT_EQ(RunManager({"--max-inflight", "-3"}, &log), 2) << log;
  // A timeout below two intervals would make live nodes flap.
  EXPECT_EQ(RunManager({"--db", db, "--heartbeat-timeout", "1s",
                        "--heartbeat-interval", "2s"},
                       &log),
            2)
      << log;
  EXPECT_THAT(log, HasSubstr("--heartbeat-timeout"));
  EXPECT_THAT(log, HasSubstr("twice"));
  EXPECT_EQ(RunManager({"--help"}, &log), 0) << log;
  // None of them created the database.
  struct stat st;
  EXPECT_NE(stat(db.c_str(), &st), 0);
}

TEST(ManagerStartupTest, ForeignDatabaseIsRefused) {
  TempDir dir;
  const std::string db = dir.path() + "/other.db";
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE t(x)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
  }
  const std::string before = ReadFile(db);
  std::string log;
  EXPECT_EQ(RunManager({"--db", db, "--listen", "127.0.0.1:0"}, &log), 1)
      << log;
  EXPECT_THAT(log, HasSubstr("not a fabric-manager database"));
  EXPECT_EQ(ReadFile(db), before);
}

}  // namespace
}  // namespace fabric::proctest
