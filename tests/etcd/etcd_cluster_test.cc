#include "tests/etcd/etcd_cluster.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace fabric::etcdtest {
namespace {

TEST(EtcdClusterTest, ThreeMembersKeepQuorumWithOneLostAndRegainIt) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> started = EtcdCluster::Start(3);
  ASSERT_TRUE(started.ok()) << started.status();
  EtcdCluster& etcd = **started;
  EXPECT_EQ(etcd.size(), 3);
  EXPECT_EQ(etcd.StoreUrl("/p").rfind("etcd://127.0.0.1:", 0), 0u);

  etcd.Kill(0);
  EXPECT_FALSE(etcd.running(0));
  EXPECT_TRUE(etcd.WaitHealthy(absl::Seconds(20)));

  etcd.Kill(1);  // one of three left: no quorum
  EXPECT_FALSE(etcd.WaitHealthy(absl::Seconds(2)));

  ASSERT_TRUE(etcd.Restart(1).ok());
  EXPECT_TRUE(etcd.WaitHealthy(absl::Seconds(30)));
}

TEST(EtcdClusterTest, StoppedMemberIsKilledByTheDestructor) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> started = EtcdCluster::Start(1);
  ASSERT_TRUE(started.ok()) << started.status();
  (*started)->Signal(0, SIGSTOP);
  EXPECT_FALSE((*started)->WaitHealthy(absl::Seconds(1)));
  started->reset();  // must not hang on the stopped member
}

}  // namespace
}  // namespace fabric::etcdtest
