// The agent against a real in-process manager on 127.0.0.1:0, with
// simulated bridges in a temp directory: configurations reach the
// simulator, allocations turn READY, bytes verify, drift is repaired and
// refused entries are reported.
#include "agent/agent.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/bridge_state.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/state_file.h"
#include "agent/hw/testing/temp_dir.h"
#include "agent/manager_session.h"
#include "common/leader_channel.h"
#include "common/profiles.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ =
        *service::FabricManager::Open(store_.get(), Clock::Real(), Options());
    server_ = *service::GrpcServer::Start(manager_.get(), "127.0.0.1:0");
    address_ = absl::StrCat("127.0.0.1:", server_->port());
    stub_ = v1::FabricService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  static service::ManagerOptions Options() {
    service::ManagerOptions opts;
    opts.heartbeat_interval = absl::Milliseconds(100);
    return opts;
  }

  void TearDown() override {
    for (auto& a : agents_) a->Stop();
    server_->Shutdown();
    manager_->Shutdown();
  }

  // A ring of `n` nodes, each with an agent over a simulated bridge whose
  // hardware has `hw_profile`'s limits; `edit` may change the spec first.
  void StartRing(int n, const std::string& hw_profile = "sim",
                 const std::function<void(v1::FabricSpec*)>& edit = {}) {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("lab");
    req.mutable_spec()->set_topology(v1::RING);
    req.mutable_spec()->set_default_export_size(64 << 20);
    for (int i = 0; i < n; ++i)
      req.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
    if (edit) edit(req.mutable_spec());
    ASSERT_TRUE(manager_->CreateFabric(req).ok());
    for (int i = 0; i < n; ++i) {
      auto bridge = hw::SimBridge::Open(dir_.path(), absl::StrCat("n", i),
                                        *hw::LimitsForProfile("hw_profile", hw_profile));
      ASSERT_TRUE(bridge.ok()) << bridge.status();
      AgentOptions o;
      o.manager_address = manager_list_.empty() ? address_ : manager_list_;
      o.tls.insecure = true;  // the in-process manager is plaintext
      o.node = absl::StrCat("n", i);
      o.backend = "sim";
      o.clock = &clock_;  // the test runs drift checks (DriftCheck)
      bridges_.push_back(*std::move(bridge));
      agents_.push_back(std::make_unique<Agent>(o, bridges_.back().get(),
                                                v1::NodeInventory()));
      ASSERT_TRUE(agents_.back()->Start().ok());
    }
  }

  absl::StatusOr<v1::Allocation> Allocate(const std::string& from,
                                          const std::string& to,
                                          uint64_t size) {
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower(from);
    req.mutable_allocation()->set_target(to);
    req.mutable_allocation()->set_size(size);
    return manager_->CreateAllocation(req);
  }

  // Polls until the allocation reaches `state` or 5 s pass.
  v1::Allocation WaitFor(const std::string& name, v1::Allocation::State state) {
    v1::Allocation a;
    for (int i = 0; i < 500; ++i) {
      a = *manager_->GetAllocation(name);
      if (a.state() == state) break;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return a;
  }

  v1::VerifyResult Verify(const std::string& name) {
    grpc::ClientContext ctx;
    v1::VerifyAllocationRequest req;
    req.set_name(name);
    v1::VerifyResult out;
    grpc::Status s = stub_->VerifyAllocation(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // Waits until agent i is done with the configuration it got: its bridge
  // (read from the file, leaving the agent's SimBridge alone) holds its
  // fingerprint, which the agent writes last.
  bool WaitIdle(int i);

  // Moves the agents' clock on by the drift check interval and waits until
  // agent i has run the reconcile step that made due (a drift check, or a
  // retry when its configuration was refused).
  void DriftCheck(int i);

  ManualClock clock_;
  // The agents' --manager when set (a list of managers, HA).
  std::string manager_list_;

  hw::testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::unique_ptr<service::GrpcServer> server_;
  std::string address_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
  std::vector<std::unique_ptr<hw::SimBridge>> bridges_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

TEST_F(AgentTest, AllocationTurnsReadyAndVerifiesByBytes) {
  StartRing(3);
  auto a = Allocate("n0", "n2", 2 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  v1::Allocation ready = WaitFor(a->name(), v1::Allocation::READY);
  ASSERT_EQ(ready.state(), v1::Allocation::READY) << ready.state_reason();
  v1::VerifyResult v = Verify(a->name());
  EXPECT_TRUE(v.ok()) << v.summary();
  EXPECT_GT(v.bytes_verified(), 0u);
  // The borrower's bridge holds the window the manager computed.
  auto state = bridges_[0]->Read();
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->windows.size(), 1u);
  EXPECT_EQ(state->windows[0].local_base, a->borrower_addr());
  EXPECT_EQ(state->windows[0].xlat, a->fabric_addr());
}

// A manager restarted under running agents (as a new leader takes over):
// the allocation stays READY throughout. The new manager presumes what the
// agents attested their nodes hold (the holdings the old one saved), and
// each agent registers with the digest of what its bridge holds, which is
// what the new manager wants of it: it holds the current generation from
// its registration on.
TEST_F(AgentTest, AllocationStaysReadyWhileTheManagerRestartsUnderItsAgents) {
  StartRing(3);
  auto a = Allocate("n0", "n2", 2 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  std::vector<int64_t> sessions;
  for (const char* n : {"n0", "n1", "n2"}) {
    sessions.push_back(manager_->GetNode(n)->agent_session());
  }
  manager_->Sweep();  // saves the holdings now rather than at the next tick
  const int port = server_->port();
  server_->Shutdown();
  manager_->Shutdown();
  auto reopened =
      service::FabricManager::Open(store_.get(), Clock::Real(), Options());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  manager_ = *std::move(reopened);
  // Before any agent could have registered with it.
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY)
      << manager_->GetAllocation(a->name())->state_reason();
  auto server =
      service::GrpcServer::Start(manager_.get(), absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  // Until every agent has registered with the new manager, and after.
  int reregistered = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (reregistered < 3 && absl::Now() < deadline) {
    const v1::Allocation now = *manager_->GetAllocation(a->name());
    ASSERT_EQ(now.state(), v1::Allocation::READY) << now.state_reason();
    reregistered = 0;
    for (int i = 0; i < 3; ++i) {
      const v1::Node n = *manager_->GetNode(absl::StrCat("n", i));
      if (n.agent_session() != 0 && n.agent_session() != sessions[i]) {
        ++reregistered;
        // It registered holding the current generation.
        EXPECT_EQ(n.applied_generation(), n.desired_generation()) << n.name();
      }
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(reregistered, 3);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

// Serves `service` on 127.0.0.1:0; *address is where. Null if it could
// not listen.
std::unique_ptr<grpc::Server> Serve(grpc::Service* service,
                                    std::string* address) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  *address = absl::StrCat("127.0.0.1:", port);
  return server;
}

// A standby manager (server/ha/standby_server.h) naming `leader`.
class StandbyAgentService final : public agentproto::v1::AgentService::Service {
 public:
  explicit StandbyAgentService(std::string leader) : leader_(std::move(leader)) {}
  grpc::Status RegisterNode(grpc::ServerContext* ctx,
                            const agentproto::v1::RegisterNodeRequest*,
                            agentproto::v1::RegisterNodeResponse*) override {
    ++calls;
    return Refuse(ctx);
  }
  grpc::Status ReportStatus(grpc::ServerContext* ctx,
                            const agentproto::v1::ReportStatusRequest*,
                            agentproto::v1::ReportStatusResponse*) override {
    ++reports;
    return Refuse(ctx);
  }
  std::atomic<int> calls{0};    // registrations
  std::atomic<int> reports{0};

 private:
  grpc::Status Refuse(grpc::ServerContext* ctx) const {
    ctx->AddTrailingMetadata(kLeaderMetadataKey, leader_);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, StandbyMessage(leader_));
  }
  const std::string leader_;
};

// A manager that refuses every registration (UNAVAILABLE, naming no
// leader) and keeps what each one said of its order.
class RefusingAgentService final : public agentproto::v1::AgentService::Service {
 public:
  grpc::Status RegisterNode(grpc::ServerContext*,
                            const agentproto::v1::RegisterNodeRequest* req,
                            agentproto::v1::RegisterNodeResponse*) override {
    absl::MutexLock l(&mu);
    seen.emplace_back(req->instance(), req->attempt());
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not now");
  }
  absl::Mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> seen ABSL_GUARDED_BY(mu);
};

// Each registration an agent sends is numbered, within an instance id of
// its own: the manager refuses a late copy of an earlier one by these.
TEST_F(AgentTest, RegistrationsAreNumberedWithinTheAgentsInstance) {
  RefusingAgentService refusing;
  std::string refusing_address;
  std::unique_ptr<grpc::Server> server = Serve(&refusing, &refusing_address);
  ASSERT_NE(server, nullptr);
  manager_list_ = refusing_address;
  StartRing(2);
  // The agent backs off 100 ms, doubling, between attempts.
  {
    absl::MutexLock l(&refusing.mu);
    refusing.mu.AwaitWithTimeout(
        absl::Condition(
            +[](std::vector<std::pair<uint64_t, uint64_t>>* seen) {
              return seen->size() >= 6;
            },
            &refusing.seen),
        absl::Seconds(20));
  }
  for (auto& agent : agents_) agent->Stop();
  agents_.clear();
  server->Shutdown();
  absl::MutexLock l(&refusing.mu);
  ASSERT_GE(refusing.seen.size(), 6u);
  // Two agents: each its own instance, its attempts 1, 2, 3, ... in order.
  std::map<uint64_t, std::vector<uint64_t>> attempts;
  for (const auto& [instance, attempt] : refusing.seen) {
    EXPECT_NE(instance, 0u);
    attempts[instance].push_back(attempt);
  }
  ASSERT_EQ(attempts.size(), 2u);
  for (const auto& [instance, sent] : attempts) {
    for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i], i + 1) << i;
  }
}

TEST_F(AgentTest, AgentsGivenAStandbyFirstRegisterWithTheLeaderItNames) {
  StandbyAgentService standby(address_);
  std::string standby_address;
  std::unique_ptr<grpc::Server> server = Serve(&standby, &standby_address);
  ASSERT_NE(server, nullptr);
  // The leader is not in the list: the standby's answer is enough.
  manager_list_ = absl::StrCat(standby_address, ",127.0.0.1:1");
  StartRing(2);
  auto a = Allocate("n0", "n1", 2 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  EXPECT_GE(standby.calls, 2);  // each agent asked it once
  for (auto& agent : agents_) agent->Stop();
  agents_.clear();
  server->Shutdown();
}

// A leader that takes registrations and keeps config streams open, but
// answers the first `hung_reports` status reports (all of them when -1)
// only when the agent gives up on them (their deadline) or on Resume():
// with -1 a paused leader (SIGSTOP), with 1 an overloaded one.
class LateLeaderService final : public agentproto::v1::AgentService::Service {
 public:
  explicit LateLeaderService(int hung_reports) : hung_reports_(hung_reports) {}
  grpc::Status RegisterNode(grpc::ServerContext*,
                            const agentproto::v1::RegisterNodeRequest*,
                            agentproto::v1::RegisterNodeResponse* resp) override {
    ++registrations;
    resp->set_session(1);
    resp->mutable_heartbeat_interval()->set_nanos(50'000'000);
    return grpc::Status::OK;
  }
  grpc::Status StreamConfig(
      grpc::ServerContext* ctx, const agentproto::v1::StreamConfigRequest*,
      grpc::ServerWriter<agentproto::v1::DesiredConfig>*) override {
    Hang(ctx);
    return grpc::Status::OK;
  }
  grpc::Status ReportStatus(grpc::ServerContext* ctx,
                            const agentproto::v1::ReportStatusRequest*,
                            agentproto::v1::ReportStatusResponse*) override {
    if (const int n = ++reports; hung_reports_ < 0 || n <= hung_reports_) {
      Hang(ctx);
    }
    return grpc::Status::OK;
  }
  void Resume() { resumed_.Notify(); }
  std::atomic<int> registrations{0};
  std::atomic<int> reports{0};

 private:
  void Hang(grpc::ServerContext* ctx) {
    while (!ctx->IsCancelled() &&
           !resumed_.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
    }
  }
  const int hung_reports_;
  absl::Notification resumed_;
};

TEST_F(AgentTest, AgentsLeaveALeaderThatAnswersNothingForTheNextManager) {
  LateLeaderService paused(/*hung_reports=*/-1);
  std::string paused_address;
  std::unique_ptr<grpc::Server> server = Serve(&paused, &paused_address);
  ASSERT_NE(server, nullptr);
  manager_list_ = absl::StrCat(paused_address, ",", address_);
  StartRing(2);
  auto a = Allocate("n0", "n1", 2 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  // The agents' attempt_timeout (2 s) passes first; WaitFor polls 5 s.
  EXPECT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  EXPECT_GE(paused.registrations, 1);
  for (auto& agent : agents_) agent->Stop();
  agents_.clear();
  paused.Resume();
  server->Shutdown();
}

TEST_F(AgentTest, AgentKeepsItsSessionWithALateLeaderTheOthersStillName) {
  LateLeaderService slow(/*hung_reports=*/1);
  std::string slow_address;
  std::unique_ptr<grpc::Server> slow_server = Serve(&slow, &slow_address);
  ASSERT_NE(slow_server, nullptr);
  StandbyAgentService standby(slow_address);
  std::string standby_address;
  std::unique_ptr<grpc::Server> standby_server =
      Serve(&standby, &standby_address);
  ASSERT_NE(standby_server, nullptr);
  manager_list_ = absl::StrCat(slow_address, ",", standby_address);
  StartRing(2);
  // The agent whose report timed out turns to the standby...
  for (int i = 0; i < 1000 && standby.reports + standby.calls < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  // ...only to ask who leads,
  EXPECT_GE(standby.reports, 1);
  // and its reports go on in the same session.
  const int reports = slow.reports;
  for (int i = 0; i < 1000 && slow.reports < reports + 10; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GE(slow.reports, reports + 10);
  EXPECT_EQ(slow.registrations, 2);
  for (auto& agent : agents_) EXPECT_EQ(agent->stats().sessions, 1);
  EXPECT_EQ(standby.calls, 0);  // nothing registered there
  for (auto& agent : agents_) agent->Stop();
  agents_.clear();
  slow.Resume();
  standby_server->Shutdown();
  slow_server->Shutdown();
}

TEST_F(AgentTest, ClearedWindowIsDetectedRepairedAndCounted) {
  StartRing(3);
  auto a = Allocate("n1", "n2", 1 << 20);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  // Behind the agent's back.
  ASSERT_TRUE(bridges_[1]->ClearWindow(hw::SlotKind::kWindow, a->slot()).ok());
  ASSERT_TRUE(bridges_[1]->Read()->windows.empty());
  DriftCheck(1);
  EXPECT_EQ(bridges_[1]->Read()->windows.size(), 1u);
  AgentStats stats = agents_[1]->stats();
  EXPECT_EQ(stats.repairs, 1);
  ASSERT_FALSE(stats.recent_repairs.empty());
  EXPECT_THAT(stats.recent_repairs.back(), HasSubstr("window"));
  EXPECT_TRUE(Verify(a->name()).ok());
  // Without drift there is nothing to repair.
  DriftCheck(1);
  EXPECT_EQ(agents_[1]->stats().repairs, 1);
}

// Drift in the device MMIO range alone is drift like any other.
TEST_F(AgentTest, MmioRangeDriftIsRepaired) {
  constexpr uint64_t kMmio = 0x300'0000'0000ull;
  StartRing(3, "sim", [](v1::FabricSpec* spec) {
    spec->mutable_nodes(1)->set_mmio_base(kMmio);
    spec->mutable_nodes(1)->set_mmio_size(1ull << 30);
  });
  ASSERT_TRUE(WaitIdle(1));
  hw::HostMemory memory = bridges_[1]->Read()->memory;
  ASSERT_EQ(memory.mmio_base, kMmio);
  memory.mmio_base = 2 * kMmio;  // behind the agent's back
  ASSERT_TRUE(bridges_[1]->SetHostMemory(memory).ok());
  DriftCheck(1);
  const AgentStats stats = agents_[1]->stats();
  EXPECT_EQ(stats.repairs, 1);
  ASSERT_FALSE(stats.recent_repairs.empty());
  EXPECT_THAT(stats.recent_repairs.back(), HasSubstr("host memory"));
  EXPECT_EQ(bridges_[1]->Read()->memory.mmio_base, kMmio);
}

TEST_F(AgentTest, RefusedEntriesAreReportedAndKeepTheAllocationPending) {
  // The manager believes in the sim profile (8 windows); the hardware is an
  // Intel gen4 NTB with 2.
  StartRing(3, "intel-xeon-gen4");
  std::vector<v1::Allocation> made;
  for (int i = 0; i < 3; ++i) {
    auto a = Allocate("n0", i == 1 ? "n2" : "n1", 1 << 20);
    ASSERT_TRUE(a.ok()) << a.status();
    made.push_back(*a);
  }
  absl::StatusOr<v1::Node> node;
  for (int i = 0; i < 500; ++i) {
    node = manager_->GetNode("n0");
    ASSERT_TRUE(node.ok());
    if (node->apply_errors_size() > 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  v1::Allocation third = *manager_->GetAllocation(made[2].name());
  EXPECT_EQ(third.state(), v1::Allocation::PENDING);
  bool named = false;
  for (const auto& e : node->apply_errors()) {
    named |= e.entry() == "window 2";
  }
  EXPECT_TRUE(named) << node->DebugString();
  EXPECT_THAT(third.state_reason(), HasSubstr("window 2"));
  // The refused entry holds back only its own allocation.
  EXPECT_EQ(WaitFor(made[0].name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  EXPECT_EQ(WaitFor(made[1].name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  EXPECT_TRUE(Verify(made[1].name()).ok());
  EXPECT_EQ(agents_[1]->stats().errors.size(), 0u);
}

// Polls `done` every 10 ms for up to `timeout`.
bool Eventually(const std::function<bool()>& done,
                absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

std::string FileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// 0xff 0xfe (never valid in UTF-8) and then 4 KiB of noise.
std::string RandomBytes() {
  std::mt19937 gen(20261205);
  std::string out = "\xff\xfe";
  for (int i = 0; i < 4096; ++i) out.push_back(static_cast<char>(gen()));
  return out;
}

// Whether `s`'s scratchpads 0-1 hold the fingerprint of what it holds.
bool Fingerprinted(const hw::BridgeState& s) {
  return s.scratchpads.size() > 1 && ((uint64_t{s.scratchpads[1]} << 32) |
                                      s.scratchpads[0]) == Fingerprint(s);
}

void AgentTest::DriftCheck(int i) {
  clock_.Advance(AgentOptions().drift_check_interval);
  ASSERT_TRUE(Eventually([&] {
    return agents_[i]->stats().next_drift_check > clock_.Now();
  })) << "agent " << i << " ran no reconcile step";
}

bool AgentTest::WaitIdle(int i) {
  return Eventually([&] {
    absl::StatusOr<hw::sim_internal::SimRecord> r =
        hw::sim_internal::LoadRecord(dir_.path(), absl::StrCat("n", i),
                                     nullptr);
    return r.ok() && Fingerprinted(r->state);
  });
}

// What can become of a running agent's bridge.json behind its back.
struct Corruption {
  std::string name;
  std::function<void(const std::string& path)> apply;
};

std::vector<Corruption> Corruptions() {
  return {
      {"RandomBytes",
       [](const std::string& path) { WriteBytes(path, RandomBytes()); }},
      {"Truncated",
       [](const std::string& path) {
         const std::string text = FileText(path);
         WriteBytes(path, text.substr(0, text.size() / 2));
       }},
      {"JsonOfAnotherShape",
       [](const std::string& path) {
         WriteBytes(path, "[\"windows\", 1, 2, {\"\xc3\xa9\": null}]");
       }},
      // Parses, but holds no limits the chip could have.
      {"JsonWithoutLimits",
       [](const std::string& path) {
         WriteBytes(path, "{\"bridge\": \"n1\", \"windows\": []}");
       }},
      {"Deleted",
       [](const std::string& path) { ASSERT_EQ(unlink(path.c_str()), 0); }},
  };
}

void PrintTo(const Corruption& c, std::ostream* os) { *os << c.name; }

class UnreadableStateTest : public AgentTest,
                            public ::testing::WithParamInterface<Corruption> {};

// Unreadable hardware state is drift: the drift check says so in a clean
// line, rebuilds the bridge from the desired configuration and counts one
// repair; the manager keeps hearing from the agent, and the allocation
// verifies by bytes again.
TEST_P(UnreadableStateTest, IsRebuiltFromTheDesiredConfiguration) {
  StartRing(3);
  auto a = Allocate("n1", "n2", 1 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  ASSERT_TRUE(WaitIdle(1));
  const hw::BridgeState before = *bridges_[1]->Read();
  const int64_t generation = agents_[1]->stats().applied_generation;

  GetParam().apply(hw::sim_internal::StatePath(dir_.path(), "n1"));
  absl::StatusOr<hw::BridgeState> unreadable = bridges_[1]->Read();
  ASSERT_FALSE(unreadable.ok());
  const std::string why(unreadable.status().message());
  EXPECT_EQ(ValidUtf8(why), why);
  EXPECT_LE(why.size(), 512u) << why;

  DriftCheck(1);
  const AgentStats stats = agents_[1]->stats();
  EXPECT_EQ(stats.repairs, 1);
  EXPECT_THAT(stats.errors, ::testing::IsEmpty());
  ASSERT_FALSE(stats.recent_repairs.empty());
  const std::string line = stats.recent_repairs.back();
  EXPECT_THAT(line, StartsWith("bridge state unreadable ("));
  EXPECT_THAT(line, HasSubstr(why));
  EXPECT_THAT(
      line, HasSubstr(absl::StrCat("; rebuilt from generation ", generation)));
  // The bridge holds what it was given again, and its fingerprint (the
  // reset cleared the scratchpads).
  absl::StatusOr<hw::BridgeState> after = bridges_[1]->Read();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(DiffEntries(*after, before).empty());
  EXPECT_TRUE(Fingerprinted(*after));

  // The manager heard of the repair, and the node stayed READY.
  v1::Node node;
  EXPECT_TRUE(Eventually([&] {
    node = *manager_->GetNode("n1");
    return node.repairs() == 1;
  })) << node.DebugString();
  EXPECT_EQ(node.agent_state(), v1::Node::READY);
  EXPECT_EQ(node.apply_errors_size(), 0);
  ASSERT_GT(node.recent_repairs_size(), 0);
  EXPECT_EQ(node.recent_repairs(node.recent_repairs_size() - 1), line);
  EXPECT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  EXPECT_TRUE(Verify(a->name()).ok());
  // Rebuilt once: nothing more to repair.
  DriftCheck(1);
  EXPECT_EQ(agents_[1]->stats().repairs, 1);
}

INSTANTIATE_TEST_SUITE_P(Corruptions, UnreadableStateTest,
                         ::testing::ValuesIn(Corruptions()),
                         [](const ::testing::TestParamInfo<Corruption>& info) {
                           return info.param.name;
                         });

// While the hardware cannot be rebuilt either, the agent reports why, in
// UTF-8 whatever bytes the file holds (protobuf would refuse the whole
// report otherwise), and keeps trying; the first attempt that lands
// rebuilds the bridge and counts the repair.
TEST_F(AgentTest, UnreadableStateThatCannotBeRebuiltIsReportedUntilItIs) {
  StartRing(3);
  auto a = Allocate("n1", "n2", 1 << 20);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(WaitFor(a->name(), v1::Allocation::READY).state(),
            v1::Allocation::READY);
  ASSERT_TRUE(WaitIdle(1));
  WriteBytes(hw::sim_internal::StatePath(dir_.path(), "n1"), RandomBytes());
  bridges_[1]->InjectApplyFailure(absl::UnavailableError("bridge busy"), 1000);

  DriftCheck(1);
  AgentStats stats = agents_[1]->stats();
  EXPECT_EQ(stats.repairs, 0);
  ASSERT_FALSE(stats.errors.empty());
  EXPECT_EQ(stats.errors[0].entry(), "hardware");
  EXPECT_THAT(stats.errors[0].message(), HasSubstr("does not parse"));
  EXPECT_EQ(ValidUtf8(stats.errors[0].message()), stats.errors[0].message());
  v1::Node node;
  EXPECT_TRUE(Eventually([&] {
    node = *manager_->GetNode("n1");
    return node.apply_errors_size() > 0 &&
           node.apply_errors(0).entry() == "hardware";
  })) << node.DebugString();
  EXPECT_THAT(node.apply_errors(0).message(), HasSubstr("does not parse"));
  EXPECT_EQ(node.agent_state(), v1::Node::READY);

  bridges_[1]->InjectApplyFailure(absl::UnavailableError("unused"), 0);
  DriftCheck(1);
  stats = agents_[1]->stats();
  EXPECT_THAT(stats.errors, ::testing::IsEmpty());
  EXPECT_EQ(stats.repairs, 1);
  ASSERT_FALSE(stats.recent_repairs.empty());
  EXPECT_THAT(stats.recent_repairs.back(), HasSubstr("rebuilt"));
  EXPECT_TRUE(Eventually([&] {
    node = *manager_->GetNode("n1");
    return node.repairs() == 1 && node.apply_errors_size() == 0;
  })) << node.DebugString();
  EXPECT_TRUE(Verify(a->name()).ok());
}

// A second agent for the same node takes it over: the first one's session
// is fenced (its reports and stream are refused), it stops and says why,
// and the node shows the takeover and the new agent's address.
TEST_F(AgentTest, NewerAgentFencesTheOlderOne) {
  StartRing(3);
  ASSERT_TRUE(Eventually([&] {
    return manager_->GetNode("n1")->agent_state() == v1::Node::READY &&
           agents_[1]->stats().sessions == 1;
  }));
  const std::string first_address = manager_->GetNode("n1")->agent_address();
  auto bridge = hw::SimBridge::Open(dir_.path(), "n1",
                                    *hw::LimitsForProfile("p", "sim"));
  ASSERT_TRUE(bridge.ok());
  AgentOptions o;
  o.manager_address = address_;
  o.tls.insecure = true;
  o.node = "n1";
  o.backend = "sim";
  Agent second(o, bridge->get(), v1::NodeInventory());
  ASSERT_TRUE(second.Start().ok());
  ASSERT_TRUE(Eventually([&] { return agents_[1]->stats().fenced; }))
      << "the older agent was never fenced";
  EXPECT_THAT(agents_[1]->stats().fence_reason, HasSubstr("fenced"));
  EXPECT_EQ(second.stats().fenced, false);
  const v1::Node n1 = *manager_->GetNode("n1");
  EXPECT_EQ(n1.agent_address(),
            absl::StrCat("127.0.0.1:", second.control_port()));
  EXPECT_NE(n1.agent_address(), first_address);
  EXPECT_THAT(n1.agent_takeover(), HasSubstr(first_address));
  EXPECT_NE(n1.agent_session(), 0);
  // The fenced agent's reports are refused: its old session is not current.
  agentproto::v1::ReportStatusRequest stale;
  stale.set_node("n1");
  stale.set_session(n1.agent_session() - 1);
  EXPECT_EQ(manager_->ReportStatus(stale).status().code(),
            absl::StatusCode::kAborted);
  // The node stays READY under the newer agent; the old one stays away.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(manager_->GetNode("n1")->agent_address(), n1.agent_address());
  EXPECT_EQ(agents_[1]->stats().sessions, 1);
  second.Stop();
}

// An agent listening on every address registers the address the manager
// sees it connect from; --advertise overrides it.
TEST_F(AgentTest, WildcardListenAdvertisesTheConnectionsAddress) {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name("lab");
  req.mutable_spec()->set_topology(v1::RING);
  for (int i = 0; i < 2; ++i)
    req.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
  ASSERT_TRUE(manager_->CreateFabric(req).ok());
  std::vector<std::unique_ptr<hw::SimBridge>> bridges;
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < 2; ++i) {
    auto bridge = hw::SimBridge::Open(dir_.path(), absl::StrCat("n", i),
                                      *hw::LimitsForProfile("p", "sim"));
    ASSERT_TRUE(bridge.ok());
    AgentOptions o;
    o.manager_address = address_;
    o.tls.insecure = true;
    o.node = absl::StrCat("n", i);
    o.backend = "sim";
    o.listen = "0.0.0.0:0";
    if (i == 1) o.advertise = "192.0.2.7:7071";  // TEST-NET-1, never dialed
    bridges.push_back(*std::move(bridge));
    agents.push_back(
        std::make_unique<Agent>(o, bridges.back().get(), v1::NodeInventory()));
    ASSERT_TRUE(agents.back()->Start().ok());
  }
  EXPECT_TRUE(Eventually([&] {
    return manager_->GetNode("n0")->agent_address() ==
           absl::StrCat("127.0.0.1:", agents[0]->control_port());
  })) << manager_->GetNode("n0")->agent_address();
  EXPECT_TRUE(Eventually([&] {
    return manager_->GetNode("n1")->agent_address() == "192.0.2.7:7071";
  })) << manager_->GetNode("n1")->agent_address();
  for (auto& a : agents) a->Stop();
}

}  // namespace
}  // namespace fabric::agent
