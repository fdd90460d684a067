// The RPC edge end to end: a real server on 127.0.0.1:0, called through the
// generated stubs.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

class GrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *FabricManager::Open(store_.get(), Clock::Real());
    server_ = *GrpcServer::Start(manager_.get(), "127.0.0.1:0");
    channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials());
    stub_ = v1::FabricService::NewStub(channel_);
    agent_ = v1::AgentService::NewStub(channel_);
  }
  void TearDown() override {
    server_->Shutdown();
    manager_->Shutdown();
  }

  void CreateRing(int n) {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("lab");
    req.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < n; ++i)
      req.mutable_spec()->add_nodes()->set_name("n" + std::to_string(i));
    grpc::ClientContext ctx;
    v1::Fabric out;
    ASSERT_TRUE(stub_->CreateFabric(&ctx, req, &out).ok());
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FabricManager> manager_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
  std::unique_ptr<v1::AgentService::Stub> agent_;
};

TEST_F(GrpcTest, AllocateOverTheWire) {
  CreateRing(4);
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower("nodes/n0");
  req.mutable_allocation()->set_target("n2");
  req.mutable_allocation()->set_size(2 << 20);
  req.set_request_id("wire-1");
  grpc::ClientContext ctx;
  v1::Allocation a;
  grpc::Status s = stub_->CreateAllocation(&ctx, req, &a);
  ASSERT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext ctx2;
  v1::GetAllocationRequest get;
  get.set_name(a.name());
  v1::Allocation got;
  ASSERT_TRUE(stub_->GetAllocation(&ctx2, get, &got).ok());
  EXPECT_EQ(got.borrower_addr(), a.borrower_addr());
  EXPECT_EQ(got.target(), "nodes/n2");
}

TEST_F(GrpcTest, ErrorsCarryCanonicalCodesAndFieldNames) {
  CreateRing(3);
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower("n0");
  req.mutable_allocation()->set_target("ghost");
  req.mutable_allocation()->set_size(4096);
  grpc::ClientContext ctx;
  v1::Allocation a;
  grpc::Status s = stub_->CreateAllocation(&ctx, req, &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("allocation.target"));
  req.mutable_allocation()->set_target("n1");
  req.mutable_allocation()->set_size(5000);
  grpc::ClientContext ctx2;
  s = stub_->CreateAllocation(&ctx2, req, &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("granularity"));
}

// A 10,000-character name gets the rule it broke, not gRPC's "metadata
// size exceeds limit": errors quote at most a short prefix of the input.
TEST_F(GrpcTest, LongInputIsQuotedShortlyInErrors) {
  const std::string huge(10000, 'x');
  {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name(huge);
    v1::Node out;
    grpc::Status s = stub_->GetNode(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("10000 characters"));
    EXPECT_THAT(s.error_message(), HasSubstr("at most 253"));
    EXPECT_LT(s.error_message().size(), 300u);
  }
  {
    grpc::ClientContext ctx;
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name(huge);
    req.mutable_spec()->set_topology(v1::RING);
    v1::Fabric out;
    grpc::Status s = stub_->CreateFabric(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("must be 1-63 lowercase"));
    EXPECT_LT(s.error_message().size(), 400u);
  }
}

TEST_F(GrpcTest, HealthServiceAnswersServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(GrpcTest, WatchStreamsAllocationEvents) {
  CreateRing(3);
  grpc::ClientContext ctx;
  v1::WatchRequest req;
  req.add_collections("allocations");
  req.set_initial_state(true);
  auto reader = stub_->Watch(&ctx, req);
  v1::WatchEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::WatchEvent::SYNCED);
  v1::CreateAllocationRequest alloc;
  alloc.mutable_allocation()->set_borrower("n0");
  alloc.mutable_allocation()->set_target("n1");
  alloc.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext actx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&actx, alloc, &a).ok());
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::WatchEvent::ADDED);
  EXPECT_EQ(e.allocation().name(), a.name());
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
}

TEST_F(GrpcTest, AgentStreamCarriesWindowsAndReportMakesReady) {
  CreateRing(2);
  for (const char* n : {"n0", "n1"}) {
    grpc::ClientContext ctx;
    v1::RegisterNodeRequest reg;
    reg.set_node(n);
    reg.set_backend("test");
    v1::RegisterNodeResponse resp;
    ASSERT_TRUE(agent_->RegisterNode(&ctx, reg, &resp).ok());
  }
  v1::CreateAllocationRequest alloc;
  alloc.mutable_allocation()->set_borrower("n0");
  alloc.mutable_allocation()->set_target("n1");
  alloc.mutable_allocation()->set_size(1 << 20);
  grpc::ClientContext actx;
  v1::Allocation a;
  ASSERT_TRUE(stub_->CreateAllocation(&actx, alloc, &a).ok());
  for (const char* n : {"n0", "n1"}) {
    grpc::ClientContext ctx;
    v1::StreamConfigRequest sreq;
    sreq.set_node(n);
    auto reader = agent_->StreamConfig(&ctx, sreq);
    v1::DesiredConfig cfg;
    ASSERT_TRUE(reader->Read(&cfg));
    if (std::string(n) == "n0") {
      ASSERT_EQ(cfg.address_map().windows_size(), 1);
      EXPECT_EQ(cfg.address_map().windows(0).local_base(), a.borrower_addr());
    } else {
      ASSERT_EQ(cfg.address_map().inbound_size(), 1);
    }
    ctx.TryCancel();
    while (reader->Read(&cfg)) {
    }
    grpc::ClientContext rctx;
    v1::ReportStatusRequest rep;
    rep.set_node(n);
    rep.set_applied_generation(cfg.generation());
    v1::ReportStatusResponse rresp;
    ASSERT_TRUE(agent_->ReportStatus(&rctx, rep, &rresp).ok());
  }
  grpc::ClientContext gctx;
  v1::GetAllocationRequest get;
  get.set_name(a.name());
  v1::Allocation got;
  ASSERT_TRUE(stub_->GetAllocation(&gctx, get, &got).ok());
  EXPECT_EQ(got.state(), v1::Allocation::READY) << got.state_reason();
}

}  // namespace
}  // namespace fabric::service
