// NodeAgentService over mutual TLS, as fabric-agent serves it: certificates
// from deploy/pki.sh (TestPki), the default policy in the server's
// AuthProcessor, a GrantGuard, a mocked bridge and a real VfLender over the
// simulator's devices. Replays the attacks of issue 13 on the data path:
// reading and writing memory outside a grant, and reaching a lent VF as a
// claimed borrower.
#include "agent/node_agent_service.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sim_sriov_functions.h"
#include "agent/hw/testing/mock_bridge_hardware.h"
#include "agent/hw/testing/temp_dir.h"
#include "common/security/grpc_auth.h"
#include "common/security/policy.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::NiceMock;
using ::testing::Return;

constexpr char kVf0[] = "0000:3b:02.0";
constexpr uint64_t kExported = 0x1000'0000;  // n1's memory lent to n0
constexpr uint64_t kWindow = 0x40'0000'0000;  // n1's window to n2's memory
constexpr uint64_t kMiB = 1 << 20;

// n1's configuration: kExported granted to n0, kWindow mapped to a grant of
// n2's memory, and VF 0 lent to n0.
agentproto::v1::DesiredConfig Config() {
  agentproto::v1::DesiredConfig c;
  c.set_node("n1");
  c.set_generation(3);
  v1::InboundEntry* in = c.mutable_address_map()->add_inbound();
  in->set_local_base(kExported);
  in->set_size(kMiB);
  in->set_allocation("allocations/a1");
  in->set_borrower("nodes/n0");
  v1::WindowEntry* w = c.mutable_address_map()->add_windows();
  w->set_slot_kind(v1::WINDOW);
  w->set_local_base(kWindow);
  w->set_size(kMiB);
  w->set_allocation("allocations/a2");
  agentproto::v1::VfAssignment* a = c.add_vf_assignments();
  a->set_attachment("attachments/att-1");
  a->set_role(agentproto::v1::VfAssignment::LENDER);
  a->set_vf_address(kVf0);
  a->set_lender("nodes/n1");
  a->set_borrower("nodes/n0");
  for (const char* role : {"dma", "msix"}) {
    v1::AttachmentWindow* win = a->add_windows();
    win->set_role(role);
    win->set_from_node("n1");
    win->set_to_node("n0");
    win->set_local_addr(std::string(role) == "dma" ? 0x200'0000'0000ull
                                                   : 0x200'4000'0000ull);
    win->set_size(kMiB);
  }
  return c;
}

class NodeAgentServiceTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = security::TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    // Issued once: issuing an identity again rewrites its files, which the
    // server re-reads (rotation).
    n1_ = pki_->Issue("node", "n1");

    ON_CALL(bridge_, HostRead(_, _)).WillByDefault(Return(absl::OkStatus()));
    hw::AccessResult landed;
    landed.landed = true;
    landed.node = "n2";
    ON_CALL(bridge_, HostWrite(_, _))
        .WillByDefault(Return(absl::StatusOr<hw::AccessResult>(landed)));
    reconciler_ = std::make_unique<Reconciler>("n1", ReconcilerOptions(),
                                               &bridge_, Clock::Real(), [] {});
    auto sim = hw::LoadSimHardware(std::string(FABRIC_SOURCE_DIR) +
                                   "/agent/hw/sim/examples/one_pf.json");
    ASSERT_TRUE(sim.ok()) << sim.status();
    auto host = hw::SimSriovHost::Open(dir_.path(), "n1", *sim);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    functions_ = std::make_unique<hw::SimSriovFunctions>(host_.get());
    vf_ = std::make_unique<VfLending>(
        "n1", functions_.get(),
        [](uint64_t, absl::Span<uint8_t>) { return absl::OkStatus(); });
    const agentproto::v1::DesiredConfig config = Config();
    grants_.Update(config);
    vf_->SetAssignments({config.vf_assignments().begin(),
                         config.vf_assignments().end()},
                        config.generation());
    service_ = std::make_unique<NodeAgentService>(reconciler_.get(), vf_.get(),
                                                  &grants_);

    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(
        "127.0.0.1:0",
        security::ServerCredentials(
            n1_,
            std::make_shared<security::AuthProcessor>(
                security::Policy::Default(), nullptr)),
        &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // A stub that calls n1's agent as `as`.
  std::unique_ptr<agentproto::v1::NodeAgentService::Stub> As(
      const security::TlsConfig& as) {
    return agentproto::v1::NodeAgentService::NewStub(grpc::CreateChannel(
        address_,
        security::ChannelCredentials(as, security::PeerRequirement::Node("n1"))));
  }

  static grpc::Status Read(agentproto::v1::NodeAgentService::Stub* stub,
                           uint64_t addr, uint32_t length) {
    grpc::ClientContext ctx;
    agentproto::v1::HostReadRequest req;
    req.set_addr(addr);
    req.set_length(length);
    agentproto::v1::HostReadResponse resp;
    return stub->HostRead(&ctx, req, &resp);
  }

  static grpc::Status Write(agentproto::v1::NodeAgentService::Stub* stub,
                            uint64_t addr, const std::string& data) {
    grpc::ClientContext ctx;
    agentproto::v1::HostWriteRequest req;
    req.set_addr(addr);
    req.set_data(data);
    v1::AccessResult resp;
    return stub->HostWrite(&ctx, req, &resp);
  }

  static grpc::Status Snapshot(agentproto::v1::NodeAgentService::Stub* stub,
                               const std::string& borrower) {
    grpc::ClientContext ctx;
    agentproto::v1::VfAccessRequest req;
    req.set_op(agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT);
    req.set_vf_address(kVf0);
    req.set_borrower(borrower);
    req.set_generation(3);
    agentproto::v1::VfAccessResponse resp;
    return stub->VfAccess(&ctx, req, &resp);
  }

  std::unique_ptr<security::TestPki> pki_;
  security::TlsConfig n1_;  // the agent's own certificate
  NiceMock<hw::MockBridgeHardware> bridge_;
  std::unique_ptr<Reconciler> reconciler_;
  hw::testing::TempDir dir_;
  std::unique_ptr<hw::SimSriovHost> host_;
  std::unique_ptr<hw::SimSriovFunctions> functions_;
  std::unique_ptr<VfLending> vf_;
  GrantGuard grants_;
  std::unique_ptr<NodeAgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(NodeAgentServiceTlsTest, OnlyTheManagerReadsHostMemory) {
  // Inside the grant, so that only the policy can refuse. (Not an admin:
  // the default policy's admin rule "*" reaches NodeAgentService too.)
  for (const security::TlsConfig& caller :
       {pki_->Issue("node", "n0"), n1_, pki_->Issue("user", "olga", "operator"),
        pki_->Issue("user", "sam", "scheduler"),
        pki_->Issue("user", "vic", "viewer")}) {
    auto stub = As(caller);
    grpc::Status s = Read(stub.get(), kExported, 64);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << caller.cert_file << ": " << s.error_message();
    s = Write(stub.get(), kWindow, "probe");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << caller.cert_file << ": " << s.error_message();
  }
  auto manager = As(pki_->Issue("manager", "m1"));
  grpc::Status s = Read(manager.get(), kExported, 64);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(NodeAgentServiceTlsTest, TheManagerReadsAndWritesOnlyInsideGrants) {
  auto manager = As(pki_->Issue("manager", "m1"));
  EXPECT_TRUE(Read(manager.get(), kExported, 4096).ok());
  EXPECT_TRUE(Read(manager.get(), kExported + kMiB - 64, 64).ok());
  EXPECT_TRUE(Write(manager.get(), kWindow + 128, "probe").ok());

  grpc::Status s = Read(manager.get(), kExported + kMiB, 64);  // just past
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("no grant covers it"));
  s = Read(manager.get(), kExported + kMiB - 32, 64);  // straddling
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("allocations/a1"));
  s = Write(manager.get(), kExported, "overwrite");  // exported, not a window
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("HostWrite of 9 bytes"));

  // The grant ends: the same read is refused from then on.
  agentproto::v1::DesiredConfig next = Config();
  next.set_generation(4);
  next.mutable_address_map()->clear_inbound();
  grants_.Update(next);
  s = Read(manager.get(), kExported, 4096);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(NodeAgentServiceTlsTest, TheBorrowerComesFromTheCertificate) {
  auto n0 = As(pki_->Issue("node", "n0"));
  // Its own name, or none: the certificate's node is the borrower.
  grpc::Status s = Snapshot(n0.get(), "nodes/n0");
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = Snapshot(n0.get(), "");
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Claiming another node is refused at the edge.
  s = Snapshot(n0.get(), "nodes/n2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("not the caller node/n0"));

  // n2 claiming to be the borrower n0 gets nowhere.
  auto n2 = As(pki_->Issue("node", "n2"));
  s = Snapshot(n2.get(), "nodes/n0");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  s = Snapshot(n2.get(), "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("not to n2"));

  // The manager acts for the borrower it names (VerifyAttachment).
  auto manager = As(pki_->Issue("manager", "m1"));
  s = Snapshot(manager.get(), "nodes/n0");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// n0's VF borrower dials the lender's agent with n0's certificate and
// accepts only the lender node's: the shadow builds against n1's agent, and
// not when the assignment says the agent at that address is n2's.
TEST_F(NodeAgentServiceTlsTest, TheBorrowerDialsOnlyTheLendersIdentity) {
  const security::TlsConfig n0 = pki_->Issue("node", "n0");
  VfBorrower borrower(
      "n0", [](uint64_t, absl::Span<uint8_t>) { return absl::OkStatus(); },
      nullptr, [n0](const std::string& lender) {
        return security::ChannelCredentials(
            n0, security::PeerRequirement::Node(lender));
      });
  auto borrowed = [&](const std::string& lender) {
    agentproto::v1::VfAssignment a;
    a.set_attachment("attachments/att-1");
    a.set_role(agentproto::v1::VfAssignment::BORROWER);
    a.set_vf_address(kVf0);
    a.set_lender(lender);
    a.set_borrower("nodes/n0");
    a.set_lender_agent(address_);
    a.set_vm("vm-1");
    a.set_vendor_id(32902);  // one_pf.json's PF vendor and VF device
    a.set_device_id(5452);
    v1::AttachmentWindow* msix = a.add_windows();
    msix->set_role("msix");
    msix->set_local_addr(0x200'4000'0000ull);
    msix->set_target_addr(0x7f00'0000ull);
    msix->set_size(4096);
    for (const auto& [bar, local, size] :
         {std::tuple<int, uint64_t, uint64_t>{0, 0x300'0000'0000ull, 64 << 10},
          {3, 0x300'0010'0000ull, 16 << 10}}) {
      v1::AttachmentWindow* w = a.add_windows();
      w->set_role(absl::StrCat("mmio-bar", bar));
      w->set_local_addr(local);
      w->set_size(size);
    }
    return a;
  };
  auto status = [&] {
    agentproto::v1::ReportStatusRequest report;
    borrower.FillStatus(&report);
    return report.shadows_size() == 1 ? report.shadows(0)
                                      : agentproto::v1::ShadowStatus();
  };

  borrower.SetAssignments({borrowed("nodes/n2")}, 3);
  borrower.Reconcile();
  EXPECT_FALSE(status().ready());
  EXPECT_THAT(status().error(), HasSubstr("lender nodes/n2"));

  borrower.SetAssignments({borrowed("nodes/n1")}, 3);
  borrower.Reconcile();
  agentproto::v1::ShadowStatus st = status();
  EXPECT_TRUE(st.ready()) << st.DebugString();
}

TEST(ResolveBorrowerTest, FollowsTheCallersIdentity) {
  security::Caller insecure;
  EXPECT_EQ(*ResolveBorrower(insecure, "nodes/n2"), "nodes/n2");

  security::Caller node;
  node.authenticated = true;
  node.identity = {security::PrincipalKind::kNode, "n0", ""};
  EXPECT_EQ(*ResolveBorrower(node, ""), "n0");
  EXPECT_EQ(*ResolveBorrower(node, "n0"), "n0");
  EXPECT_EQ(*ResolveBorrower(node, "nodes/n0"), "n0");
  EXPECT_EQ(ResolveBorrower(node, "nodes/n2").status().code(),
            absl::StatusCode::kPermissionDenied);

  security::Caller manager;
  manager.authenticated = true;
  manager.identity = {security::PrincipalKind::kManager, "m1", ""};
  EXPECT_EQ(*ResolveBorrower(manager, "nodes/n2"), "nodes/n2");

  security::Caller user;
  user.authenticated = true;
  user.identity = {security::PrincipalKind::kUser, "alice", "admin"};
  EXPECT_EQ(ResolveBorrower(user, "nodes/n0").status().code(),
            absl::StatusCode::kPermissionDenied);

  security::Caller unadmitted;
  unadmitted.unadmitted = true;
  EXPECT_EQ(ResolveBorrower(unadmitted, "").status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace fabric::agent
