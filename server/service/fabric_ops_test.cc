// The plans of fabric and link mutations, on a ManagerState of their own;
// then through the manager: link changes and the leases they cut, and the
// turns fabric and link mutations take.
#include "server/service/fabric_ops.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/service/manager_test_util.h"
#include "server/service/records.h"

namespace fabric::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// "table/key" of each put, "-table/key" of each delete.
// The plan's rows: its batch, then its tail after "|" when it has one.
std::vector<std::string> Rows(const Plan& plan) {
  std::vector<std::string> out;
  for (const store::WriteBatch* batch : {&plan.batch, &plan.tail}) {
    if (batch == &plan.tail && !batch->empty()) out.push_back("|");
    for (const store::Mutation& m : batch->mutations()) {
      out.push_back(
          absl::StrCat(m.value.has_value() ? "" : "-", m.table, "/", m.key));
    }
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
  auto solo = FabricDraft::FromSpec(RingRequest("solo", 1).spec());
  EXPECT_EQ(solo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(solo.status().message(), HasSubstr("at least 2"));
  v1::CreateFabricRequest dup = RingRequest("dup", 2);
  dup.mutable_spec()->mutable_nodes(1)->set_name("n0");
  auto duplicate = FabricDraft::FromSpec(dup.spec());
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(duplicate.status().message(), HasSubstr("spec."));
  EXPECT_THAT(duplicate.status().message(), HasSubstr("duplicate"));
}

TEST_F(FabricOpsTest, CreatedFabricIsVisibleOnlyOnceCommitted) {
  const v1::CreateFabricRequest req = RingRequest("lab", 3);
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
  v1::CreateFabricRequest req = RingRequest("lab", 3);
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
  Create(RingRequest("lab", 3));
  for (const auto& [req, field] :
       {std::pair{RingRequest("lab", 2, "x"), "spec.name"},
        std::pair{RingRequest("lab2", 2), "spec.nodes: node \"n0\""}}) {
    auto draft = FabricDraft::FromSpec(req.spec());
    ASSERT_TRUE(draft.ok());
    auto plan = PlanCreateFabric(state_, req, *draft, now_);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_THAT(plan.status().message(), HasSubstr(field));
  }
}

TEST_F(FabricOpsTest, DeletingFabricRefusesLinkChangesUntilRolledBack) {
  Create(RingRequest("lab", 3));
  v1::DeleteFabricRequest del;
  del.set_name("fabrics/lab");
  auto plan = PlanDeleteFabric(state_, del);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // A tombstone, then the rows and the tombstone's delete (written with it
  // when the store takes them all in one transaction).
  EXPECT_THAT(Rows(*plan),
              ElementsAre("deleting_fabrics/lab", "|", "-links/n0--n1",
                          "-links/n1--n2", "-links/n2--n0", "-fabrics/lab",
                          "-deleting_fabrics/lab"));
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
  Create(RingRequest("lab", 4));
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

// --- Through the manager

TEST_F(ManagerTest, LinkDownDegradesCutAllocationsAndLinkUpRestores) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 6)).ok());
  auto across = manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20));
  auto near = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(across.ok() && near.ok());
  AllAgentsApply("lab");
  v1::SetLinkStateRequest req;
  req.set_name("links/n1--n2");
  req.set_up(false);
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  // One break: the ring is a line, everything still routes (the long way).
  auto rerouted = manager_->GetAllocation(across->name());
  EXPECT_NE(rerouted->state(), v1::Allocation::DEGRADED);
  EXPECT_THAT(rerouted->path(),
              testing::ElementsAre("bridges/n0", "bridges/n5", "bridges/n4",
                                   "bridges/n3", "bridges/n2"));
  // Two breaks partition it into {n5, n0, n1} and {n2, n3, n4}.
  req.set_name("links/n4--n5");
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  AllAgentsApply("lab");
  auto cut = manager_->GetAllocation(across->name());
  EXPECT_EQ(cut->state(), v1::Allocation::DEGRADED);
  EXPECT_THAT(cut->state_reason(), HasSubstr("n1--n2"));
  EXPECT_EQ(manager_->GetAllocation(near->name())->state(),
            v1::Allocation::READY);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
  req.set_up(true);
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  req.set_name("links/n1--n2");
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  AllAgentsApply("lab");
  auto back = manager_->GetAllocation(across->name());
  EXPECT_EQ(back->state(), v1::Allocation::READY) << back->state_reason();
  EXPECT_THAT(back->path(),
              testing::ElementsAre("bridges/n0", "bridges/n1", "bridges/n2"));
}

// Fabric and link mutations are decided one at a time: one called while
// another is being written waits for its turn (on no thread), and is then
// decided on the state the other left.
TEST_F(ManagerTest, FabricMutationsAreDecidedOneAtATime) {
  manager_.reset();
  BlockingStore blocking(store_.get());
  auto opened = FabricManager::Open(&blocking, &clock_, TestOptions());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<FabricManager> m = *std::move(opened);
  blocking.Block();
  absl::StatusOr<v1::Fabric> first;
  std::thread leader([&] { first = m->CreateFabric(RingRequest("lab", 4)); });
  blocking.AwaitHeld();

  absl::Mutex mu;
  std::vector<std::string> answers;
  absl::BlockingCounter pending(2);
  auto answer = [&](absl::string_view what, const absl::Status& s) {
    absl::MutexLock l(&mu);
    answers.push_back(absl::StrCat(what, ": ", s.ToString()));
    pending.DecrementCount();
  };
  // The same name again: decided once "lab" exists, so refused rather than
  // written over it.
  m->CreateFabricAsync(RingRequest("lab", 2, "x"),
                       [&](absl::StatusOr<v1::Fabric> f) {
                         answer("create", f.status());
                       });
  // A link of the fabric being written: found once it is.
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  m->SetLinkStateAsync(down, [&](absl::StatusOr<v1::Link> l) {
    answer("link", l.status());
  });
  {
    absl::MutexLock l(&mu);
    EXPECT_TRUE(answers.empty());
  }
  blocking.Unblock();
  leader.join();
  pending.Wait();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_THAT(answers[0], HasSubstr("create: ALREADY_EXISTS"));
  EXPECT_THAT(answers[0], HasSubstr("spec.name"));
  EXPECT_EQ(answers[1], "link: OK");
  EXPECT_EQ(m->GetFabric("lab")->spec().nodes_size(), 4);
  EXPECT_FALSE(m->GetLink("links/n0--n1")->up());
  EXPECT_TRUE(m->CheckInvariants().ok());
  m.reset();
}

// A fabric or link mutation that fails passes the turn on.
TEST_F(ManagerTest, FailedFabricMutationLetsTheNextOneRun) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  EXPECT_EQ(manager_->SetLinkState(down).status().code(),
            absl::StatusCode::kUnavailable);
  store_->Heal();
  ASSERT_TRUE(manager_->SetLinkState(down).ok());
  EXPECT_FALSE(manager_->GetLink("links/n0--n1")->up());
  v1::DeleteFabricRequest del;
  del.set_name("nope");
  EXPECT_EQ(manager_->DeleteFabric(del).status().code(),
            absl::StatusCode::kNotFound);
  del.set_name("lab");
  EXPECT_TRUE(manager_->DeleteFabric(del).ok());
}

}  // namespace
}  // namespace fabric::service
