// Command-line handling: exit codes and messages for usage errors, all of
// which are detected before any RPC is made.
#include "client/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct Result {
  int code;
  std::string out;
  std::string err;
};

// Runs fabricctl with `args` as given (no transport flag is added).
Result RunCliAsGiven(std::vector<std::string> args) {
  args.insert(args.begin(), "fabricctl");
  std::ostringstream out, err;
  int code = RunFabricctl(args, out, err);
  return {code, out.str(), err.str()};
}

// Runs fabricctl with `args` and --insecure: the servers these tests name
// are on loopback, where plaintext is allowed.
Result RunCli(std::vector<std::string> args) {
  args.push_back("--insecure");
  return RunCliAsGiven(std::move(args));
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

TEST(CliTest, EmptyNodeNamesAreRefusedWithTheirPosition) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"ring", "r1", "--nodes", "e1,,e2"}, "--nodes: name 2 is empty"},
      {{"ring", "r1", "--nodes", "e1,e2,"}, "--nodes: name 3 is empty"},
      {{"ring", "r1", "--nodes", ",e1"}, "--nodes: name 1 is empty"},
      {{"ring", "r1", "--nodes", "e1, ,e2"}, "--nodes: name 2 is empty"},
      {{"ring", "r1", "--nodes", ""}, "--nodes: the list is empty"},
      {{"star", "s1", "--hub", "m", "--nodes", "a,,b"},
       "--nodes: name 2 is empty"},
      {{"star", "s1", "--hub", "m", "--nodes", ""},
       "--nodes: the list is empty"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {kDeadServer, "create"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result r = RunCli(args);
    EXPECT_EQ(r.code, kExitUsage) << c.error << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("error: " + c.error));
    EXPECT_THAT(r.out, IsEmpty());
  }
}

TEST(CliTest, UnknownSubcommand) {
  Result r = RunCli({"frobnicate"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown command \"frobnicate\""));
  EXPECT_THAT(r.err, HasSubstr("hint:"));
  EXPECT_THAT(r.err, HasSubstr("link, delete, vf, vm and audit;"));
}

TEST(CliTest, NoSubcommand) {
  EXPECT_EQ(RunCli({}).code, kExitUsage);
}

TEST(CliTest, UnknownResourceKind) {
  Result r = RunCli({kDeadServer, "get", "widgets"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown resource type \"widgets\""));
  EXPECT_THAT(r.err, HasSubstr("managers"));
}

TEST(CliTest, GetManagersIsAcceptedAndReachesTheServer) {
  for (const char* kind : {"managers", "manager", "MANAGERS"}) {
    Result r = RunCli({kDeadServer, "--timeout", "2s", "get", kind});
    EXPECT_NE(r.code, kExitUsage) << kind << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("list managers")) << kind;
  }
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

TEST(CliTest, MissingSpecFileOrDirectoryIsUsageErrorSayingWhich) {
  const std::string missing = ::testing::TempDir() + "/cli_test_missing.json";
  std::remove(missing.c_str());
  Result r = RunCli({kDeadServer, "apply", "-f", missing});
  EXPECT_EQ(r.code, kExitUsage) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: -f " + missing + ": no such file"));

  const std::string dir = ::testing::TempDir();
  r = RunCli({kDeadServer, "apply", "-f", dir});
  EXPECT_EQ(r.code, kExitUsage) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: -f " + dir + ": is a directory"));
  EXPECT_THAT(r.err, Not(HasSubstr("empty")));
}

TEST(CliTest, UnreadableSpecFileIsUsageErrorSayingPermissionDenied) {
  const std::string locked = ::testing::TempDir() + "/cli_test_locked.json";
  FILE* f = std::fopen(locked.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("{\"name\": \"r1\"}\n", f);
  std::fclose(f);
  ASSERT_EQ(chmod(locked.c_str(), 0), 0);
  if (access(locked.c_str(), R_OK) == 0) {
    std::remove(locked.c_str());
    GTEST_SKIP() << "running as root: every file is readable";
  }
  Result r = RunCli({kDeadServer, "apply", "-f", locked});
  std::remove(locked.c_str());
  EXPECT_EQ(r.code, kExitUsage) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: -f " + locked + ": permission denied"));
}

TEST(CliTest, BadInterruptPolicyNamesTheFlagAndTheChoices) {
  Result r = RunCli({kDeadServer, "vf", "attach", "--vf", "n1/0000:3b:00.4",
                     "--to", "n2", "--interrupts", "sometimes"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("error: --interrupts: unknown policy "
                               "\"sometimes\"; use direct, hypervisor or "
                               "auto"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST(CliTest, VfAttachFlagErrors) {
  Result missing = RunCli({kDeadServer, "vf", "attach", "--to", "n2"});
  EXPECT_EQ(missing.code, kExitUsage);
  EXPECT_THAT(missing.err, HasSubstr("--vf"));
  EXPECT_THAT(missing.err, HasSubstr("fabricctl vf attach --help"));

  Result dma = RunCli({kDeadServer, "vf", "attach", "--vf", "n1/0000:3b:00.4",
                       "--to", "n2", "--dma-size", "lots"});
  EXPECT_EQ(dma.code, kExitUsage);
  EXPECT_THAT(dma.err, HasSubstr("error: --dma-size"));

  Result no_vm = RunCli({kDeadServer, "vf", "attach", "--vf", "n1/0000:3b:00.4",
                         "--to", "n2", "--interrupts", "HYPERVISOR"});
  EXPECT_EQ(no_vm.code, kExitUsage);
  EXPECT_THAT(no_vm.err, HasSubstr("hypervisor delivery needs --vm"));

  Result wait = RunCli({kDeadServer, "vf", "attach", "--vf", "n1/0000:3b:00.4",
                        "--to", "n2", "--wait", "--wait-timeout", "soon"});
  EXPECT_EQ(wait.code, kExitUsage);
  EXPECT_THAT(wait.err, HasSubstr("--wait-timeout"));
}

TEST(CliTest, VfConfigUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"read", "0", "--size", "3"}, "--size: 3 bytes; use 1, 2 or 4"},
      {{"read", "0", "--size", "two"}, "--size: \"two\" is not a number"},
      {{"read", "0x1000"}, "OFFSET: 0x1000 is outside the 4 KiB config space"},
      {{"read", "6"}, "OFFSET: 0x6 is not aligned to the 4-byte access size"},
      {{"read", "0x-4"}, "OFFSET: \"0x-4\" is not a number"},
      {{"write", "4"}, "VALUE: write needs a value"},
      {{"read", "4", "7"}, "VALUE: read takes no value"},
      {{"write", "4", "0x10000", "--size", "2"},
       "VALUE: 0x10000 does not fit in 2 bytes"},
      {{"write", "4", "0x100000000"}, "VALUE: 0x100000000 is over the limit"},
      {{"read", "0x10", "--msix-table", "--size", "2"},
       "--size: the MSI-X table takes dwords only"},
      {{"peek", "0"}, "OP: unknown operation \"peek\"; use read or write"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {kDeadServer, "vf", "config", "att-1"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Result r = RunCli(args);
    EXPECT_EQ(r.code, kExitUsage) << c.error;
    EXPECT_THAT(r.err, HasSubstr("error: " + c.error));
  }
  Result missing = RunCli({kDeadServer, "vf", "config", "att-1", "read"});
  EXPECT_EQ(missing.code, kExitUsage);
  EXPECT_THAT(missing.err, HasSubstr("OFFSET"));
}

TEST(CliTest, VfAndVmArgumentErrors) {
  Result count =
      RunCli({kDeadServer, "vf", "interrupt", "att-1", "--count", "0"});
  EXPECT_EQ(count.code, kExitUsage);
  EXPECT_THAT(count.err, HasSubstr("--count: must be at least 1"));
  Result vector =
      RunCli({kDeadServer, "vf", "interrupt", "att-1", "--vector", "4096"});
  EXPECT_EQ(vector.code, kExitUsage);
  EXPECT_THAT(vector.err, HasSubstr("--vector: 4096 is over the limit"));
  Result probe =
      RunCli({kDeadServer, "vf", "verify", "att-1", "--probe-size", "4XB"});
  EXPECT_EQ(probe.code, kExitUsage);
  EXPECT_THAT(probe.err, HasSubstr("--probe-size"));
  Result no_id = RunCli({kDeadServer, "vf", "detach"});
  EXPECT_EQ(no_id.code, kExitUsage);
  EXPECT_THAT(no_id.err, HasSubstr("ID"));
  Result no_vf = RunCli({kDeadServer, "vf"});
  EXPECT_EQ(no_vf.code, kExitUsage);
  EXPECT_THAT(no_vf.err, HasSubstr("fabricctl vf --help"));
  Result no_vm = RunCli({kDeadServer, "vm", "start", "n2"});
  EXPECT_EQ(no_vm.code, kExitUsage);
  EXPECT_THAT(no_vm.err, HasSubstr("VM is required"));
  Result core =
      RunCli({kDeadServer, "vm", "start", "n2", "vm1", "--core", "-1"});
  EXPECT_EQ(core.code, kExitUsage);
  EXPECT_THAT(core.err, HasSubstr("--core"));
}

TEST(CliTest, NodeFilterOnlyForAllocationsVfsAndAttachments) {
  Result r = RunCli({kDeadServer, "get", "nodes", "--node", "n1"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--node: only allocations, vfs and "
                               "attachments are listed by node"));
  // Accepted kinds get as far as the (dead) server.
  for (const char* kind :
       {"allocations", "alloc", "vfs", "vf", "virtualfunctions", "attachments",
        "attachment", "att"}) {
    Result ok =
        RunCli({kDeadServer, "--timeout", "2s", "get", kind, "--node", "n1"});
    EXPECT_EQ(ok.code, kExitError) << kind << ": " << ok.err;
  }
}

TEST(CliTest, VfHelpListsTheSubcommands) {
  Result r = RunCli({"vf", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  for (const char* sub :
       {"attach", "detach", "config", "setup", "verify", "interrupt"}) {
    EXPECT_THAT(r.out, HasSubstr(sub));
  }
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

TEST(CliTest, BadServerAddressIsUsageErrorNamingTheFlag) {
  struct Case {
    const char* server;
    std::string error;
  };
  const Case cases[] = {
      // gRPC would wrap it to 34463.
      {"127.0.0.1:99999", "--server: port 99999 is out of range (0-65535)"},
      {"127.0.0.1:0", "--server: port 0 cannot be connected to; use 1-65535"},
      {"127.0.0.1", "--server: \"127.0.0.1\" has no port"},
      {"127.0.0.1:http", "--server: port \"http\" is not a number"},
      {"", "--server: the address is empty"},
      // A list of managers (HA): every entry is checked.
      {"127.0.0.1:1,,127.0.0.1:2",
       "--server: \"127.0.0.1:1,,127.0.0.1:2\" has an empty entry"},
      {"127.0.0.1:1,127.0.0.1:0", "--server: 127.0.0.1:0: port 0"},
      {"127.0.0.1:1,127.0.0.1", "--server: \"127.0.0.1\" has no port"},
  };
  for (const Case& c : cases) {
    Result r =
        RunCli({"--server", c.server, "--timeout", "2s", "get", "fabrics"});
    EXPECT_EQ(r.code, kExitUsage) << c.server << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("error: " + c.error));
    EXPECT_THAT(r.err, HasSubstr("hint: set --server or FABRIC_SERVER to "
                                 "HOST:PORT"));
  }
  ASSERT_EQ(setenv("FABRIC_SERVER", "127.0.0.1:70000", 1), 0);
  Result env = RunCli({"--timeout", "2s", "get", "fabrics"});
  unsetenv("FABRIC_SERVER");
  EXPECT_EQ(env.code, kExitUsage);
  EXPECT_THAT(env.err, HasSubstr("port 70000 is out of range"));
  // A bracketed IPv6 address is accepted (and nothing listens there).
  Result v6 = RunCli({"--server=[::1]:1", "--timeout", "2s", "get", "fabrics"});
  EXPECT_EQ(v6.code, kExitError) << v6.err;
}

TEST(CliTest, ServerFromEnvironment) {
  ASSERT_EQ(setenv("FABRIC_SERVER", "127.0.0.1:1", 1), 0);
  Result r = RunCli({"--timeout", "2s", "get", "fabrics"});
  unsetenv("FABRIC_SERVER");
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("running at 127.0.0.1:1?"));
}

// The transport is chosen on purpose: neither certificates nor --insecure is
// a usage error that names the flags and the environment variables, before
// anything is dialed.
TEST(CliTest, NoTransportIsUsageErrorNamingTheFlags) {
  Result r = RunCliAsGiven({kDeadServer, "get", "fabrics"});
  EXPECT_EQ(r.code, kExitUsage) << r.err;
  EXPECT_THAT(r.err, HasSubstr("error: "));
  EXPECT_THAT(r.err, HasSubstr("--tls-cert"));
  EXPECT_THAT(r.err, HasSubstr("hint: the certificate files may also come "
                               "from FABRIC_TLS_CERT, FABRIC_TLS_KEY and "
                               "FABRIC_TLS_CA"));
}

TEST(CliTest, InsecureIsOnlyForLoopback) {
  Result r = RunCli({"--server=10.1.2.3:7070", "get", "fabrics"});
  EXPECT_EQ(r.code, kExitUsage) << r.err;
  EXPECT_THAT(r.err, HasSubstr("loopback"));
}

TEST(CliTest, InsecureIsOnlyForLoopbackForEveryManagerOfTheList) {
  Result r = RunCli({"--manager=127.0.0.1:1,10.1.2.3:7070", "get", "fabrics"});
  EXPECT_EQ(r.code, kExitUsage) << r.err;
  EXPECT_THAT(r.err, HasSubstr("loopback"));
}

TEST(CliTest, AListOfDeadManagersIsUnreachable) {
  Result r = RunCli({"--server=127.0.0.1:1,127.0.0.1:2", "--timeout", "2s",
                     "get", "fabrics"});
  EXPECT_EQ(r.code, kExitError) << r.err;
  EXPECT_THAT(r.err, HasSubstr("running at 127.0.0.1:1,127.0.0.1:2?"));
}

TEST(CliTest, InsecureWithCertificatesIsUsageError) {
  Result r = RunCli(
      {kDeadServer, "--tls-cert", "/nonexistent/u.crt", "get", "fabrics"});
  EXPECT_EQ(r.code, kExitUsage) << r.err;
}

// Each file missing from the flags comes from its FABRIC_TLS_* variable; a
// flag wins over its variable. The files do not exist, so the error names
// the one fabricctl would have used.
TEST(CliTest, TlsFilesFromEnvironmentAndFlagsWin) {
  ASSERT_EQ(setenv("FABRIC_TLS_CERT", "/nonexistent/env-u.crt", 1), 0);
  ASSERT_EQ(setenv("FABRIC_TLS_KEY", "/nonexistent/env-u.key", 1), 0);
  ASSERT_EQ(setenv("FABRIC_TLS_CA", "/nonexistent/env-ca.crt", 1), 0);
  Result env = RunCliAsGiven({kDeadServer, "get", "fabrics"});
  Result flag = RunCliAsGiven(
      {kDeadServer, "--tls-cert", "/nonexistent/flag-u.crt", "get", "fabrics"});
  // An explicit --insecure takes no file from the environment.
  Result insecure = RunCli({kDeadServer, "--timeout", "2s", "get", "fabrics"});
  unsetenv("FABRIC_TLS_CERT");
  unsetenv("FABRIC_TLS_KEY");
  unsetenv("FABRIC_TLS_CA");
  EXPECT_EQ(env.code, kExitUsage) << env.err;
  EXPECT_THAT(env.err, HasSubstr("/nonexistent/env-u.crt"));
  EXPECT_EQ(flag.code, kExitUsage) << flag.err;
  EXPECT_THAT(flag.err, HasSubstr("/nonexistent/flag-u.crt"));
  EXPECT_THAT(flag.err, Not(HasSubstr("env-u.crt")));
  EXPECT_EQ(insecure.code, kExitError) << insecure.err;
}

}  // namespace
}  // namespace fabric::client
