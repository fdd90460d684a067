// The commands end to end: a real in-process fabric-manager (SQLite in
// memory) on 127.0.0.1:0, called through FabricClient and Commands, and
// through RunFabricctl for exit codes.
#include "client/commands.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"
#include "client/cli.h"
#include "client/fabric_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::client {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *service::FabricManager::Open(store_.get(), Clock::Real());
    server_ = *service::GrpcServer::Start(manager_.get(), "127.0.0.1:0");
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    FabricClient::Options options;
    options.timeout = absl::Seconds(5);
    client_ = FabricClient::Connect(address_, options);
  }
  void TearDown() override {
    StopAgents();
    server_->Shutdown();
    manager_->Shutdown();
  }

  // A Commands writing to out_ (cleared first).
  Commands Cmd(OutputFormat format = OutputFormat::kTable) {
    out_.str("");
    Commands::Options options;
    options.format = format;
    options.poll_interval = absl::Milliseconds(50);
    return Commands(client_.get(), &out_, options);
  }

  void CreateRing(const std::string& name,
                  const std::vector<std::string>& nodes) {
    ASSERT_TRUE(Cmd().CreateFabric(RingSpec(name, nodes, "", 0)).ok());
  }

  // Plays the node agents: registers `nodes` and keeps reporting their
  // desired generation as applied, until StopAgents().
  void StartAgents(const std::vector<std::string>& nodes) {
    agents_ = std::thread([this, nodes] {
      auto stub = v1::AgentService::NewStub(grpc::CreateChannel(
          address_, grpc::InsecureChannelCredentials()));
      std::map<std::string, int64_t> applied;
      for (const std::string& n : nodes) {
        grpc::ClientContext ctx;
        v1::RegisterNodeRequest req;
        req.set_node(n);
        req.set_backend("sim");
        v1::RegisterNodeResponse resp;
        stub->RegisterNode(&ctx, req, &resp);
        applied[n] = resp.node().desired_generation();
      }
      while (!stop_agents_) {
        for (const std::string& n : nodes) {
          grpc::ClientContext ctx;
          v1::ReportStatusRequest req;
          req.set_node(n);
          req.set_applied_generation(applied[n]);
          v1::ReportStatusResponse resp;
          if (stub->ReportStatus(&ctx, req, &resp).ok()) {
            applied[n] = resp.desired_generation();
          }
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
  }
  void StopAgents() {
    stop_agents_ = true;
    if (agents_.joinable()) agents_.join();
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::unique_ptr<service::GrpcServer> server_;
  std::string address_;
  std::unique_ptr<FabricClient> client_;
  std::ostringstream out_;
  std::thread agents_;
  std::atomic<bool> stop_agents_{false};
};

TEST_F(CommandsTest, CreateRingThenGetAndDescribe) {
  absl::Status s = Cmd().CreateFabric(RingSpec("r1", {"a", "b", "c"}, "", 0));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), StartsWith("fabric/r1 created (3 nodes, 3 links"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kFabric, "", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("NAME   TOPOLOGY   NODES"));
  EXPECT_THAT(out_.str(), HasSubstr("\nr1     RING       3 "));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kNode, "", "r1").ok());
  EXPECT_THAT(out_.str(), HasSubstr("\nb      r1       server"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kLink, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("up"));

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kNode, "a").ok());
  EXPECT_THAT(out_.str(), HasSubstr("Fabric:               fabrics/r1\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Agent:                UNREGISTERED\n"));

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kBridge, "bridges/a").ok());
  EXPECT_THAT(out_.str(), HasSubstr("Ports:\n"));
  EXPECT_THAT(out_.str(), ContainsRegex("Map entries used: +[0-9]+/[0-9]+"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kMap, "a", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("bridges/a/addressMap"));
  EXPECT_THAT(out_.str(), HasSubstr("CLAIM"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kMap, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("bridges/c/addressMap"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kProfile, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("sim"));

  absl::Status missing = Cmd().Get(ResourceKind::kNode, "ghost", "");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), StartsWith("get nodes/ghost: "));
}

TEST_F(CommandsTest, JsonListsAreArraysAndSingleResourcesObjects) {
  CreateRing("r1", {"a", "b", "c"});
  ASSERT_TRUE(Cmd(OutputFormat::kJson).Get(ResourceKind::kNode, "", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("[\n  {"));
  ASSERT_TRUE(Cmd(OutputFormat::kJson).Get(ResourceKind::kNode, "a", "").ok());
  EXPECT_THAT(out_.str(), StartsWith("{"));
  EXPECT_THAT(out_.str(), HasSubstr("\"name\": \"nodes/a\""));
}

TEST_F(CommandsTest, ListsFollowPageTokens) {
  CreateRing("r1", {"a", "b", "c", "d", "e"});
  FabricClient::Options options;
  options.page_size = 2;
  std::unique_ptr<FabricClient> paged = FabricClient::Connect(address_, options);
  absl::StatusOr<std::vector<v1::Node>> nodes = paged->ListNodes("");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ(nodes->size(), 5u);
}

TEST_F(CommandsTest, ApplyCreatesThenReportsUnchangedThenRefusesChange) {
  std::string spec = R"({"name": "lab", "topology": "RING",
                         "nodes": [{"name": "a"}, {"name": "b"},
                                   {"name": "c"}]})";
  std::string path = WriteFile("lab.json", spec);
  absl::Status s = Cmd().Apply(path);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "fabric/lab created\n");

  s = Cmd().Apply(path);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "fabric/lab unchanged\n");

  std::string changed = WriteFile(
      "lab2.json", R"({"name": "lab", "topology": "RING",
                       "nodes": [{"name": "a"}, {"name": "b"},
                                 {"name": "c"}, {"name": "d"}]})");
  s = Cmd().Apply(changed);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("not supported yet"));
  EXPECT_THAT(StatusHint(s), HasSubstr("delete fabric lab"));
  std::remove(path.c_str());
  std::remove(changed.c_str());
}

TEST_F(CommandsTest, AllocGetAndRelease) {
  CreateRing("r1", {"a", "b", "c", "d"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "c";
  opts.size = 4 << 20;
  opts.owner = "job-7";
  opts.labels = {{"team", "ml"}};
  opts.ttl = absl::Hours(1);
  absl::Status s = Cmd().Alloc(opts);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(),
              ContainsRegex("^allocations/[a-z0-9-]+ borrower a sees 4 MiB "
                            "of c at 0x[0-9a-f_]+ \\(PENDING\\)\n$"));
  std::string name = out_.str().substr(0, out_.str().find(' '));

  ASSERT_TRUE(Cmd().Describe(ResourceKind::kAllocation, name).ok());
  EXPECT_THAT(out_.str(), HasSubstr("Owner:                job-7\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Labels:               team=ml\n"));
  EXPECT_THAT(out_.str(), HasSubstr("TTL:                  3600s\n"));

  ASSERT_TRUE(Cmd().Get(ResourceKind::kAllocation, "", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("job-7"));

  // The short id is accepted.
  s = Cmd().Release(ShortName(name));
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), name + " released\n");
}

TEST_F(CommandsTest, AllocWithSameRequestIdIsIdempotent) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.request_id = "fixed-id";
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  std::string first = out_.str();
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  EXPECT_EQ(out_.str().substr(0, out_.str().find(' ')),
            first.substr(0, first.find(' ')));
}

TEST_F(CommandsTest, AllocWaitTimesOutWithStateAndReason) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.wait = true;
  opts.wait_timeout = absl::Milliseconds(300);
  absl::Status s = Cmd().Alloc(opts);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("exists but is not READY after 300ms"));
  EXPECT_THAT(s.message(), HasSubstr("state PENDING"));
  EXPECT_THAT(s.message(), HasSubstr("have not applied generation"));
  EXPECT_THAT(StatusHint(s), HasSubstr("fabricctl release alloc"));
  // The summary line was printed before waiting.
  EXPECT_THAT(out_.str(), HasSubstr("(PENDING)"));
}

TEST_F(CommandsTest, AllocWaitSucceedsOnceAgentsApply) {
  CreateRing("r1", {"a", "b", "c"});
  StartAgents({"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  opts.wait = true;
  opts.wait_timeout = absl::Seconds(10);
  absl::Status s = Cmd().Alloc(opts);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), HasSubstr(" is READY\n"));
}

TEST_F(CommandsTest, LinkDownAcceptsEitherOrder) {
  CreateRing("r1", {"a", "b", "c"});
  // Declared as a--b; named the other way round here.
  absl::Status s = Cmd().SetLink("b", "a", false);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out_.str(), StartsWith("link/a--b down"));
  EXPECT_THAT(out_.str(), HasSubstr("address maps recomputed"));
  ASSERT_TRUE(Cmd().Get(ResourceKind::kLink, "b--a", "").ok());
  EXPECT_THAT(out_.str(), HasSubstr("down"));
  ASSERT_TRUE(Cmd().SetLink("a", "b", true).ok());
  EXPECT_THAT(out_.str(), StartsWith("link/a--b up"));

  s = Cmd().SetLink("a", "ghost", false);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("no link between a and ghost"));
}

TEST_F(CommandsTest, DeleteFabricNeedsForceWithAllocations) {
  CreateRing("r1", {"a", "b", "c"});
  AllocOptions opts;
  opts.borrower = "a";
  opts.target = "b";
  opts.size = 4096;
  ASSERT_TRUE(Cmd().Alloc(opts).ok());
  absl::Status s = Cmd().DeleteFabric("r1", false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(StatusHint(s), HasSubstr("--force"));
  s = Cmd().DeleteFabric("r1", true);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out_.str(), "fabric/r1 deleted\n");
}

TEST_F(CommandsTest, CliExitCodesAgainstARealServer) {
  std::ostringstream out, err;
  std::string server = "--server=" + address_;
  EXPECT_EQ(RunFabricctl({"fabricctl", server, "create", "star", "s1", "--hub",
                          "m", "--nodes", "a,b", "--export", "64MiB"},
                         out, err),
            kExitOk)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("fabric/s1 created (3 nodes"));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", server, "create", "star", "s1", "--hub",
                          "m", "--nodes", "a,b"},
                         out, err),
            kExitError);
  EXPECT_THAT(err.str(), HasSubstr("error: create fabric/s1: "));

  out.str("");
  EXPECT_EQ(RunFabricctl({"fabricctl", "get", "fabrics", "-o", "json", server},
                         out, err),
            kExitOk);
  EXPECT_THAT(out.str(), StartsWith("[\n"));
  EXPECT_THAT(out.str(), HasSubstr("\"hub\": \"m\""));
  EXPECT_THAT(out.str(), HasSubstr("\"defaultExportSize\": \"67108864\""));
}

}  // namespace
}  // namespace fabric::client
