// Allocations through the manager (leases): placement and path, readiness,
// expiry, concurrent create and release.
#include "server/service/manager.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

TEST_F(ManagerTest, RingAllocationGetsWindowAndPath) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n3", 4 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->name(), HasSubstr("allocations/alloc-"));
  EXPECT_EQ(a->state(), v1::Allocation::PENDING);
  EXPECT_EQ(a->size(), 4u << 20);
  EXPECT_NE(a->borrower_addr(), 0u);
  // The shorter way from n0 to n3 on an 8-ring is clockwise.
  EXPECT_THAT(a->path(), testing::ElementsAre("bridges/n0", "bridges/n1",
                                              "bridges/n2", "bridges/n3"));
  auto map = manager_->GetAddressMap("bridges/n0/addressMap");
  ASSERT_TRUE(map.ok());
  ASSERT_EQ(map->windows_size(), 1);
  EXPECT_EQ(map->windows(0).local_base(), a->borrower_addr());
  EXPECT_EQ(map->windows(0).translated_addr(), a->fabric_addr());
  auto target_map = manager_->GetAddressMap("bridges/n3");
  ASSERT_TRUE(target_map.ok());
  ASSERT_EQ(target_map->inbound_size(), 1);
  EXPECT_EQ(target_map->inbound(0).local_base(), a->target_addr());
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, AllocationBecomesReadyWhenAgentsApply) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  AllAgentsApply("lab");
  auto got = manager_->GetAllocation(a->name());
  EXPECT_EQ(got->state(), v1::Allocation::READY) << got->state_reason();
  // A new allocation needs a new generation applied.
  auto b = manager_->CreateAllocation(AllocRequest("n2", "n1", 1 << 20));
  EXPECT_EQ(manager_->GetAllocation(b->name())->state(),
            v1::Allocation::PENDING);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

TEST_F(ManagerTest, ExpiredLeaseIsReclaimed) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto req = AllocRequest("n0", "n1", 1 << 20);
  req.mutable_allocation()->set_owner("scheduler-a");
  req.mutable_allocation()->mutable_ttl()->set_seconds(30);
  auto leased = manager_->CreateAllocation(req);
  auto kept = manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20));
  ASSERT_TRUE(leased.ok() && kept.ok());
  clock_.Advance(absl::Seconds(29));
  manager_->Sweep();
  EXPECT_TRUE(manager_->GetAllocation(leased->name()).ok());
  clock_.Advance(absl::Seconds(2));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetAllocation(leased->name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(manager_->GetAllocation(kept->name()).ok());
  // Its window and target range are free again, and durably so.
  Reopen();
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  EXPECT_EQ(manager_->GetAddressMap("bridges/n1")->inbound_size(), 0);
}

TEST_F(ManagerTest, ConcurrentAllocateReleaseKeepsInvariants) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        auto a = manager_->CreateAllocation(AllocRequest(
            absl::StrCat("n", t),
            absl::StrCat("n",
                         (t + 1 + i) % 8 == t ? (t + 1) % 8 : (t + 1 + i) % 8),
            ((i % 4) + 1) << 20));
        if (!a.ok()) {
          ++failures;
          continue;
        }
        if (i % 3 != 0) {
          v1::DeleteAllocationRequest del;
          del.set_name(a->name());
          if (!manager_->DeleteAllocation(del).ok()) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(manager_->CheckInvariants().ok()) << manager_->CheckInvariants();
  v1::ListAllocationsRequest all;
  all.set_page_size(1000);
  const int live = manager_->ListAllocations(all)->allocations_size();
  EXPECT_EQ(live, 8 * 14);
  // Concurrent mutations share transactions (group commit): fewer durable
  // commits than mutations (the fabric, 320 creates, 208 releases; the
  // store also saw the manager's epoch record at open).
  EXPECT_LT(store_->stats().commits, 1u + 1 + 8 * 40 + 8 * 26);
  Reopen();
  EXPECT_EQ(manager_->ListAllocations(all)->allocations_size(), live);
}

TEST_F(ManagerTest, StarRoutesThroughHub) {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name("star");
  req.mutable_spec()->set_topology(v1::STAR);
  req.mutable_spec()->set_hub("m");
  for (const char* n : {"m", "s1", "s2", "s3"})
    req.mutable_spec()->add_nodes()->set_name(n);
  ASSERT_TRUE(manager_->CreateFabric(req).ok());
  auto a = manager_->CreateAllocation(AllocRequest("s1", "s3", 1 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->path(),
              testing::ElementsAre("bridges/s1", "bridges/m", "bridges/s3"));
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

}  // namespace
}  // namespace fabric::service
