#include "server/service/managers_source.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::service {
namespace {

TEST(ManagersSourceTest, ALoneManagerIsItsOwnLeaderWithoutALease) {
  ManagerStatus self;
  self.address = "127.0.0.1:0";
  self.role = ManagerRole::kStandby;
  self.store = "sqlite:/var/lib/fabric.db";
  SingleManagerSource source(self);
  source.set_address("127.0.0.1:7070");
  absl::StatusOr<std::vector<ManagerStatus>> got = source.ListManagers();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].address, "127.0.0.1:7070");
  EXPECT_EQ((*got)[0].role, ManagerRole::kLeader);
  EXPECT_EQ((*got)[0].store, "sqlite:/var/lib/fabric.db");
  EXPECT_EQ((*got)[0].lease_id, 0);
}

TEST(ManagersSourceTest, ToProtoCarriesEveryField) {
  const absl::Time start = absl::FromUnixSeconds(1700000000);
  v1::Manager m = ManagerToProto({.address = "10.0.0.2:7070",
                                  .role = ManagerRole::kStandby,
                                  .store = "etcd://10.0.0.9:2379/f",
                                  .lease_id = 42,
                                  .lease_ttl = absl::Milliseconds(1900),
                                  .start_time = start,
                                  .version = "1.2.3"});
  EXPECT_EQ(m.address(), "10.0.0.2:7070");
  EXPECT_EQ(m.role(), v1::Manager::STANDBY);
  EXPECT_EQ(m.store(), "etcd://10.0.0.9:2379/f");
  EXPECT_EQ(m.lease_id(), 42);
  EXPECT_EQ(m.lease_ttl_seconds(), 1);
  EXPECT_EQ(m.start_time().seconds(), 1700000000);
  EXPECT_EQ(m.version(), "1.2.3");
  EXPECT_FALSE(ManagerToProto({}).has_start_time());
}

TEST(ManagersSourceTest, NoSourceIsUnimplemented) {
  EXPECT_EQ(ListManagersFrom(nullptr).status().code(),
            absl::StatusCode::kUnimplemented);
}

// A source as the HA orchestrator plugs one in.
class FixedSource : public ManagersSource {
 public:
  absl::StatusOr<std::vector<ManagerStatus>> ListManagers() override {
    if (!status.ok()) return status;
    return managers;
  }
  absl::Status status;
  std::vector<ManagerStatus> managers;
};

class ListManagersRpcTest : public ::testing::Test {
 protected:
  void Start(const ServerOptions& options) {
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *FabricManager::Open(store_.get(), Clock::Real());
    absl::StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start(manager_.get(), "127.0.0.1:0", options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    address_ = "127.0.0.1:" + std::to_string(server_->port());
    stub_ = v1::FabricService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    if (manager_ != nullptr) manager_->Shutdown();
  }
  grpc::Status List(v1::ListManagersResponse* out) {
    grpc::ClientContext ctx;
    return stub_->ListManagers(&ctx, v1::ListManagersRequest(), out);
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FabricManager> manager_;
  std::unique_ptr<GrpcServer> server_;
  std::string address_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
};

TEST_F(ListManagersRpcTest, ByDefaultTheServerListsItselfAsLeader) {
  ServerOptions options;
  options.store = "sqlite::memory:";
  const absl::Time before = absl::Now();
  Start(options);
  v1::ListManagersResponse resp;
  grpc::Status s = List(&resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.managers_size(), 1);
  const v1::Manager& m = resp.managers(0);
  EXPECT_EQ(m.address(), address_);  // the bound port, not :0
  EXPECT_EQ(m.role(), v1::Manager::LEADER);
  EXPECT_EQ(m.store(), "sqlite::memory:");
  EXPECT_EQ(m.lease_id(), 0);
  EXPECT_GE(m.start_time().seconds(), absl::ToUnixSeconds(before));
  EXPECT_EQ(m.version(), BuildVersion());
  EXPECT_FALSE(m.version().empty());
}

TEST_F(ListManagersRpcTest, APluggedSourceIsAskedAndItsErrorsPassThrough) {
  FixedSource source;
  source.managers.resize(2);
  source.managers[0].address = "a:1";
  source.managers[0].lease_id = 7;
  source.managers[1].address = "b:1";
  source.managers[1].role = ManagerRole::kStandby;
  source.managers[1].lease_id = 8;
  ServerOptions options;
  options.managers = &source;
  Start(options);
  v1::ListManagersResponse resp;
  ASSERT_TRUE(List(&resp).ok());
  ASSERT_EQ(resp.managers_size(), 2);
  EXPECT_EQ(resp.managers(0).role(), v1::Manager::LEADER);
  EXPECT_EQ(resp.managers(1).role(), v1::Manager::STANDBY);
  EXPECT_EQ(resp.managers(1).lease_id(), 8);

  source.status = absl::UnavailableError("etcd: no quorum");
  grpc::Status s = List(&resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("no quorum"), std::string::npos);
}

}  // namespace
}  // namespace fabric::service
