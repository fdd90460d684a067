// The manager on a store with per-transaction limits (an etcd store's
// --max-txn-ops, here a FaultInjectingStore limited to 4 operations, which
// refuses larger batches as etcd does): group commit cuts its groups to
// fit, a change that cannot fit alone is refused and changes nothing, and
// the writes that may grow (forgetting request ids, recovery) are chunked.
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

constexpr store::StoreLimits kFourOps{.max_ops = 4};

v1::CreateAllocationRequest NthAlloc(int i, bool with_id) {
  return AllocRequest(
      absl::StrCat("n", i % 8),
      absl::StrCat("n", (i + 1 + i / 8) % 8 == i % 8 ? (i + 1) % 8
                                                     : (i + 1 + i / 8) % 8),
      1 << 20, with_id ? absl::StrCat("r-", i) : "");
}

class StoreLimitsTest : public ManagerTest {
 protected:
  // Queues `n` allocations while the first is held in the store, then lets
  // them all be written; returns the Apply calls (groups) they took.
  uint64_t GroupsFor(int n, bool with_ids) {
    manager_.reset();
    BlockingStore blocking(store_.get());
    auto opened = FabricManager::Open(&blocking, &clock_, opts_);
    EXPECT_TRUE(opened.ok()) << opened.status();
    std::unique_ptr<FabricManager> m = *std::move(opened);
    EXPECT_TRUE(m->CreateFabric(RingRequest("lab", 8)).ok());
    const uint64_t before = store_->stats().batches;
    blocking.Block();
    absl::BlockingCounter answered(n);
    std::atomic<int> failures{0};
    auto done = [&](absl::StatusOr<v1::Allocation> a) {
      if (!a.ok()) {
        ADD_FAILURE() << a.status();
        ++failures;
      }
      answered.DecrementCount();
    };
    // The first leads the commit and is held; the others queue behind it.
    std::thread leader(
        [&] { m->CreateAllocationAsync(NthAlloc(0, with_ids), done); });
    blocking.AwaitHeld();
    for (int i = 1; i < n; ++i)
      m->CreateAllocationAsync(NthAlloc(i, with_ids), done);
    blocking.Unblock();
    leader.join();
    answered.Wait();
    const uint64_t groups = store_->stats().batches - before;
    v1::ListAllocationsRequest all;
    all.set_page_size(1000);
    EXPECT_EQ(m->ListAllocations(all)->allocations_size(), n - failures);
    m.reset();
    return groups;
  }
};

TEST_F(StoreLimitsTest, QueuedMutationsCommitInGroupsThatFit) {
  store_->SetLimits(kFourOps);
  // One op each: the held one, then 9 in groups of 4, 4 and 1.
  EXPECT_EQ(GroupsFor(10, /*with_ids=*/false), 1u + 3u);
  Reopen();
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 10);
}

TEST_F(StoreLimitsTest, QueuedMutationsWithRequestIdsCommitInPairs) {
  store_->SetLimits(kFourOps);
  // Two ops each (the allocation and its request id): 1, then 9 in 5 pairs.
  EXPECT_EQ(GroupsFor(10, /*with_ids=*/true), 1u + 5u);
  Reopen();
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 10);
  EXPECT_EQ(RequestRows(store_.get()).size(), 10u);
}

TEST_F(StoreLimitsTest, ConcurrentMutationsAreAllThereAfterARestart) {
  store_->SetLimits(kFourOps);
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  const uint64_t before = store_->stats().batches;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::atomic<int> mutations{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        auto a = manager_->CreateAllocation(
            NthAlloc(t * 20 + i, /*with_ids=*/i % 2 == 0));
        ++mutations;
        if (!a.ok()) {
          ++failures;
          continue;
        }
        if (i % 4 == 1) {
          v1::DeleteAllocationRequest del;
          del.set_name(a->name());
          ++mutations;
          if (!manager_->DeleteAllocation(del).ok()) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  // No group carried more than 4 ops (the store refuses those), so at
  // least a quarter as many Applies as ops.
  EXPECT_GE(store_->stats().batches - before,
            static_cast<uint64_t>(mutations.load()) / 4);
  v1::ListAllocationsRequest all;
  all.set_page_size(1000);
  const int live = manager_->ListAllocations(all)->allocations_size();
  EXPECT_EQ(live, 8 * 15);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
  Reopen();
  EXPECT_EQ(manager_->ListAllocations(all)->allocations_size(), live);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(StoreLimitsTest, OversizedChangeIsRefusedAndChangesNothing) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  ASSERT_TRUE(
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20)).ok());
  store_->SetLimits(kFourOps);
  const std::vector<std::string> before = Dump(store_.get());
  // The fabric, its 4 links and its allocation: 6 deletes in one change.
  v1::DeleteFabricRequest del;
  del.set_name("lab");
  del.set_force(true);
  auto refused = manager_->DeleteFabric(del);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            "the change needs 6 store operations; the store takes at most 4 "
            "per transaction (etcd --max-txn-ops)");
  EXPECT_EQ(Dump(store_.get()), before);
  // Rolled back: the fabric is not left "being deleted".
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  EXPECT_TRUE(manager_->SetLinkState(down).ok());
  EXPECT_TRUE(manager_->CheckInvariants().ok());
  // And with a request id: the id is free again for the same request.
  del.set_request_id("big");
  EXPECT_EQ(manager_->DeleteFabric(del).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RequestRows(store_.get()).count("big"), 0u);
  store_->SetLimits(std::nullopt);
  EXPECT_TRUE(manager_->DeleteFabric(del).ok());
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 0);
}

TEST_F(StoreLimitsTest, OldRequestIdsAreForgottenInChunksThatFit) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(i, true)).ok());
  }
  EXPECT_EQ(RequestRows(store_.get()).size(), 10u);
  store_->SetLimits(kFourOps);
  clock_.Advance(opts_.request_retention + absl::Seconds(1));
  manager_->Sweep();
  EXPECT_TRUE(RequestRows(store_.get()).empty());
  EXPECT_EQ(manager_->RememberedRequestIds(), 0u);
}

TEST_F(StoreLimitsTest, NewIdForgetsOnlyAsManyOldOnesAsFit) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(i, true)).ok());
  }
  store_->SetLimits(kFourOps);
  clock_.Advance(opts_.request_retention + absl::Seconds(1));
  // The allocation and its id leave room for 2 of the 10 old ids.
  ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(10, true)).ok());
  EXPECT_EQ(RequestRows(store_.get()).size(), 9u);
  EXPECT_EQ(manager_->RememberedRequestIds(), 9u);
}

TEST_F(StoreLimitsTest, RecoveryDeletesDroppedRequestIdsInChunks) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(i, true)).ok());
  }
  store_->SetLimits(kFourOps);
  opts_.max_request_ids = 5;
  Reopen();
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"r-10", "r-11", "r-7", "r-8", "r-9"}));
}

}  // namespace
}  // namespace fabric::service
