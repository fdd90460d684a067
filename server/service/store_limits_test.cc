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

#include "absl/strings/match.h"
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
  const std::vector<std::string> before = Dump(store_.get());
  // A fabric record of 64 nodes is larger than the store takes at once.
  store_->SetLimits(store::StoreLimits{.max_bytes = 1024});
  v1::CreateFabricRequest big = RingRequest("big", 64, "b");
  big.set_request_id("big");
  auto refused = manager_->CreateFabric(big);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("the store takes at most 1024"));
  EXPECT_EQ(Dump(store_.get()), before);
  EXPECT_EQ(manager_->GetFabric("big").status().code(),
            absl::StatusCode::kNotFound);
  // The id is free again for the same request.
  EXPECT_EQ(RequestRows(store_.get()).count("big"), 0u);
  store_->SetLimits(std::nullopt);
  EXPECT_TRUE(manager_->CreateFabric(big).ok());
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

// DeleteFabric of more rows than one transaction takes: a tombstone, then
// the rows in transactions that fit, then the tombstone's delete.
TEST_F(StoreLimitsTest, LargeFabricIsDeletedInTransactionsThatFit) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("other", 4, "m")).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(i, false)).ok());
  }
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  ASSERT_TRUE(manager_->SetLinkState(down).ok());
  store_->SetLimits(kFourOps);
  const uint64_t before = store_->stats().batches;
  v1::DeleteFabricRequest del;
  del.set_name("lab");
  del.set_force(true);
  del.set_request_id("del");
  ASSERT_TRUE(manager_->DeleteFabric(del).ok());
  // The tombstone and the id; 8 links, 3 allocations, the fabric and the
  // tombstone's delete in 4 of at most 4.
  EXPECT_EQ(store_->stats().batches - before, 1u + 4u);
  for (const std::string& row : Dump(store_.get())) {
    if (absl::StartsWith(row, "requests/")) continue;  // the id's answer
    EXPECT_FALSE(absl::StrContains(row, "lab")) << row;
    EXPECT_FALSE(absl::StartsWith(row, "deleting_fabrics")) << row;
  }
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 0);
  EXPECT_EQ(manager_->DeleteFabric(del)->name(), "fabrics/lab");  // a retry
  Reopen();
  EXPECT_EQ(manager_->GetFabric("lab").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(manager_->GetFabric("other").ok());
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

// The store fails between those transactions: the fabric stays "being
// deleted" (nothing new goes in), and a restart or a retry finishes it.
TEST_F(StoreLimitsTest, DeleteCutShortIsFinishedByARestartOrARetry) {
  for (const bool restart : {true, false}) {
    SCOPED_TRACE(restart ? "restart" : "retry");
    ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(i, false)).ok());
    }
    store_->SetLimits(kFourOps);
    // The tombstone and one chunk of rows are written; the next fails.
    store_->FailWritesAfter(2, absl::UnavailableError("disk gone"));
    v1::DeleteFabricRequest del;
    del.set_name("lab");
    del.set_force(true);
    auto cut = manager_->DeleteFabric(del);
    EXPECT_EQ(cut.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(cut.status().message(), HasSubstr("part-way"));
    EXPECT_THAT(cut.status().message(), HasSubstr("disk gone"));
    store_->Heal();
    auto refused = manager_->CreateAllocation(NthAlloc(5, false));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(refused.status().message(), HasSubstr("being deleted"));
    bool tombstone = false;
    for (const std::string& row : Dump(store_.get())) {
      tombstone |= absl::StartsWith(row, "deleting_fabrics");
    }
    EXPECT_TRUE(tombstone);
    if (restart) {
      Reopen();
    } else {
      ASSERT_TRUE(manager_->DeleteFabric(del).ok());
    }
    EXPECT_EQ(manager_->GetFabric("lab").status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_THAT(Dump(store_.get()), ::testing::IsEmpty());
    store_->SetLimits(std::nullopt);
  }
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
