// migrate against a real 1-member etcd: a manager's SQLite state, made by
// running a FabricManager in-process, is copied and verified, and a manager
// loaded from the etcd store sees the same fabrics and allocations.
#include "server/store/migrate.h"

#include <memory>
#include <string>
#include <vector>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/service/records.h"
#include "server/store/open_store.h"
#include "server/store/store_test_util.h"
#include "tests/etcd/etcd_cluster.h"

namespace fabric::store {
namespace {

using ::fabric::etcdtest::EtcdCluster;
using ::testing::HasSubstr;

service::ManagerOptions Options() {
  service::ManagerOptions opts;
  opts.sweep_interval = absl::ZeroDuration();
  return opts;
}

// What a client sees of a manager's state.
std::vector<std::string> Seen(service::FabricManager& m) {
  std::vector<std::string> out;
  const auto fabrics = m.ListFabrics({});
  for (const auto& f : fabrics->fabrics()) out.push_back(f.name());
  v1::ListAllocationsRequest all;
  all.set_page_size(1000);
  const auto allocations = m.ListAllocations(all);
  for (const auto& a : allocations->allocations()) {
    out.push_back(a.name() + " " + a.borrower() + "->" + a.target());
  }
  v1::ListLinksRequest page;
  page.set_page_size(1000);
  const auto links = m.ListLinks(page);
  for (const auto& l : links->links()) {
    out.push_back(l.name() + (l.up() ? " up" : " down"));
  }
  return out;
}

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    auto etcd = EtcdCluster::Start(1);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    from_ = *ParseStoreFlag("sqlite:" + dir_.File("fabric.db"));
    // A manager's state: a fabric, allocations (one with a request id), a
    // link down.
    auto sqlite = OpenStore(from_);
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    auto m = service::FabricManager::Open(sqlite->get(), &clock_, Options());
    ASSERT_TRUE(m.ok()) << m.status();
    v1::CreateFabricRequest ring;
    ring.mutable_spec()->set_name("lab");
    ring.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < 8; ++i) {
      ring.mutable_spec()->add_nodes()->set_name("n" + std::to_string(i));
    }
    ASSERT_TRUE((*m)->CreateFabric(ring).ok());
    for (int i = 0; i < 20; ++i) {
      v1::CreateAllocationRequest a;
      a.mutable_allocation()->set_borrower("n" + std::to_string(i % 8));
      a.mutable_allocation()->set_target("n" + std::to_string((i + 2) % 8));
      a.mutable_allocation()->set_size(1 << 20);
      if (i == 0) a.set_request_id("first");
      ASSERT_TRUE((*m)->CreateAllocation(a).ok());
    }
    v1::SetLinkStateRequest down;
    down.set_name("links/n3--n4");
    ASSERT_TRUE((*m)->SetLinkState(down).ok());
    seen_ = Seen(**m);
    (*m)->Shutdown();
  }

  StoreSpec To(const std::string& prefix) {
    return *ParseStoreFlag(etcd_->StoreUrl(prefix));
  }

  testing::ScopedTempDir dir_;
  ManualClock clock_;
  std::unique_ptr<EtcdCluster> etcd_;
  StoreSpec from_;
  std::vector<std::string> seen_;
};

TEST_F(MigrateTest, CopiesVerifiesAndAManagerOnEtcdSeesTheSameState) {
  const StoreSpec to = To("/migrated");
  auto summary = MigrateStores(from_, to, service::StoreTables());
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(summary->ToString(), HasSubstr("allocations: 20 rows"));
  EXPECT_THAT(summary->ToString(), HasSubstr("requests: 1 rows"));
  EXPECT_THAT(summary->ToString(), HasSubstr("verified"));

  auto etcd = OpenStore(to);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto m = service::FabricManager::Open(etcd->get(), &clock_, Options());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Seen(**m), seen_);
  EXPECT_EQ((*m)->RememberedRequestIds(), 1u);
  EXPECT_TRUE((*m)->CheckInvariants().ok());
  (*m)->Shutdown();
}

TEST_F(MigrateTest, RefusesANonEmptyTarget) {
  const StoreSpec to = To("/twice");
  ASSERT_TRUE(MigrateStores(from_, to, service::StoreTables()).ok());
  auto again = MigrateStores(from_, to, service::StoreTables());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr(to.text));
  EXPECT_THAT(again.status().message(), HasSubstr("not empty"));
}

TEST_F(MigrateTest, WritesInBatchesThatFitTheTargetsLimits) {
  StoreSpec to = To("/small-txns");
  to.etcd.max_txn_ops = 8;
  auto summary = MigrateStores(from_, to, service::StoreTables());
  ASSERT_TRUE(summary.ok()) << summary.status();
  // 20 allocations alone need 3 or more transactions of at most 8 puts.
  EXPECT_GE(summary->transactions, 5u);
  auto etcd = OpenStore(to);
  ASSERT_TRUE(etcd.ok());
  auto m = service::FabricManager::Open(etcd->get(), &clock_, Options());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Seen(**m), seen_);
  (*m)->Shutdown();
}

TEST_F(MigrateTest, RefusesOtherKindsOfStore) {
  EXPECT_EQ(
      MigrateStores(To("/x"), To("/y"), service::StoreTables()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MigrateStores(from_, from_, service::StoreTables()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fabric::store
