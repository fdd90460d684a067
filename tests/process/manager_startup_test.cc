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
#include "tests/process/test_transport.h"

namespace fabric::proctest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Runs `program` (in BinDir()) with `args` until it exits (it must,
// quickly: every case here is refused at startup); returns its exit code,
// its output in *log. One still running after Scaled(10 s) was not refused:
// it is killed and -1 returned.
int RunProgram(const std::string& program, const std::vector<std::string>& args,
               std::string* log) {
  std::vector<std::string> argv = {BinDir() + "/" + program};
  argv.insert(argv.end(), args.begin(), args.end());
  TempDir dir;
  const std::string path = dir.path() + "/log";
  Child child(argv, path);
  int code = -1;
  if (!WaitFor([&] { return child.TryWait(&code); }, absl::Seconds(10))) {
    child.Signal(SIGKILL);
    child.Wait();
    code = -1;
  }
  *log = ReadFile(path);
  return code;
}

// RunProgram for fabric-manager with `args` and its TLS flags (manager/m1).
int RunManager(const std::vector<std::string>& args, std::string* log) {
  std::vector<std::string> argv = args;
  for (std::string& flag : Transport::Tls().ManagerFlags()) {
    argv.push_back(flag);
  }
  return RunProgram("fabric-manager", argv, log);
}

// StartManager with TLS (manager/m1).
Manager StartTlsManager(const std::string& db, const std::string& log_path) {
  return StartManager(db, log_path, Transport::Tls().ManagerFlags());
}

TEST(ManagerStartupTest, SecondManagerOnOneStoreIsRefusedAndTouchesNothing) {
  TempDir dir;
  const std::string db = dir.path() + "/fabric.db";
  Manager first = StartTlsManager(db, dir.path() + "/first.log");
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
  Manager again = StartTlsManager(db, dir.path() + "/again.log");
  EXPECT_GT(again.port, 0) << ReadFile(dir.path() + "/again.log");
}

TEST(ManagerStartupTest, PortInUseIsRefused) {
  TempDir dir;
  Manager first = StartTlsManager(dir.path() + "/a.db", dir.path() + "/a.log");
  ASSERT_GT(first.port, 0) << ReadFile(dir.path() + "/a.log");
  const std::string taken = absl::StrCat("127.0.0.1:", first.port);

  std::string log;
  EXPECT_EQ(RunManager({"--db", dir.path() + "/b.db", "--listen", taken}, &log),
            2)
      << log;
  EXPECT_THAT(log, HasSubstr("--listen"));
  EXPECT_THAT(log, HasSubstr("in use"));

  // The agent's data-path port too.
  std::vector<std::string> agent = {
      "--manager", taken, "--node",    "n0",
      "--backend", "sim", "--sim-dir", dir.path() + "/sim",
      "--listen",  taken};
  for (std::string& flag : Transport::Tls().AgentFlags("n0")) {
    agent.push_back(flag);
  }
  EXPECT_EQ(RunProgram("fabric-agent", agent, &log), 2) << log;
  EXPECT_THAT(log, HasSubstr("in use"));
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
  EXPECT_EQ(RunManager({"--db", db, "--offer-stream-grace", "0s"}, &log), 2)
      << log;
  EXPECT_THAT(log, HasSubstr("--offer-stream-grace"));
  EXPECT_EQ(RunManager({"--db", db, "--commit-gather", "1.5"}, &log), 2)
      << log;
  EXPECT_THAT(log, HasSubstr("--commit-gather: 1.5 must be between 0 and 1"));
  EXPECT_EQ(RunManager({"--db", db, "--commit-gather", "often"}, &log), 2)
      << log;
  EXPECT_THAT(log, HasSubstr("--commit-gather: \"often\" must be auto or"));
  EXPECT_EQ(RunManager({"--help"}, &log), 0) << log;
  EXPECT_THAT(log, HasSubstr("--commit-gather"));
  EXPECT_THAT(log, HasSubstr("--offer-withdrawal-grace"));
  // None of them created the database.
  struct stat st;
  EXPECT_NE(stat(db.c_str(), &st), 0);
}

// Plaintext only by explicit choice: with neither certificates nor
// --insecure, both programs refuse to start and say what to give; with
// --insecure they refuse any address that is not loopback.
TEST(ManagerStartupTest, NoTransportIsRefusedSayingWhy) {
  TempDir dir;
  const std::string db = dir.path() + "/x.db";
  std::string log;
  EXPECT_EQ(RunProgram("fabric-manager",
                       {"--db", db, "--listen", "127.0.0.1:0"}, &log),
            2)
      << log;
  EXPECT_THAT(log, HasSubstr("--tls-cert"));
  EXPECT_THAT(log, HasSubstr("--insecure"));
  EXPECT_EQ(
      RunProgram("fabric-manager",
                 {"--db", db, "--listen", "0.0.0.0:0", "--insecure"}, &log),
      2)
      << log;
  EXPECT_THAT(log, HasSubstr("loopback"));
  // A certificate without its key and CA is no transport either.
  const std::vector<std::string> tls = Transport::Tls().ManagerFlags();
  EXPECT_EQ(
      RunProgram("fabric-manager",
                 {"--db", db, "--listen", "127.0.0.1:0", tls[0], tls[1]}, &log),
      2)
      << log;
  EXPECT_THAT(log, HasSubstr("--tls-key"));
  struct stat st;
  EXPECT_NE(stat(db.c_str(), &st), 0) << "a refused manager made its store";

  EXPECT_EQ(RunProgram("fabric-agent",
                       {"--manager", "127.0.0.1:1", "--node", "n0", "--backend",
                        "sim", "--sim-dir", dir.path() + "/sim"},
                       &log),
            2)
      << log;
  EXPECT_THAT(log, HasSubstr("--tls-cert"));
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
