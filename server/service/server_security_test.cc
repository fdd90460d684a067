// The manager's security edge end to end: a real GrpcServer with mutual TLS
// (certificates from TestPki) on 127.0.0.1:0, called through the generated
// stubs with the certificates of several identities. Covers the audit trail
// (audit_interceptor.h), node binding and ownership (access_scope.h).
#include <grpcpp/create_channel.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/security/audit_log.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// The certificates of every identity the tests use, made once (openssl is
// slow) and shared by the suite.
struct Certificates {
  std::unique_ptr<security::TestPki> pki;
  security::TlsConfig manager, admin, alice, bob, viewer, n1;
};

// A request naming `name`.
template <typename Request>
Request Named(const std::string& name) {
  Request r;
  r.set_name(name);
  return r;
}

// Calls one unary method of `stub`; its status.
template <typename Stub, typename Request, typename Response>
grpc::Status Call(Stub* stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*,
                                               const Request&, Response*),
                  const Request& request) {
  grpc::ClientContext ctx;
  Response out;
  return (stub->*method)(&ctx, request, &out);
}

class ServerSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new Certificates;
    certs_->pki = *security::TestPki::Create();
    certs_->manager = certs_->pki->Issue("manager", "m1");
    certs_->admin = certs_->pki->Issue("user", "root", "admin");
    certs_->alice = certs_->pki->Issue("user", "alice", "scheduler");
    certs_->bob = certs_->pki->Issue("user", "bob", "scheduler");
    certs_->viewer = certs_->pki->Issue("user", "val", "viewer");
    certs_->n1 = certs_->pki->Issue("node", "n1");
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  void SetUp() override {
    admin_ = certs_->admin;
    alice_ = certs_->alice;
    bob_ = certs_->bob;
    viewer_ = certs_->viewer;
    n1_ = certs_->n1;
    audit_path_ = absl::StrCat(
        certs_->pki->dir(), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        ".audit.log");
    audit_ = *security::AuditLog::Open(audit_path_);
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *FabricManager::Open(store_.get(), Clock::Real());
    ServerOptions options;
    options.tls = certs_->manager;
    options.audit = audit_.get();
    auto server = GrpcServer::Start(manager_.get(), "127.0.0.1:0", options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    if (manager_ != nullptr) manager_->Shutdown();
  }

  std::shared_ptr<grpc::Channel> ChannelAs(const security::TlsConfig& who) {
    return grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        security::ChannelCredentials(who,
                                     security::PeerRequirement::AnyManager()));
  }
  std::unique_ptr<v1::FabricService::Stub> FabricAs(
      const security::TlsConfig& who) {
    return v1::FabricService::NewStub(ChannelAs(who));
  }
  std::unique_ptr<agentproto::v1::AgentService::Stub> AgentAs(
      const security::TlsConfig& who) {
    return agentproto::v1::AgentService::NewStub(ChannelAs(who));
  }

  void CreateRing(const std::string& request_id = "") {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("lab");
    req.mutable_spec()->set_topology(v1::RING);
    for (const char* n : {"n0", "n1", "n2"}) {
      req.mutable_spec()->add_nodes()->set_name(n);
    }
    req.set_request_id(request_id);
    grpc::ClientContext ctx;
    v1::Fabric out;
    grpc::Status s = FabricAs(admin_)->CreateFabric(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status Allocate(const security::TlsConfig& who, v1::Allocation* out,
                        const std::string& owner = "") {
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower("n0");
    req.mutable_allocation()->set_target("n2");
    req.mutable_allocation()->set_size(1 << 20);
    req.mutable_allocation()->set_owner(owner);
    grpc::ClientContext ctx;
    return FabricAs(who)->CreateAllocation(&ctx, req, out);
  }

  // Every allocation `who` lists, page by page.
  std::vector<std::string> ListAllocations(const security::TlsConfig& who) {
    std::vector<std::string> names;
    v1::ListAllocationsRequest req;
    req.set_page_size(1);
    auto stub = FabricAs(who);
    do {
      grpc::ClientContext ctx;
      v1::ListAllocationsResponse page;
      grpc::Status s = stub->ListAllocations(&ctx, req, &page);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const auto& a : page.allocations()) names.push_back(a.name());
      req.set_page_token(page.next_page_token());
    } while (!req.page_token().empty());
    return names;
  }

  static Certificates* certs_;
  std::string audit_path_;
  std::unique_ptr<security::AuditLog> audit_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FabricManager> manager_;
  std::unique_ptr<GrpcServer> server_;
  security::TlsConfig admin_, alice_, bob_, viewer_, n1_;
};

Certificates* ServerSecurityTest::certs_ = nullptr;

// One audit line as the test compares it.
std::string Line(const security::AuditEvent& e) {
  return absl::StrCat(e.identity, " ", e.role, " ", e.method, " ", e.request_id,
                      " ", e.code);
}

TEST_F(ServerSecurityTest, MutationsAndDeniedCallsAreAuditedReadsAreNot) {
  CreateRing("r-1");
  {
    grpc::ClientContext ctx;
    v1::GetFabricRequest get;
    get.set_name("lab");
    v1::Fabric out;
    ASSERT_TRUE(FabricAs(viewer_)->GetFabric(&ctx, get, &out).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteFabricRequest del;
    del.set_name("lab");
    del.set_request_id("r-2");
    v1::Fabric out;
    grpc::Status s = FabricAs(viewer_)->DeleteFabric(&ctx, del, &out);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    v1::DeleteFabricRequest del;
    del.set_name("ghost");
    del.set_request_id("r-3");
    v1::Fabric out;
    grpc::Status s = FabricAs(admin_)->DeleteFabric(&ctx, del, &out);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  auto events = security::AuditLog::Read(audit_path_);
  ASSERT_TRUE(events.ok()) << events.status();
  std::vector<std::string> lines;
  for (const auto& e : *events) lines.push_back(Line(e));
  // The denied call never reached a handler: AuthProcessor wrote its line,
  // without the request id it did not read.
  EXPECT_THAT(
      lines, ElementsAre(
                 "user/root admin /fabric.v1.FabricService/CreateFabric r-1 OK",
                 "user/val viewer /fabric.v1.FabricService/DeleteFabric  "
                 "PERMISSION_DENIED",
                 "user/root admin /fabric.v1.FabricService/DeleteFabric r-3 "
                 "NOT_FOUND"));
  EXPECT_THAT((*events)[2].message, HasSubstr("ghost"));
}

TEST(AuditedMethodsTest, ReadsTelemetryAndOtherServicesAreNotAudited) {
  EXPECT_TRUE(IsAuditedMethod("/fabric.v1.FabricService/CreateAllocation"));
  EXPECT_TRUE(IsAuditedMethod("/fabric.v1.FabricService/VerifyAllocation"));
  EXPECT_TRUE(
      IsAuditedMethod("/fabric.agentproto.v1.AgentService/RegisterNode"));
  EXPECT_TRUE(
      IsAuditedMethod("/fabric.hypervisor.v1.HypervisorService/SetVmState"));
  EXPECT_FALSE(IsAuditedMethod("/fabric.v1.FabricService/GetAllocation"));
  EXPECT_FALSE(IsAuditedMethod("/fabric.v1.FabricService/ListAllocations"));
  EXPECT_FALSE(IsAuditedMethod("/fabric.v1.FabricService/Watch"));
  EXPECT_FALSE(IsAuditedMethod("/fabric.v1.FabricService/Ping"));
  EXPECT_FALSE(IsAuditedMethod("/fabric.v1.FabricService/ListProfiles"));
  EXPECT_FALSE(
      IsAuditedMethod("/fabric.agentproto.v1.AgentService/ReportStatus"));
  EXPECT_FALSE(
      IsAuditedMethod("/fabric.agentproto.v1.AgentService/StreamConfig"));
  EXPECT_FALSE(IsAuditedMethod("/grpc.health.v1.Health/Check"));
  EXPECT_FALSE(IsAuditedMethod("/fabric.v1.FabricService/NoSuchMethod"));
}

TEST_F(ServerSecurityTest, ANodeRegistersStreamsAndReportsOnlyForItself) {
  auto agent = AgentAs(n1_);
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_backend("test");
  reg.set_control_address("127.0.0.1:5000");
  agentproto::v1::RegisterNodeResponse registered;
  {
    reg.set_node("n2");
    grpc::ClientContext ctx;
    grpc::Status s = agent->RegisterNode(&ctx, reg, &registered);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(s.error_message(),
              "node: the certificate is for node/n1; the request names n2");
  }
  {
    reg.set_node("nodes/n1");
    grpc::ClientContext ctx;
    grpc::Status s = agent->RegisterNode(&ctx, reg, &registered);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  for (const char* node : {"n2", "n1"}) {
    agentproto::v1::ReportStatusRequest report;
    report.set_node(node);
    report.set_session(registered.session());
    agentproto::v1::ReportStatusResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = agent->ReportStatus(&ctx, report, &resp);
    if (std::string(node) == "n2") {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
      EXPECT_THAT(s.error_message(), HasSubstr("the request names n2"));
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
  }
  {
    agentproto::v1::StreamConfigRequest req;
    req.set_node("n2");
    req.set_session(registered.session());
    grpc::ClientContext ctx;
    auto reader = agent->StreamConfig(&ctx, req);
    agentproto::v1::DesiredConfig config;
    EXPECT_FALSE(reader->Read(&config));
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("the request names n2"));
  }
  {
    agentproto::v1::StreamConfigRequest req;
    req.set_node("n1");
    req.set_session(registered.session());
    grpc::ClientContext ctx;
    auto reader = agent->StreamConfig(&ctx, req);
    agentproto::v1::DesiredConfig config;
    EXPECT_TRUE(reader->Read(&config));
    ctx.TryCancel();
    reader->Finish();
  }
  {
    auto hv = hypervisor::v1::HypervisorService::NewStub(ChannelAs(n1_));
    hypervisor::v1::SetVmStateRequest req;
    req.set_node("nodes/n2");
    hypervisor::v1::SetVmStateResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = hv->SetVmState(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("the request names n2"));
  }
  // The telemetry's refusals are in the audit trail; its successes are not.
  auto events = security::AuditLog::Read(audit_path_);
  ASSERT_TRUE(events.ok()) << events.status();
  int report_refusals = 0, stream_refusals = 0;
  for (const security::AuditEvent& e : *events) {
    if (e.method == "/fabric.agentproto.v1.AgentService/ReportStatus") {
      EXPECT_EQ(e.code, "PERMISSION_DENIED") << Line(e);
      EXPECT_EQ(e.identity, "node/n1");
      ++report_refusals;
    }
    if (e.method == "/fabric.agentproto.v1.AgentService/StreamConfig") {
      EXPECT_EQ(e.code, "PERMISSION_DENIED") << Line(e);
      ++stream_refusals;
    }
  }
  EXPECT_EQ(report_refusals, 1);
  EXPECT_EQ(stream_refusals, 1);
}

TEST_F(ServerSecurityTest, OwnersAreCallersAndSchedulersReachOnlyTheirOwn) {
  CreateRing();
  v1::Allocation mine, theirs;
  ASSERT_TRUE(Allocate(alice_, &mine).ok());
  EXPECT_EQ(mine.owner(), "user/alice");
  ASSERT_TRUE(Allocate(bob_, &theirs, "user/bob").ok());
  EXPECT_EQ(theirs.owner(), "user/bob");

  // The owner field cannot be spoofed, by anyone.
  v1::Allocation spoofed;
  grpc::Status s = Allocate(alice_, &spoofed, "user/bob");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("allocation.owner"));
  EXPECT_EQ(Allocate(admin_, &spoofed, "team-x").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  auto alice = FabricAs(alice_);
  using Stub = v1::FabricService::Stub;
  s = Call(alice.get(), &Stub::GetAllocation,
           Named<v1::GetAllocationRequest>(theirs.name()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), Not(HasSubstr("bob")));
  EXPECT_EQ(Call(alice.get(), &Stub::DeleteAllocation,
                 Named<v1::DeleteAllocationRequest>(theirs.name()))
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Call(alice.get(), &Stub::VerifyAllocation,
                 Named<v1::VerifyAllocationRequest>(theirs.name()))
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::ListAllocationsRequest bobs;
  bobs.set_owner("user/bob");
  EXPECT_EQ(Call(alice.get(), &Stub::ListAllocations, bobs).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(ListAllocations(alice_), ElementsAre(mine.name()));
  EXPECT_THAT(ListAllocations(admin_),
              UnorderedElementsAre(mine.name(), theirs.name()));
  s = Call(alice.get(), &Stub::DeleteAllocation,
           Named<v1::DeleteAllocationRequest>(mine.name()));
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = Call(FabricAs(admin_).get(), &Stub::DeleteAllocation,
           Named<v1::DeleteAllocationRequest>(theirs.name()));
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// A scheduler's Watch carries only its own allocations and attachments:
// the initial state, and the live changes, of nobody else's, and no
// fabrics, nodes or links (it may read none of those through Watch).
TEST_F(ServerSecurityTest, AScopedWatchSeesOnlyTheCallersOwn) {
  CreateRing();
  v1::Allocation mine, theirs;
  ASSERT_TRUE(Allocate(alice_, &mine).ok());
  ASSERT_TRUE(Allocate(bob_, &theirs).ok());

  auto alice = FabricAs(alice_);
  grpc::ClientContext ctx;
  v1::WatchRequest req;
  req.set_initial_state(true);
  auto stream = alice->Watch(&ctx, req);
  std::vector<std::string> seen;
  v1::WatchEvent e;
  while (stream->Read(&e) && e.type() != v1::WatchEvent::SYNCED) {
    seen.push_back(e.has_allocation() ? e.allocation().name()
                                      : e.ShortDebugString());
  }
  EXPECT_THAT(seen, ElementsAre(mine.name()));

  // Live: bob's release, then alice's; she hears only of hers.
  using Stub = v1::FabricService::Stub;
  ASSERT_TRUE(Call(FabricAs(bob_).get(), &Stub::DeleteAllocation,
                   Named<v1::DeleteAllocationRequest>(theirs.name()))
                  .ok());
  ASSERT_TRUE(Call(alice.get(), &Stub::DeleteAllocation,
                   Named<v1::DeleteAllocationRequest>(mine.name()))
                  .ok());
  do {
    ASSERT_TRUE(stream->Read(&e));
    ASSERT_TRUE(e.has_allocation()) << e.ShortDebugString();
    EXPECT_EQ(e.allocation().owner(), "user/alice");
  } while (e.allocation().state() != v1::Allocation::RELEASED);
  ctx.TryCancel();
}

TEST_F(ServerSecurityTest, AttachmentListsKeepOnlyTheCallersOwn) {
  CreateRing();
  auto alice = FabricAs(alice_);
  grpc::ClientContext ctx;
  v1::ListAttachmentsRequest list;
  list.set_owner("user/bob");
  v1::ListAttachmentsResponse out;
  grpc::Status s = alice->ListAttachments(&ctx, list, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("owner"));
  grpc::ClientContext ctx2;
  list.clear_owner();
  s = alice->ListAttachments(&ctx2, list, &out);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// A node's device plugin (issue 15) runs with the node's certificate: its
// own node's offers, claims whose borrower is its node, and only its own
// claims.
TEST_F(ServerSecurityTest, ANodesPluginWatchesAndClaimsOnlyForItself) {
  CreateRing();
  auto n1 = FabricAs(n1_);
  {
    grpc::ClientContext ctx;
    v1::WatchOffersRequest req;
    req.set_node("n2");
    auto reader = n1->WatchOffers(&ctx, req);
    v1::OfferSet set;
    EXPECT_FALSE(reader->Read(&set));
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(s.error_message(),
              "node: the certificate is for node/n1; the request names n2");
  }
  grpc::ClientContext watch_ctx;
  v1::WatchOffersRequest watch;
  watch.set_node("nodes/n1");
  auto reader = n1->WatchOffers(&watch_ctx, watch);
  v1::OfferSet set;
  ASSERT_TRUE(reader->Read(&set));
  EXPECT_EQ(set.node(), "n1");

  using Stub = v1::FabricService::Stub;
  v1::CreateAllocationRequest other;
  other.mutable_allocation()->set_borrower("n0");
  other.mutable_allocation()->set_target("n2");
  other.mutable_allocation()->set_size(1 << 20);
  grpc::Status s = Call(n1.get(), &Stub::CreateAllocation, other);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("allocation.borrower"));
  v1::CreateAttachmentRequest attach;
  attach.mutable_attachment()->set_vf("nodes/n2/vfs/0000-3b-02.0");
  attach.mutable_attachment()->set_borrower("n0");
  s = Call(n1.get(), &Stub::CreateAttachment, attach);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("attachment.borrower"));

  v1::CreateAllocationRequest own = other;
  own.mutable_allocation()->set_borrower("n1");
  v1::Allocation mine;
  {
    grpc::ClientContext ctx;
    s = n1->CreateAllocation(&ctx, own, &mine);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(mine.owner(), "node/n1");
  v1::Allocation alices;
  ASSERT_TRUE(Allocate(alice_, &alices).ok());
  EXPECT_EQ(Call(n1.get(), &Stub::GetAllocation,
                 Named<v1::GetAllocationRequest>(alices.name()))
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Call(n1.get(), &Stub::DeleteAllocation,
                 Named<v1::DeleteAllocationRequest>(alices.name()))
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(ListAllocations(n1_), ElementsAre(mine.name()));
  s = Call(n1.get(), &Stub::DeleteAllocation,
           Named<v1::DeleteAllocationRequest>(mine.name()));
  EXPECT_TRUE(s.ok()) << s.error_message();
  watch_ctx.TryCancel();
  reader->Finish();
}

TEST(ServerSecurityStartTest, PlaintextIsRefusedOffLoopback) {
  auto store = *store::OpenSqliteStore({.path = ":memory:"});
  auto manager = *FabricManager::Open(store.get(), Clock::Real());
  auto server = GrpcServer::Start(manager.get(), "0.0.0.0:0");
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(server.status().message(), HasSubstr("loopback"));
  manager->Shutdown();
}

}  // namespace
}  // namespace fabric::service
