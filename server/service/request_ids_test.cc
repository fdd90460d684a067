// Request ids through the manager: a retry gets the first answer, an id
// is remembered across restarts, for request_retention and up to
// max_request_ids, and never forgotten while in flight.
#include "server/service/manager.h"

#include <malloc.h>

#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

TEST_F(ManagerTest, RetriedRequestIdReturnsOriginalAndAllocatesOnce) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  auto first =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-1"));
  ASSERT_TRUE(first.ok());
  auto again =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->name(), again->name());
  EXPECT_EQ(first->borrower_addr(), again->borrower_addr());
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  // The memory of the request id survives a restart.
  Reopen();
  auto after =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-1"));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->name(), first->name());
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  // Reusing the id for another request is refused.
  auto other =
      manager_->CreateAllocation(AllocRequest("n1", "n2", 1 << 20, "r-1"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.status().message(), HasSubstr("request_id"));
}

TEST_F(ManagerTest, RequestIdsAreForgottenAfterRetention) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  ASSERT_TRUE(
      manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20, "r-9"))
          .ok());
  clock_.Advance(absl::Minutes(59));
  manager_->Sweep();
  EXPECT_EQ(manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-9"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  clock_.Advance(absl::Minutes(2));
  manager_->Sweep();
  // Forgotten in memory and in the store: the id is free again, even after
  // a restart.
  EXPECT_EQ(RequestRows(store_.get()).count("r-9"), 0u);
  Reopen();
  auto reused =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-9"));
  EXPECT_TRUE(reused.ok()) << reused.status();
}

// --- The cap on remembered request ids (--max-request-ids)

// The request of the i-th allocation of the cap tests.
v1::CreateAllocationRequest NthAlloc(int i) {
  return AllocRequest(absl::StrCat("n", i % 8), absl::StrCat("n", (i + 3) % 8),
                      1 << 20, absl::StrCat("r-", i));
}

TEST_F(ManagerTest, MaxRequestIdsMustBeInRange) {
  for (int64_t bad : {int64_t{0}, int64_t{-1}, kMaxRequestIdsLimit + 1}) {
    ManagerOptions opts = TestOptions();
    opts.max_request_ids = bad;
    auto m = FabricManager::Open(store_.get(), &clock_, opts);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("max_request_ids"));
    EXPECT_THAT(m.status().message(),
                HasSubstr(absl::StrCat(kMaxRequestIdsLimit)));
  }
}

TEST_F(ManagerTest, OldestRequestIdsAreForgottenBeyondTheCap) {
  opts_.max_request_ids = 5;
  Reopen();
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(absl::Seconds(1));
    auto a = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(a.ok()) << i << ": " << a.status();
    names.push_back(a->name());
    // Bounded at every step, not only after a sweep.
    EXPECT_LE(manager_->RememberedRequestIds(), 5u) << i;
    EXPECT_LE(RequestRows(store_.get()).size(), 5u) << i;
  }
  const std::set<std::string> newest = {"r-10", "r-11", "r-7", "r-8", "r-9"};
  for (bool restarted : {false, true}) {
    SCOPED_TRACE(restarted ? "after a restart" : "before a restart");
    if (restarted) Reopen();
    EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
    EXPECT_EQ(RequestRows(store_.get()), newest);
    // The newest five are still recognized: same answer, nothing new.
    for (int i = 7; i < 12; ++i) {
      auto again = manager_->CreateAllocation(NthAlloc(i));
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(again->name(), names[i]) << i;
    }
    EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 12);
    EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  }
  // The oldest is forgotten: its retry is a new request, which makes a
  // second allocation and pushes out the oldest remembered id (r-7).
  auto retry = manager_->CreateAllocation(NthAlloc(0));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_NE(retry->name(), names[0]);
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 13);
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"r-0", "r-10", "r-11", "r-8", "r-9"}));
  // A delete's id counts the same way.
  v1::DeleteAllocationRequest del;
  del.set_name(retry->name());
  del.set_request_id("d-0");
  ASSERT_TRUE(manager_->DeleteAllocation(del).ok());
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"d-0", "r-0", "r-10", "r-11", "r-9"}));
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, RestartRestoresAtMostMaxRequestIds) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(absl::Seconds(1));
    auto a = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(a.ok()) << a.status();
    names.push_back(a->name());
  }
  EXPECT_EQ(RequestRows(store_.get()).size(), 12u);
  // Restarted with a lower cap: the newest five are kept, the older rows
  // deleted, so that a later restart with a higher cap does not bring them
  // back.
  opts_.max_request_ids = 5;
  Reopen();
  const std::set<std::string> newest = {"r-10", "r-11", "r-7", "r-8", "r-9"};
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()), newest);
  opts_.max_request_ids = 100;
  Reopen();
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()), newest);
  for (int i = 7; i < 12; ++i) {
    auto again = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->name(), names[i]) << i;
  }
  auto retry = manager_->CreateAllocation(NthAlloc(6));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_NE(retry->name(), names[6]);
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 13);
}

TEST_F(ManagerTest, FailedForgetKeepsRequestIdsAndIsRetried) {
  opts_.max_request_ids = 5;
  Reopen();
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    auto a = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(a.ok()) << a.status();
    names.push_back(a->name());
  }
  // The write that would record r-5 and forget r-0 fails: neither happens.
  const auto before = Dump(store_.get());
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  EXPECT_EQ(manager_->CreateAllocation(NthAlloc(5)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Dump(store_.get()), before);
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  store_->Heal();
  auto r0 = manager_->CreateAllocation(NthAlloc(0));
  ASSERT_TRUE(r0.ok()) << r0.status();
  EXPECT_EQ(r0->name(), names[0]);
  // Tried again with the next new id.
  ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(5)).ok());
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"r-1", "r-2", "r-3", "r-4", "r-5"}));
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);

  // The sweep's delete (past retention) fails: still remembered in memory
  // as in the store, and forgotten by the next sweep.
  clock_.Advance(absl::Hours(2));
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  manager_->Sweep();
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()).size(), 5u);
  store_->Heal();
  manager_->Sweep();
  EXPECT_EQ(manager_->RememberedRequestIds(), 0u);
  EXPECT_TRUE(RequestRows(store_.get()).empty());
  Reopen();
  EXPECT_EQ(manager_->RememberedRequestIds(), 0u);
}

TEST_F(ManagerTest, InFlightRequestIdsAreNeverForgotten) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  manager_.reset();
  BlockingStore blocking(store_.get());
  ManagerOptions opts = TestOptions();
  opts.max_request_ids = 3;
  auto opened = FabricManager::Open(&blocking, &clock_, opts);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<FabricManager> m = *std::move(opened);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(m->CreateAllocation(NthAlloc(i)).ok());
  }
  // r-3 holds the store; r-4..r-9 queue behind it, in flight, and so does
  // a retry of r-4 (answered with r-4's result).
  blocking.Block();
  absl::StatusOr<v1::Allocation> first;
  std::thread leader([&] { first = m->CreateAllocation(NthAlloc(3)); });
  blocking.AwaitHeld();
  absl::Mutex mu;
  std::map<std::string, std::vector<std::string>> answers;  // id -> names
  absl::BlockingCounter pending(7);
  auto send = [&](int i) {
    const auto req = NthAlloc(i);
    m->CreateAllocationAsync(req, [&, id = req.request_id()](
                                      absl::StatusOr<v1::Allocation> a) {
      absl::MutexLock l(&mu);
      answers[id].push_back(a.ok() ? a->name() : a.status().ToString());
      pending.DecrementCount();
    });
  };
  for (int i = 4; i < 10; ++i) send(i);
  // Seven ids in flight, over a cap of three: none is forgotten.
  EXPECT_GE(m->RememberedRequestIds(), 7u);
  send(4);
  blocking.Unblock();
  leader.join();
  pending.Wait();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(answers["r-4"].size(), 2u);
  EXPECT_EQ(answers["r-4"][0], answers["r-4"][1]);
  EXPECT_THAT(answers["r-4"][0], HasSubstr("allocations/"));
  // 3 before, r-3, r-4..r-9: ten allocations, not eleven.
  EXPECT_EQ(m->ListAllocations({})->allocations_size(), 10);
  // The ids pushed over the cap while in flight are still recognized once
  // done (until newer ids or a sweep forget them).
  for (int i = 3; i < 10; ++i) {
    auto again = m->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->name(),
              i == 3 ? first->name() : answers[absl::StrCat("r-", i)][0])
        << i;
  }
  EXPECT_EQ(m->ListAllocations({})->allocations_size(), 10);
  // At most the cap plus what was in flight, and the cap after a sweep.
  EXPECT_LE(m->RememberedRequestIds(), 3u + 7u);
  m->Sweep();
  EXPECT_EQ(m->RememberedRequestIds(), 3u);
  EXPECT_EQ(RequestRows(&blocking),
            (std::set<std::string>{"r-7", "r-8", "r-9"}));
  m.reset();
}

// A Store that accepts every write and keeps nothing, so that a
// measurement sees the manager's own memory only.
class DiscardingStore : public store::Store {
 public:
  absl::Status Apply(const store::WriteBatch&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Get(absl::string_view,
                                  absl::string_view) override {
    return absl::NotFoundError("discarding store");
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view) override {
    return std::vector<std::pair<std::string, std::string>>();
  }
  store::StoreStats stats() const override { return {}; }
};

// Measures what one remembered request id costs the manager in heap (glibc
// malloc), to back the --max-request-ids default and the README: ids like
// the overload bench's, on create and delete.
TEST_F(ManagerTest, RequestIdHeapCost) {
  manager_.reset();
  DiscardingStore discarding;
  auto opened = FabricManager::Open(&discarding, &clock_, TestOptions());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<FabricManager> m = *std::move(opened);
  ASSERT_TRUE(m->CreateFabric(RingRequest("lab", 16)).ok());
  size_t response_bytes = 0;
  auto churn = [&](int n, bool with_ids) {
    for (int i = 0; i < n; ++i) {
      v1::CreateAllocationRequest req =
          AllocRequest(absl::StrCat("n", i % 16),
                       absl::StrCat("n", (i + 5) % 16), 1 << 20,
                       with_ids ? absl::StrCat("c", i % 400, "-", i) : "");
      req.mutable_allocation()->set_owner("overload");
      auto a = m->CreateAllocation(req);
      ASSERT_TRUE(a.ok()) << a.status();
      response_bytes = a->ByteSizeLong();
      v1::DeleteAllocationRequest del;
      del.set_name(a->name());
      if (with_ids) del.set_request_id(absl::StrCat("c", i % 400, "-", i, "d"));
      ASSERT_TRUE(m->DeleteAllocation(del).ok());
    }
  };
  constexpr int kN = 4000;
  churn(kN, false);  // warms every cache but the ids'
  const size_t heap0 = mallinfo2().uordblks;
  if (heap0 == 0) GTEST_SKIP() << "no glibc malloc statistics";
  churn(kN, true);
  const size_t heap1 = mallinfo2().uordblks;
  ASSERT_EQ(m->RememberedRequestIds(), 2u * kN);
  const double per_id = (static_cast<double>(heap1) - heap0) / (2 * kN);
  std::cout << "heap per remembered request id: " << per_id
            << " bytes (a serialized Allocation response: " << response_bytes
            << " bytes)\n";
  // The figure quoted for --max-request-ids: about 1 KiB.
  EXPECT_GT(per_id, 256);
  EXPECT_LT(per_id, 1536);
  m.reset();
}

}  // namespace
}  // namespace fabric::service
