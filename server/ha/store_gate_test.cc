#include "server/ha/store_gate.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/testing/manual_clock.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"
#include "server/store/testing/fault_injecting_store.h"

namespace fabric::ha {
namespace {

using ::testing::HasSubstr;

// A FaultInjectingStore whose reads can fail too, as etcd's do without
// quorum.
class FlakyStore : public store::FaultInjectingStore {
 public:
  using FaultInjectingStore::FaultInjectingStore;
  void FailReads(bool fail) {
    absl::MutexLock l(&mu_);
    fail_reads_ = fail;
  }
  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key) override {
    {
      absl::MutexLock l(&mu_);
      if (fail_reads_) return absl::UnavailableError("no quorum (injected)");
    }
    return FaultInjectingStore::Get(table, key);
  }

 private:
  absl::Mutex mu_;
  bool fail_reads_ ABSL_GUARDED_BY(mu_) = false;
};

store::WriteBatch OnePut(absl::string_view key) {
  store::WriteBatch batch;
  batch.Put("t", key, "v");
  return batch;
}

class StoreGateTest : public ::testing::Test {
 protected:
  StoreGateTest()
      : store_(*store::OpenSqliteStore({.path = ":memory:"})),
        gate_(&store_, {.clock = &clock_, .probe_interval = absl::Milliseconds(5)},
              [this](const absl::Status& why) {
                absl::MutexLock l(&mu_);
                ++step_downs_;
                why_ = why;
              }) {}

  int step_downs() {
    absl::MutexLock l(&mu_);
    return step_downs_;
  }
  // Waits (up to 10 s) for the first step-down.
  bool AwaitStepDown() {
    absl::MutexLock l(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](int* n) { return *n > 0; }, &step_downs_),
        absl::Seconds(10));
  }

  ManualClock clock_;
  FlakyStore store_;
  absl::Mutex mu_;
  int step_downs_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status why_ ABSL_GUARDED_BY(mu_);
  StoreGate gate_;
};

TEST_F(StoreGateTest, HealthyForwardsEverything) {
  EXPECT_FALSE(gate_.degraded());
  EXPECT_EQ(gate_.StaleNote(), std::nullopt);
  ASSERT_TRUE(gate_.Apply(OnePut("a")).ok());
  EXPECT_EQ(*gate_.Get("t", "a"), "v");
  EXPECT_EQ(gate_.Scan("t")->size(), 1u);
  EXPECT_EQ(gate_.stats().batches, store_.stats().batches);
}

TEST_F(StoreGateTest, UnconfirmedLeaseRefusesWritesUntilConfirmed) {
  gate_.LeaseUnconfirmed(
      absl::DeadlineExceededError("etcdserver: request timed out"));
  ASSERT_TRUE(gate_.degraded());
  EXPECT_EQ(gate_.StaleNote(),
            "etcd unreachable since 2023-11-14T22:13:20.000Z");
  clock_.Advance(absl::Seconds(30));  // "since" stays the first time
  absl::Status refused = gate_.Apply(OnePut("a"));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.message(),
              HasSubstr("etcd has no quorum or is unreachable "
                        "(etcdserver: request timed out); mutations are "
                        "refused, reads serve the state as of "
                        "2023-11-14T22:13:20.000Z"));
  EXPECT_TRUE(gate_.Scan("t")->empty()) << "a refused write reached etcd";
  // Reads of the store still pass (recovery's; the manager reads memory).
  EXPECT_TRUE(absl::IsNotFound(gate_.Get("t", "a").status()));

  gate_.LeaseConfirmed();
  EXPECT_FALSE(gate_.degraded());
  EXPECT_EQ(gate_.StaleNote(), std::nullopt);
  EXPECT_TRUE(gate_.Apply(OnePut("a")).ok());
  EXPECT_EQ(step_downs(), 0) << "nothing was uncertain: the leader goes on";
}

TEST_F(StoreGateTest, WriteOfUnknownOutcomeStepsDownOnceEtcdAnswers) {
  store_.FailReads(true);
  store_.FailWrites(absl::UnavailableError("etcd at x: Apply: timed out"));
  absl::Status failed = gate_.Apply(OnePut("a"));
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.message(), HasSubstr("timed out"));
  ASSERT_TRUE(gate_.degraded());
  store_.Heal();
  // Refused at once, though the store would take it now.
  EXPECT_THAT(gate_.Apply(OnePut("b")).message(),
              HasSubstr("mutations are refused"));
  EXPECT_TRUE(gate_.Scan("t")->empty());
  // The lease holding is not enough: etcd may hold the failed write.
  gate_.LeaseConfirmed();
  EXPECT_TRUE(gate_.degraded());
  EXPECT_EQ(step_downs(), 0) << "stepped down while etcd did not answer";

  store_.FailReads(false);  // etcd answers the probe
  ASSERT_TRUE(AwaitStepDown());
  {
    absl::MutexLock l(&mu_);
    EXPECT_EQ(why_.code(), absl::StatusCode::kAborted);
    EXPECT_THAT(why_.message(), HasSubstr("may have committed it"));
  }
  EXPECT_TRUE(gate_.degraded()) << "a stepped-down leader must not write";
  EXPECT_EQ(gate_.Apply(OnePut("c")).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(step_downs(), 1);
}

TEST_F(StoreGateTest, OtherWriteErrorsDoNotDegrade) {
  store_.FailWrites(absl::InvalidArgumentError("too many operations"));
  EXPECT_EQ(gate_.Apply(OnePut("a")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(gate_.degraded());
}

// Over the wire: a manager writing through a degraded gate refuses
// mutations naming the cause, and answers reads marked `fabric-stale`.
TEST_F(StoreGateTest, DegradedManagerServesStaleReadsAndRefusesMutations) {
  std::unique_ptr<service::FabricManager> manager =
      *service::FabricManager::Open(&gate_, &clock_);
  service::ServerOptions options;
  options.interceptors.push_back(
      [this] { return std::make_unique<StaleReadsInterceptorFactory>(&gate_); });
  std::unique_ptr<service::GrpcServer> server =
      *service::GrpcServer::Start(manager.get(), "127.0.0.1:0", options);
  std::unique_ptr<v1::FabricService::Stub> stub =
      v1::FabricService::NewStub(grpc::CreateChannel(
          "127.0.0.1:" + std::to_string(server->port()),
          grpc::InsecureChannelCredentials()));
  auto create = [&](const std::string& name, v1::Fabric* out) {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < 3; ++i) {
      req.mutable_spec()->add_nodes()->set_name(absl::StrCat(name, "-n", i));
    }
    grpc::ClientContext ctx;
    return stub->CreateFabric(&ctx, req, out);
  };
  v1::Fabric fabric;
  ASSERT_TRUE(create("before", &fabric).ok());

  gate_.LeaseUnconfirmed(absl::UnavailableError("etcdserver: no leader"));
  grpc::Status refused = create("during", &fabric);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("etcd has no quorum or is unreachable "
                        "(etcdserver: no leader)"));

  grpc::ClientContext ctx;
  v1::GetFabricRequest get;
  get.set_name("fabrics/before");
  grpc::Status read = stub->GetFabric(&ctx, get, &fabric);
  ASSERT_TRUE(read.ok()) << read.error_message();
  auto stale = ctx.GetServerInitialMetadata().find(kStaleMetadata);
  ASSERT_NE(stale, ctx.GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(stale->second.data(), stale->second.size()),
            "etcd unreachable since 2023-11-14T22:13:20.000Z");

  gate_.LeaseConfirmed();
  grpc::ClientContext fresh;
  ASSERT_TRUE(stub->GetFabric(&fresh, get, &fabric).ok());
  EXPECT_EQ(fresh.GetServerInitialMetadata().count(kStaleMetadata), 0u);
  grpc::Status after = create("after", &fabric);
  EXPECT_TRUE(after.ok()) << after.error_message();
  server->Shutdown();
  manager->Shutdown();
}

}  // namespace
}  // namespace fabric::ha
