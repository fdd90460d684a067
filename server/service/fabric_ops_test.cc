// The plans of fabric and link mutations, on a ManagerState of their own.
// (FabricManager's use of them, and their ordering, is tested in
// manager_test.cc.)
#include "server/service/fabric_ops.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/records.h"

namespace fabric::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::CreateFabricRequest Ring(const std::string& name, int n,
                             const std::string& prefix = "n") {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name(name);
  req.mutable_spec()->set_topology(v1::RING);
  for (int i = 0; i < n; ++i)
    req.mutable_spec()->add_nodes()->set_name(absl::StrCat(prefix, i));
  return req;
}

// "table/key" of each put, "-table/key" of each delete.
std::vector<std::string> Rows(const Plan& plan) {
  std::vector<std::string> out;
  for (const store::Mutation& m : plan.batch.mutations()) {
    out.push_back(
        absl::StrCat(m.value.has_value() ? "" : "-", m.table, "/", m.key));
  }
  return out;
}

class FabricOpsTest : public ::testing::Test {
 protected:
  // Plans and commits fabric `req`.
  void Create(const v1::CreateFabricRequest& req) {
    auto draft = FabricDraft::FromSpec(req.spec());
    ASSERT_TRUE(draft.ok()) << draft.status();
    auto plan = PlanCreateFabric(state_, req, *draft, now_);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan->commit();
  }

  const absl::Time now_ = absl::FromUnixSeconds(1700000000);
  WatchHub hub_;
  ManagerState state_{&hub_};
};

TEST_F(FabricOpsTest, DraftErrorsNameTheSpecField) {
  auto solo = FabricDraft::FromSpec(Ring("solo", 1).spec());
  EXPECT_EQ(solo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(solo.status().message(), HasSubstr("at least 2"));
  v1::CreateFabricRequest dup = Ring("dup", 2);
  dup.mutable_spec()->mutable_nodes(1)->set_name("n0");
  auto duplicate = FabricDraft::FromSpec(dup.spec());
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(duplicate.status().message(), HasSubstr("spec."));
  EXPECT_THAT(duplicate.status().message(), HasSubstr("duplicate"));
}

TEST_F(FabricOpsTest, CreatedFabricIsVisibleOnlyOnceCommitted) {
  const v1::CreateFabricRequest req = Ring("lab", 3);
  auto draft = FabricDraft::FromSpec(req.spec());
  ASSERT_TRUE(draft.ok());
  auto plan = PlanCreateFabric(state_, req, *draft, now_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Rows(*plan), ElementsAre("fabrics/lab"));
  v1::Fabric response;
  ASSERT_TRUE(response.ParseFromString(plan->response));
  EXPECT_EQ(response.name(), "fabrics/lab");
  EXPECT_EQ(response.create_time().seconds(), 1700000000);
  // Planned, not committed: nothing is visible yet.
  EXPECT_TRUE(state_.fabrics.empty());
  EXPECT_TRUE(state_.node_fabric.empty());
  const int64_t gen = state_.generation();

  plan->commit();
  ASSERT_EQ(state_.fabrics.count("lab"), 1u);
  EXPECT_EQ(state_.node_fabric.at("n2"), "lab");
  EXPECT_GT(state_.generation(), gen);
}

TEST_F(FabricOpsTest, ValidateOnlyWritesAndChangesNothing) {
  v1::CreateFabricRequest req = Ring("lab", 3);
  req.set_validate_only(true);
  auto draft = FabricDraft::FromSpec(req.spec());
  ASSERT_TRUE(draft.ok());
  auto plan = PlanCreateFabric(state_, req, *draft, now_);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->batch.empty());
  EXPECT_FALSE(plan->commit);
  v1::Fabric response;
  ASSERT_TRUE(response.ParseFromString(plan->response));
  EXPECT_EQ(response.name(), "fabrics/lab");
}

TEST_F(FabricOpsTest, NamesAndNodesAreUniqueAcrossFabrics) {
  Create(Ring("lab", 3));
  for (const auto& [req, field] :
       {std::pair{Ring("lab", 2, "x"), "spec.name"},
        std::pair{Ring("lab2", 2), "spec.nodes: node \"n0\""}}) {
    auto draft = FabricDraft::FromSpec(req.spec());
    ASSERT_TRUE(draft.ok());
    auto plan = PlanCreateFabric(state_, req, *draft, now_);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_THAT(plan.status().message(), HasSubstr(field));
  }
}

TEST_F(FabricOpsTest, DeletingFabricRefusesLinkChangesUntilRolledBack) {
  Create(Ring("lab", 3));
  v1::DeleteFabricRequest del;
  del.set_name("fabrics/lab");
  auto plan = PlanDeleteFabric(state_, del);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Rows(*plan), ElementsAre("-fabrics/lab", "-links/n0--n1",
                                       "-links/n1--n2", "-links/n2--n0"));
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  auto refused = PlanSetLinkState(state_, down);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("being deleted"));

  // The write failed: the fabric is as it was.
  plan->rollback();
  EXPECT_TRUE(PlanSetLinkState(state_, down).ok());
  // Deleted for good.
  auto again = PlanDeleteFabric(state_, del);
  ASSERT_TRUE(again.ok());
  again->commit();
  EXPECT_TRUE(state_.fabrics.empty());
  EXPECT_TRUE(state_.node_fabric.empty());
  EXPECT_EQ(PlanDeleteFabric(state_, del).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FabricOpsTest, LinkChangeTakesEffectOnCommit) {
  Create(Ring("lab", 4));
  v1::SetLinkStateRequest down;
  down.set_name("links/n1--n2");
  auto plan = PlanSetLinkState(state_, down);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Rows(*plan), ElementsAre("links/n1--n2"));
  v1::Link response;
  ASSERT_TRUE(response.ParseFromString(plan->response));
  EXPECT_FALSE(response.up());
  const FabricEntry& f = *state_.fabrics.at("lab");
  auto link = state_.FindLink("name", "links/n1--n2");
  ASSERT_TRUE(link.ok());
  EXPECT_TRUE(f.state.link_up(link->second));

  const int64_t gen = state_.generation();
  plan->commit();
  EXPECT_FALSE(f.state.link_up(link->second));
  EXPECT_GT(state_.generation(), gen);

  // Setting it to the state it has writes the record, and moves nothing.
  auto same = PlanSetLinkState(state_, down);
  ASSERT_TRUE(same.ok());
  const int64_t after = state_.generation();
  same->commit();
  EXPECT_EQ(state_.generation(), after);
  down.set_name("links/n0--n9");
  EXPECT_EQ(PlanSetLinkState(state_, down).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace fabric::service
