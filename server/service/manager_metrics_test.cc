// ManagerStats and ManagerMetrics over a real FabricManager (SQLite in a
// temp dir, a manual clock): what /metrics says follows the state.
#include "server/service/manager_metrics.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GenerationLagTest, CountsWithinAnEpochAndAcrossOne) {
  const int64_t e1 = int64_t{1} << 32, e2 = int64_t{2} << 32;
  EXPECT_EQ(GenerationLag(e1 | 7, e1 | 7), 0);
  EXPECT_EQ(GenerationLag(e1 | 7, e1 | 9), 0);  // ahead: not behind
  EXPECT_EQ(GenerationLag(e1 | 7, e1 | 4), 3);
  EXPECT_EQ(GenerationLag(e2 | 5, e1 | 900), 6);  // all of epoch 2, plus one
  EXPECT_EQ(GenerationLag(e2 | 5, 0), 6);
}

class ManagerMetricsTest : public ManagerTest {
 protected:
  void SetUp() override {
    auto m = ManagerMetrics::Create(&registry_, &clock_);
    ASSERT_TRUE(m.ok()) << m.status();
    metrics_ = *std::move(m);
    opts_.commit_observer = metrics_.get();
    ManagerTest::SetUp();
    metrics_->SetSources(
        {.stats = [this]() -> std::optional<ManagerStats> {
           return manager_->Stats();
         },
         .shed = [] { return uint64_t{3}; },
         .leader = [] { return true; }});
  }
  void TearDown() override {
    if (metrics_ != nullptr) metrics_->SetSources({});
    manager_.reset();
  }

  metrics::Registry registry_;
  std::unique_ptr<ManagerMetrics> metrics_;
};

TEST_F(ManagerMetricsTest, TheStateFamiliesFollowTheFabric) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  std::string out = registry_.Render();
  EXPECT_THAT(out, HasSubstr("fabric_manager_allocations{state=\"PENDING\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_agents{state=\"UNREGISTERED\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_links_down 0\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_holdings_unsaved 0\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_leader 1\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_shed_requests_total 3\n"));
  // Two group commits (the fabric, the allocation), none failed.
  EXPECT_THAT(out, HasSubstr("fabric_manager_commit_group_plans_count 2\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_store_errors_total 0\n"));

  // Every agent applies: READY, no lag.
  AllAgentsApply("fabrics/lab");
  out = registry_.Render();
  EXPECT_THAT(out, HasSubstr("fabric_manager_allocations{state=\"READY\"} 1\n"));
  EXPECT_THAT(out, Not(HasSubstr("state=\"PENDING\"")));
  EXPECT_THAT(out, HasSubstr("fabric_manager_agents{state=\"READY\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_generation_lag{node=\"n0\"} 0\n"));

  // A link goes down: counted, the allocation crossing it DEGRADED, and
  // the agents are one generation behind until they apply.
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  down.set_up(false);
  ASSERT_TRUE(manager_->SetLinkState(down).ok());
  out = registry_.Render();
  EXPECT_THAT(out, HasSubstr("fabric_manager_links_down 1\n"));
  EXPECT_THAT(out, HasSubstr("fabric_manager_generation_lag{node=\"n0\"} 1\n"));
}

TEST_F(ManagerMetricsTest, AFailedCommitIsAStoreError) {
  store_->FailWrites(absl::UnavailableError("disk on fire"));
  EXPECT_FALSE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  store_->Heal();
  EXPECT_THAT(registry_.Render(),
              HasSubstr("fabric_manager_store_errors_total 1\n"));
}

TEST_F(ManagerMetricsTest, WithoutSourcesTheStateFamiliesAreEmpty) {
  metrics_->SetSources({});
  const std::string out = registry_.Render();
  EXPECT_THAT(out, Not(HasSubstr("fabric_manager_allocations{")));
  EXPECT_THAT(out, HasSubstr("fabric_manager_leader 0\n"));
}

TEST_F(ManagerMetricsTest, TheFamiliesAreRegisteredOnce) {
  EXPECT_EQ(ManagerMetrics::Create(&registry_).status().code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace fabric::service
