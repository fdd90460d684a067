#include "server/ha/standby_server.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/leader_channel.h"
#include "common/security/testing/health_client.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.grpc.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"

namespace fabric::ha {
namespace {

using ::testing::HasSubstr;

std::string Target(const StandbyServer& s) {
  return absl::StrCat("127.0.0.1:", s.port());
}

// Ping on `channel`; its status, and the leader the answer named.
grpc::Status Ping(const std::shared_ptr<grpc::Channel>& channel,
                  std::optional<std::string>* leader = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::PingResponse resp;
  grpc::Status s =
      v1::FabricService::NewStub(channel)->Ping(&ctx, {}, &resp);
  if (leader != nullptr) *leader = LeaderOf(ctx);
  return s;
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_TRUE(
      grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp).ok());
  return resp.status();
}

TEST(StandbyServerTest, RefusesEveryServiceNamingTheLeader) {
  auto standby = StandbyServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(standby.ok()) << standby.status();
  auto channel = grpc::CreateChannel(Target(**standby),
                                     grpc::InsecureChannelCredentials());

  std::optional<std::string> leader;
  grpc::Status s = Ping(channel, &leader);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(),
            "this manager is a standby; no leader is elected yet");
  EXPECT_EQ(leader, std::nullopt);

  (*standby)->SetLeader("10.0.0.2:7070");
  s = Ping(channel, &leader);
  EXPECT_EQ(s.error_message(),
            "this manager is a standby; the leader is 10.0.0.2:7070");
  EXPECT_EQ(leader, "10.0.0.2:7070");

  // A mutation, an agent's call, a server stream and the hypervisor's.
  {
    grpc::ClientContext ctx;
    v1::Allocation out;
    s = v1::FabricService::NewStub(channel)->CreateAllocation(&ctx, {}, &out);
    EXPECT_TRUE(IsStandbyAnswer(s)) << s.error_message();
    EXPECT_EQ(LeaderOf(ctx), "10.0.0.2:7070");
  }
  {
    grpc::ClientContext ctx;
    agentproto::v1::RegisterNodeResponse out;
    s = agentproto::v1::AgentService::NewStub(channel)->RegisterNode(&ctx, {},
                                                                     &out);
    EXPECT_TRUE(IsStandbyAnswer(s)) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    auto reader =
        agentproto::v1::AgentService::NewStub(channel)->StreamConfig(&ctx, {});
    agentproto::v1::DesiredConfig config;
    EXPECT_FALSE(reader->Read(&config));
    s = reader->Finish();
    EXPECT_TRUE(IsStandbyAnswer(s)) << s.error_message();
    EXPECT_EQ(LeaderOf(ctx), "10.0.0.2:7070");
  }
  {
    grpc::ClientContext ctx;
    hypervisor::v1::SetVmStateResponse out;
    s = hypervisor::v1::HypervisorService::NewStub(channel)->SetVmState(
        &ctx, {}, &out);
    EXPECT_TRUE(IsStandbyAnswer(s)) << s.error_message();
  }

  EXPECT_EQ(Health(channel, ""),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST(StandbyServerTest, ShutdownFreesTheAddress) {
  auto standby = StandbyServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(standby.ok()) << standby.status();
  const std::string address = Target(**standby);
  (*standby)->Shutdown();
  (*standby)->Shutdown();  // idempotent
  auto again = StandbyServer::Start(address, {});
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(StandbyServerTest, AddressInUseIsUnavailable) {
  auto standby = StandbyServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(standby.ok()) << standby.status();
  auto second = StandbyServer::Start(Target(**standby), {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(StandbyServerTest, PlaintextOffLoopbackIsRefused) {
  auto standby = StandbyServer::Start("0.0.0.0:0", {});
  EXPECT_FALSE(standby.ok());
}

TEST(StandbyServerTest, MutualTlsAnswersOnlyAdmittedCallers) {
  auto pki = security::TestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status();
  service::ServerOptions options;
  options.tls = (*pki)->Issue("manager", "m2");
  auto standby = StandbyServer::Start("127.0.0.1:0", options);
  ASSERT_TRUE(standby.ok()) << standby.status();
  (*standby)->SetLeader("10.0.0.1:7070");
  const std::string target = Target(**standby);

  // An admitted user gets the answer.
  auto admin = security::NewConnectionChannel(
      target, security::ChannelCredentials(
                  (*pki)->Issue("user", "root", "admin"),
                  security::PeerRequirement::AnyManager()));
  std::optional<std::string> leader;
  grpc::Status s = Ping(admin, &leader);
  EXPECT_TRUE(IsStandbyAnswer(s)) << s.error_message();
  EXPECT_EQ(leader, "10.0.0.1:7070");

  // A node may not delete fabrics: the policy refuses it before the
  // standby says anything, as the leader would.
  auto node = security::NewConnectionChannel(
      target, security::ChannelCredentials(
                  (*pki)->Issue("node", "n1"),
                  security::PeerRequirement::AnyManager()));
  grpc::ClientContext ctx;
  v1::Fabric out;
  s = v1::FabricService::NewStub(node)->DeleteFabric(&ctx, {}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.error_message();
  EXPECT_EQ(LeaderOf(ctx), std::nullopt);

  // A certificate of another CA never gets past the handshake.
  auto other = security::TestPki::Create();
  ASSERT_TRUE(other.ok()) << other.status();
  security::TlsConfig stranger = (*other)->Issue("user", "eve", "admin");
  stranger.ca_file = (*pki)->ca_file();  // trusts the server, is not trusted
  auto eve = security::NewConnectionChannel(
      target, security::ChannelCredentials(
                  stranger, security::PeerRequirement::AnyManager()));
  s = Ping(eve, &leader);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(IsStandbyAnswer(s)) << s.error_message();
  EXPECT_EQ(leader, std::nullopt);
}

}  // namespace
}  // namespace fabric::ha
