// Command-line handling: exit codes and messages for usage errors, all of
// which are detected before any RPC is made.
#include "client/cli.h"

#include <cstdlib>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCli(std::vector<std::string> args) {
  args.insert(args.begin(), "fabricctl");
  std::ostringstream out, err;
  int code = RunFabricctl(args, out, err);
  return {code, out.str(), err.str()};
}

// Nothing listens on port 1 of loopback, so a command that gets past flag
// checks fails with UNAVAILABLE; flag errors must never get that far.
constexpr char kDeadServer[] = "--server=127.0.0.1:1";

TEST(CliTest, BadSizeIsUsageErrorNamingTheFlag) {
  Result r = RunCli({kDeadServer, "alloc", "mem", "--from", "a", "--to", "b",
                  "--size", "lots"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("error: --size"));
  EXPECT_THAT(r.err, HasSubstr("lots"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST(CliTest, BadExportSizeNamesExport) {
  Result r = RunCli({kDeadServer, "create", "ring", "r1", "--nodes", "a,b",
                  "--export", "1XB"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--export"));
}

TEST(CliTest, UnknownSubcommand) {
  Result r = RunCli({"frobnicate"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown command \"frobnicate\""));
  EXPECT_THAT(r.err, HasSubstr("hint:"));
}

TEST(CliTest, NoSubcommand) {
  EXPECT_EQ(RunCli({}).code, kExitUsage);
}

TEST(CliTest, UnknownResourceKind) {
  Result r = RunCli({kDeadServer, "get", "widgets"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown resource type \"widgets\""));
}

TEST(CliTest, MissingRequiredFlagNamesIt) {
  Result r = RunCli({"create", "star", "s", "--nodes", "a,b"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--hub"));
  EXPECT_THAT(r.err, HasSubstr("fabricctl create star --help"));
}

TEST(CliTest, BadDurations) {
  Result ttl = RunCli({kDeadServer, "alloc", "mem", "--from", "a", "--to", "b",
                    "--size", "4MiB", "--ttl", "forever"});
  EXPECT_EQ(ttl.code, kExitUsage);
  EXPECT_THAT(ttl.err, HasSubstr("--ttl"));
  Result timeout = RunCli({kDeadServer, "--timeout", "0s", "get", "nodes"});
  EXPECT_EQ(timeout.code, kExitUsage);
  EXPECT_THAT(timeout.err, HasSubstr("--timeout"));
}

TEST(CliTest, BadOutputFormat) {
  Result r = RunCli({kDeadServer, "get", "nodes", "-o", "yaml"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("-o"));
}

TEST(CliTest, BadLabel) {
  Result r = RunCli({kDeadServer, "alloc", "mem", "--from", "a", "--to", "b",
                  "--size", "4MiB", "--label", "novalue"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--label"));
}

TEST(CliTest, MalformedSpecFileIsUsageError) {
  std::string path = ::testing::TempDir() + "/cli_test_bad.json";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("{\"name\": \"r1\",\n \"topology\": RING}\n", f);
  std::fclose(f);
  Result r = RunCli({kDeadServer, "apply", "-f", path});
  std::remove(path.c_str());
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr(path + ": line 2"));
}

TEST(CliTest, HelpGoesToStdoutAndSucceeds) {
  Result r = RunCli({"--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("--server"));
}

TEST(CliTest, UnreachableServerIsExit1WithHint) {
  Result r = RunCli({kDeadServer, "--timeout", "2s", "get", "fabrics"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("error: list fabrics: "));
  EXPECT_THAT(r.err, HasSubstr("hint: is fabric-manager running at "
                               "127.0.0.1:1? set --server or FABRIC_SERVER"));
}

TEST(CliTest, ServerFromEnvironment) {
  ASSERT_EQ(setenv("FABRIC_SERVER", "127.0.0.1:1", 1), 0);
  Result r = RunCli({"--timeout", "2s", "get", "fabrics"});
  unsetenv("FABRIC_SERVER");
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("running at 127.0.0.1:1?"));
}

}  // namespace
}  // namespace fabric::client
