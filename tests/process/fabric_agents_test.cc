// The whole chain as separate processes: fabric-manager and eight
// fabric-agent simulators on a ring. Allocations must turn READY and verify
// by bytes, survive a link going down (rerouted), an agent being killed and
// restarted over wiped hardware, and a partition (DEGRADED, the rest still
// verify). With two managers on etcd (HA), allocations survive the leader
// being killed: the agents go on with the new leader.
#include <grpcpp/create_channel.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"
#include "tests/process/test_transport.h"

namespace fabric::proctest {
namespace {

using ::fabric::etcdtest::EtcdCluster;

constexpr int kNodes = 8;
constexpr int kAllocations = 100;

class FabricAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> flags = tls_.ManagerFlags();
    flags.insert(flags.end(), {"--heartbeat-timeout", "600ms",
                               "--heartbeat-interval", "100ms"});
    manager_ = std::make_unique<Manager>(StartManager(
        dir_.path() + "/fabric.db", dir_.path() + "/manager.log", flags));
    ASSERT_GT(manager_->port, 0) << ReadFile(dir_.path() + "/manager.log");
    address_ = absl::StrCat("127.0.0.1:", manager_->port);
    stub_ = v1::FabricService::NewStub(tls_.DialManager(address_));
    StartRing(kNodes);
  }

  // Creates fabric "lab", a ring of nodes n0..n{nodes-1}, and starts their
  // agents.
  void StartRing(int nodes) {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("lab");
    req.mutable_spec()->set_topology(v1::RING);
    req.mutable_spec()->set_default_export_size(256 << 20);
    for (int i = 0; i < nodes; ++i)
      req.mutable_spec()->add_nodes()->set_name(Node(i));
    grpc::ClientContext ctx;
    v1::Fabric f;
    ASSERT_TRUE(stub_->CreateFabric(&ctx, req, &f).ok());
    for (int i = 0; i < nodes; ++i) agents_.push_back(StartAgent(i));
  }

  static std::string Node(int i) { return absl::StrCat("n", i); }

  std::unique_ptr<Child> StartAgent(int i) {
    std::vector<std::string> argv = {BinDir() + "/fabric-agent",
                                     "--manager",
                                     address_,
                                     "--node",
                                     Node(i),
                                     "--backend",
                                     "sim",
                                     "--sim-dir",
                                     dir_.path() + "/sim",
                                     "--drift-check-interval",
                                     "200ms"};
    for (std::string& flag : tls_.AgentFlags(Node(i))) argv.push_back(flag);
    return std::make_unique<Child>(
        argv, absl::StrCat(dir_.path(), "/agent-", i, ".log"));
  }

  v1::Allocation Get(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetAllocationRequest req;
    req.set_name(name);
    v1::Allocation a;
    EXPECT_TRUE(stub_->GetAllocation(&ctx, req, &a).ok());
    return a;
  }

  // Polls until `name` is in `state`, for up to Scaled(15 s).
  bool WaitState(const std::string& name, v1::Allocation::State state) {
    return WaitFor([&] { return Get(name).state() == state; },
                   absl::Seconds(15));
  }

  v1::Node GetNode(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name(name);
    v1::Node n;
    EXPECT_TRUE(stub_->GetNode(&ctx, req, &n).ok());
    return n;
  }

  bool WaitNode(const std::string& name, v1::Node::AgentState state) {
    return WaitFor([&] { return GetNode(name).agent_state() == state; },
                   absl::Seconds(15));
  }

  v1::VerifyResult Verify(const std::string& name) {
    grpc::ClientContext ctx;
    v1::VerifyAllocationRequest req;
    req.set_name(name);
    v1::VerifyResult r;
    grpc::Status s = stub_->VerifyAllocation(&ctx, req, &r);
    EXPECT_TRUE(s.ok()) << name << ": " << s.error_message();
    return r;
  }

  void SetLink(const std::string& link, bool up) {
    grpc::ClientContext ctx;
    v1::SetLinkStateRequest req;
    req.set_name(link);
    req.set_up(up);
    v1::Link out;
    ASSERT_TRUE(stub_->SetLinkState(&ctx, req, &out).ok());
  }

  // Every allocation READY and verified by bytes; returns how many.
  int VerifyAll(const std::vector<v1::Allocation>& allocs) {
    int verified = 0;
    for (const auto& a : allocs) {
      if (!WaitState(a.name(), v1::Allocation::READY)) {
        ADD_FAILURE() << a.name()
                      << " not READY: " << Get(a.name()).state_reason();
        continue;
      }
      v1::VerifyResult r = Verify(a.name());
      EXPECT_TRUE(r.ok()) << r.summary();
      verified += r.ok() ? 1 : 0;
    }
    return verified;
  }

  Transport& tls_ = Transport::Tls();
  TempDir dir_;
  std::unique_ptr<Manager> manager_;
  std::string address_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
  std::vector<std::unique_ptr<Child>> agents_;
};

TEST_F(FabricAgentsTest, RingOfAgentsMovesBytesThroughFailures) {
  // 1. 100 random allocations, each waited to READY.
  std::mt19937 rng(20261125);
  std::vector<v1::Allocation> allocs;
  for (int i = 0; i < kAllocations; ++i) {
    const int from = static_cast<int>(rng() % kNodes);
    int to = static_cast<int>(rng() % (kNodes - 1));
    if (to >= from) ++to;
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower(Node(from));
    req.mutable_allocation()->set_target(Node(to));
    req.mutable_allocation()->set_size((1u << (rng() % 3)) << 20);
    req.set_request_id(absl::StrCat("proc-", i));
    grpc::ClientContext ctx;
    v1::Allocation a;
    grpc::Status s = stub_->CreateAllocation(&ctx, req, &a);
    ASSERT_TRUE(s.ok()) << i << ": " << s.error_message();
    ASSERT_TRUE(WaitState(a.name(), v1::Allocation::READY))
        << a.name() << ": " << Get(a.name()).state_reason();
    allocs.push_back(a);
  }

  // 2. Every one verified by bytes.
  EXPECT_EQ(VerifyAll(allocs), kAllocations);

  // 3. A write outside every grant is refused by the agent itself, even
  // to the manager's identity: far past the end of every window.
  {
    const v1::Node borrower = GetNode(allocs[0].borrower());
    // "nodes/n3" -> "n3": the node its certificate must name.
    const std::string& name = allocs[0].borrower();
    auto agent = agentproto::v1::NodeAgentService::NewStub(tls_.DialAgent(
        borrower.agent_address(), name.substr(name.rfind('/') + 1)));
    grpc::ClientContext ctx;
    agentproto::v1::HostWriteRequest w;
    w.set_addr(borrower.window_base() + (64ull << 30));  // no window there
    w.set_data(std::string(64, 'x'));
    v1::AccessResult r;
    grpc::Status s = agent->HostWrite(&ctx, w, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message() << "; landed on " << r.node();
  }

  // 4. One link down: every allocation is rerouted and verifies again.
  SetLink("links/n3--n4", false);
  EXPECT_EQ(VerifyAll(allocs), kAllocations);
  for (const auto& a : allocs) {
    const v1::Allocation now = Get(a.name());
    for (int i = 0; i + 1 < now.path_size(); ++i) {
      EXPECT_FALSE(now.path(i) == "bridges/n3" &&
                   now.path(i + 1) == "bridges/n4");
      EXPECT_FALSE(now.path(i) == "bridges/n4" &&
                   now.path(i + 1) == "bridges/n3");
    }
  }

  // 5. An agent is killed; its node goes NOT_READY. Meanwhile its bridge's
  // windows are cleared behind its back; the restarted agent goes READY,
  // detects the drift, restores the windows and counts the repair.
  agents_[2]->Signal(SIGKILL);
  agents_[2]->Wait();
  ASSERT_TRUE(WaitNode("n2", v1::Node::NOT_READY));
  int cleared = 0;
  {
    // The limits apply only to new hardware; n2's are kept as they are.
    const agent::hw::HardwareLimits limits =
        agent::hw::LimitsFromProfile(*core::FindProfile("sim"));
    auto bridge =
        agent::hw::SimBridge::Open(dir_.path() + "/sim", "n2", limits);
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    auto state = (*bridge)->Read();
    ASSERT_TRUE(state.ok());
    for (const auto& w : state->windows) {
      ASSERT_TRUE((*bridge)->ClearWindow(w.kind, w.slot).ok());
      ++cleared;
    }
  }
  ASSERT_GT(cleared, 0);
  agents_[2] = StartAgent(2);
  ASSERT_TRUE(WaitNode("n2", v1::Node::READY));
  EXPECT_EQ(VerifyAll(allocs), kAllocations);
  WaitFor([&] { return GetNode("n2").repairs() != 0; }, absl::Seconds(5));
  EXPECT_EQ(GetNode("n2").repairs(), cleared);
  // A bridge wiped entirely (as after a power cycle) is programmed again.
  agents_[5]->Signal(SIGKILL);
  agents_[5]->Wait();
  ASSERT_TRUE(WaitNode("n5", v1::Node::NOT_READY));
  std::filesystem::remove(dir_.path() + "/sim/n5/bridge.json");
  agents_[5] = StartAgent(5);
  ASSERT_TRUE(WaitNode("n5", v1::Node::READY));
  EXPECT_EQ(VerifyAll(allocs), kAllocations);

  // 6. A second link down partitions the ring: {n4..n7} and {n0..n3}
  // (n3--n4 and n7--n0 are down). Cut-off allocations are DEGRADED; the
  // rest still verify.
  SetLink("links/n7--n0", false);
  auto side = [](const std::string& node) {
    return node >= "nodes/n4" ? 1 : 0;
  };
  int degraded = 0, verified = 0;
  for (const auto& a : allocs) {
    if (side(a.borrower()) != side(a.target())) {
      EXPECT_TRUE(WaitState(a.name(), v1::Allocation::DEGRADED)) << a.name();
      ++degraded;
    } else {
      EXPECT_TRUE(WaitState(a.name(), v1::Allocation::READY)) << a.name();
      v1::VerifyResult r = Verify(a.name());
      EXPECT_TRUE(r.ok()) << r.summary();
      verified += r.ok();
    }
  }
  EXPECT_GT(degraded, 0);
  EXPECT_EQ(degraded + verified, kAllocations);
  std::cout << "partition: " << degraded << " DEGRADED, " << verified
            << " verified\n";
}

// Ending a grant clears it from the hardware, also when the grant ends
// because its fabric is deleted: the agents of nodes in no fabric hold an
// empty configuration and clear their bridges, and say so.
TEST_F(FabricAgentsTest, DeletedFabricLeavesNoAccessInTheBridges) {
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(Node(0));
  req.mutable_allocation()->set_target(Node(3));
  req.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext ctx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&ctx, req, &a).ok());
  ASSERT_TRUE(WaitState(a.name(), v1::Allocation::READY))
      << Get(a.name()).state_reason();
  ASSERT_EQ(VerifyAll({a}), 1);

  const agent::hw::HardwareLimits limits =
      agent::hw::LimitsFromProfile(*core::FindProfile("sim"));
  auto bridge_of = [&](int i) {
    auto bridge = agent::hw::SimBridge::Open(dir_.path() + "/sim", Node(i),
                                             limits);
    EXPECT_TRUE(bridge.ok()) << bridge.status();
    auto state = (*bridge)->Read();
    EXPECT_TRUE(state.ok()) << state.status();
    return *state;
  };
  ASSERT_FALSE(bridge_of(0).windows.empty());
  ASSERT_FALSE(bridge_of(3).inbound.empty());
  // A simulated node has only simulated hardware: not this host's PCI bus.
  EXPECT_EQ(GetNode("n0").inventory().functions_size(), 0);

  v1::DeleteFabricRequest del;
  del.set_name("fabrics/lab");
  del.set_force(true);
  grpc::ClientContext del_ctx;
  v1::Fabric deleted;
  grpc::Status s = stub_->DeleteFabric(&del_ctx, del, &deleted);
  ASSERT_TRUE(s.ok()) << s.error_message();

  for (int i = 0; i < kNodes; ++i) {
    EXPECT_TRUE(WaitFor(
        [&] {
          const agent::hw::BridgeState b = bridge_of(i);
          return b.windows.empty() && b.inbound.empty() && b.map.empty();
        },
        absl::Seconds(15)))
        << Node(i) << " still holds access after its fabric was deleted";
  }
  // The manager shows each node as in no fabric, with its agent READY and
  // the empty configuration applied; the agent's log says why.
  v1::Node n0;
  ASSERT_TRUE(WaitFor(
      [&] {
        n0 = GetNode("n0");
        return n0.agent_state() == v1::Node::READY &&
               n0.applied_generation() == n0.desired_generation();
      },
      absl::Seconds(10)));
  EXPECT_EQ(n0.fabric(), "");
  EXPECT_THAT(ReadFile(dir_.path() + "/agent-0.log"),
              ::testing::HasSubstr("the node is in no fabric"));
}


// Two managers on a 1-member etcd, three agents that dial both
// (--manager a,b).
class FabricAgentsHaTest : public FabricAgentsTest {
 protected:
  static constexpr int kHaNodes = 3;

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> etcd = EtcdCluster::Start(1);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    std::vector<std::string> flags = tls_.ManagerFlags();
    flags.insert(flags.end(),
                 {"--store", etcd_->StoreUrl("/fabric-ha"), "--lease-ttl", "2s",
                  "--heartbeat-timeout", "2s", "--heartbeat-interval",
                  "100ms"});
    std::vector<std::string> addresses;
    for (int i = 0; i < 2; ++i) {
      // Without --db the audit log's default is in the working directory.
      std::vector<std::string> own = flags;
      own.insert(own.end(), {"--audit-log", absl::StrCat(Log(i), ".audit")});
      managers_.push_back(std::make_unique<Manager>(StartManagerAt(
          BinDir() + "/fabric-manager", 0, /*db=*/"", Log(i), own)));
      ASSERT_GT(managers_[i]->port, 0) << ReadFile(Log(i));
      addresses.push_back(absl::StrCat("127.0.0.1:", managers_[i]->port));
    }
    address_ = absl::StrJoin(addresses, ",");
    leader_ = WaitLeader({0, 1});
    ASSERT_GE(leader_, 0) << ReadFile(Log(0)) << ReadFile(Log(1));
    DialLeader();
    StartRing(kHaNodes);
  }

  std::string Log(int i) const {
    return absl::StrCat(dir_.path(), "/manager-", i, ".log");
  }

  // The first of `candidates` whose log says it was elected, or -1.
  int WaitLeader(const std::vector<int>& candidates) {
    int leader = -1;
    WaitFor(
        [&] {
          for (int i : candidates) {
            if (ReadFile(Log(i)).find("elected leader") != std::string::npos) {
              leader = i;
              return true;
            }
          }
          return false;
        },
        absl::Seconds(20), absl::Milliseconds(20));
    return leader;
  }

  // stub_ calls the leader.
  void DialLeader() {
    stub_ = v1::FabricService::NewStub(tls_.DialManager(
        absl::StrCat("127.0.0.1:", managers_[leader_]->port)));
  }

  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<Manager>> managers_;
  int leader_ = -1;
};

TEST_F(FabricAgentsHaTest, AllocationsSurviveTheLeaderBeingKilled) {
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(Node(0));
  req.mutable_allocation()->set_target(Node(2));
  req.mutable_allocation()->set_size(16 << 20);
  req.set_request_id("ha-1");
  v1::Allocation a;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->CreateAllocation(&ctx, req, &a).ok());
  }
  ASSERT_EQ(VerifyAll({a}), 1);
  std::vector<int64_t> applied(kHaNodes);
  for (int i = 0; i < kHaNodes; ++i) {
    ASSERT_TRUE(WaitFor(
        [&] {
          const v1::Node n = GetNode(Node(i));
          applied[i] = n.applied_generation();
          return n.agent_state() == v1::Node::READY &&
                 n.applied_generation() == n.desired_generation();
        },
        absl::Seconds(10)));
  }

  managers_[leader_]->child.Signal(SIGKILL);
  managers_[leader_]->child.Wait();
  const int old_leader = leader_;
  leader_ = WaitLeader({1 - old_leader});
  ASSERT_EQ(leader_, 1 - old_leader) << ReadFile(Log(1 - old_leader));
  DialLeader();

  // Every agent registers with the new leader and applies its generations,
  // which go on above the old leader's: none goes backwards.
  const std::string registered = absl::StrCat(
      "registered with 127.0.0.1:", managers_[leader_]->port);
  for (int i = 0; i < kHaNodes; ++i) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return ReadFile(absl::StrCat(dir_.path(), "/agent-", i, ".log"))
                     .find(registered) != std::string::npos;
        },
        absl::Seconds(15)))
        << Node(i) << " did not register with the new leader";
    v1::Node n;
    EXPECT_TRUE(WaitFor(
        [&] {
          n = GetNode(Node(i));
          return n.agent_state() == v1::Node::READY &&
                 n.applied_generation() == n.desired_generation() &&
                 n.applied_generation() >= applied[i];
        },
        absl::Seconds(15)))
        << Node(i) << ": applied " << n.applied_generation() << " of "
        << n.desired_generation() << ", before the failover " << applied[i];
  }
  // The allocation is READY there (the new leader shows it PENDING until
  // the agents reported to it), and still moves bytes.
  EXPECT_EQ(VerifyAll({a}), 1);
}

}  // namespace
}  // namespace fabric::proctest
