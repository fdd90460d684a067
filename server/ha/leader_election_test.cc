#include "server/ha/leader_election.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"

namespace fabric::ha {
namespace {

using etcdtest::EtcdCluster;
using proctest::WaitFor;

constexpr absl::Duration kTtl = absl::Seconds(1);  // etcd raises it to 2 s

// One manager's election and what its callbacks saw.
struct Manager {
  std::string address;
  std::unique_ptr<LeaderElection> election;
  absl::Mutex mu;
  int elected ABSL_GUARDED_BY(mu) = 0;
  int lost ABSL_GUARDED_BY(mu) = 0;
  bool leading ABSL_GUARDED_BY(mu) = false;  // on_elected/on_lost alternate
  bool alternated ABSL_GUARDED_BY(mu) = true;
  absl::Time elected_at ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::string seen_leader ABSL_GUARDED_BY(mu);  // on_leader's last address
  // With on_unreachable/on_reachable set (Add's keep_key_unreachable).
  int unreachable ABSL_GUARDED_BY(mu) = 0;
  int reachable ABSL_GUARDED_BY(mu) = 0;

  int Elected() {
    absl::MutexLock l(&mu);
    return elected;
  }
  int Lost() {
    absl::MutexLock l(&mu);
    return lost;
  }
  bool Leading() {
    absl::MutexLock l(&mu);
    return leading;
  }
  int Unreachable() {
    absl::MutexLock l(&mu);
    return unreachable;
  }
  int Reachable() {
    absl::MutexLock l(&mu);
    return reachable;
  }
  std::string SeenLeader() {
    absl::MutexLock l(&mu);
    return seen_leader;
  }
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> started =
        EtcdCluster::Start(3);
    ASSERT_TRUE(started.ok()) << started.status();
    etcd_ = *std::move(started);
    client_.endpoints = absl::StrSplit(etcd_->Endpoints(), ',');
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        store::DialEtcd(client_);
    ASSERT_TRUE(channel.ok()) << channel.status();
    kv_ = etcdserverpb::KV::NewStub(*channel);
  }

  // Starts a manager named `address` campaigning on the test's prefix;
  // with `keep_key_unreachable`, it sets on_unreachable and on_reachable.
  Manager* Add(const std::string& address, bool keep_key_unreachable = false) {
    auto m = std::make_unique<Manager>();
    m->address = address;
    Manager* raw = m.get();
    LeaderElection::Callbacks cb;
    cb.on_elected = [raw](const store::Fence&) {
      absl::MutexLock l(&raw->mu);
      raw->alternated = raw->alternated && !raw->leading;
      raw->leading = true;
      ++raw->elected;
      raw->elected_at = absl::Now();
    };
    cb.on_lost = [raw] {
      absl::MutexLock l(&raw->mu);
      raw->alternated = raw->alternated && raw->leading;
      raw->leading = false;
      ++raw->lost;
    };
    cb.on_leader = [raw](const std::optional<LeaderInfo>& info) {
      absl::MutexLock l(&raw->mu);
      raw->seen_leader = info.has_value() ? info->address : "";
    };
    if (keep_key_unreachable) {
      cb.on_unreachable = [raw](const absl::Status&) {
        absl::MutexLock l(&raw->mu);
        ++raw->unreachable;
      };
      cb.on_reachable = [raw] {
        absl::MutexLock l(&raw->mu);
        ++raw->reachable;
      };
    }
    ElectionOptions options;
    options.client = client_;
    options.prefix = "/fabric-test";
    options.address = address;
    options.ttl = kTtl;
    absl::StatusOr<std::unique_ptr<LeaderElection>> e =
        LeaderElection::Start(options, std::move(cb));
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok()) return nullptr;
    m->election = *std::move(e);
    managers_.push_back(std::move(m));
    return raw;
  }

  // The one leader, once exactly one leads; null if none within 20 s.
  Manager* WaitForOneLeader() {
    Manager* leader = nullptr;
    WaitFor(
        [&] {
          int n = 0;
          for (auto& m : managers_) {
            if (m->election != nullptr && m->election->is_leader()) {
              ++n;
              leader = m.get();
            }
          }
          // is_leader() turns true before on_elected runs: wait for both.
          return n == 1 && leader->Leading();
        },
        absl::Seconds(20));
    return leader;
  }

  // The create revision of `key` in etcd (0: no such key).
  int64_t CreateRevision(const std::string& key) {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    etcdserverpb::RangeResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(store::EtcdDeadline(client_));
    grpc::Status s = kv_->Range(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.kvs_size() == 1 ? resp.kvs(0).create_revision() : 0;
  }

  // A fenced write, as the etcd store makes it: true when it committed.
  bool FencedPut(const store::Fence& fence) {
    etcdserverpb::TxnRequest req;
    etcdserverpb::Compare* cmp = req.add_compare();
    cmp->set_key(fence.key);
    cmp->set_target(etcdserverpb::Compare::CREATE);
    cmp->set_result(etcdserverpb::Compare::EQUAL);
    cmp->set_create_revision(fence.create_revision);
    etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
    put->set_key("/fabric-test/data");
    put->set_value("x");
    etcdserverpb::TxnResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(store::EtcdDeadline(client_));
    grpc::Status s = kv_->Txn(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.succeeded();
  }

  static void ExpectAlternated(Manager* m) {
    absl::MutexLock l(&m->mu);
    EXPECT_TRUE(m->alternated) << m->address;
  }

  std::unique_ptr<EtcdCluster> etcd_;
  store::EtcdClientOptions client_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::vector<std::unique_ptr<Manager>> managers_;
};

TEST_F(LeaderElectionTest, ExactlyOneLeadsAndEveryoneNamesIt) {
  for (const char* a : {"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}) {
    ASSERT_NE(Add(a), nullptr);
  }
  Manager* leader = WaitForOneLeader();
  ASSERT_NE(leader, nullptr);
  for (auto& m : managers_) {
    EXPECT_TRUE(WaitFor(
        [&] {
          std::optional<LeaderInfo> l = m->election->leader();
          return l.has_value() && l->address == leader->address &&
                 m->SeenLeader() == leader->address;
        },
        absl::Seconds(10)))
        << m->address;
    EXPECT_EQ(m->election->is_leader(), m.get() == leader);
    EXPECT_EQ(m->election->fence().has_value(), m.get() == leader);
  }
  EXPECT_EQ(leader->Elected(), 1);
  std::optional<store::Fence> fence = leader->election->fence();
  ASSERT_TRUE(fence.has_value());
  EXPECT_EQ(CreateRevision(fence->key), fence->create_revision);
  EXPECT_EQ(leader->election->leader()->key, fence->key);
  EXPECT_EQ(leader->election->leader()->lease, leader->election->lease());
  EXPECT_TRUE(FencedPut(*fence));
  for (auto& m : managers_) ExpectAlternated(m.get());
}

TEST_F(LeaderElectionTest, DestroyedLeaderIsReplacedWellUnderTheTtl) {
  ASSERT_NE(Add("10.0.0.1:7000"), nullptr);
  for (int round = 0; round < 5; ++round) {
    ASSERT_NE(Add(absl::StrCat("10.0.1.", round, ":7000")), nullptr);
    Manager* leader = WaitForOneLeader();
    ASSERT_NE(leader, nullptr);
    const store::Fence old = *leader->election->fence();
    const absl::Time destroyed = absl::Now();
    leader->election.reset();  // Resign + revoke
    EXPECT_EQ(CreateRevision(old.key), 0);
    Manager* next = WaitForOneLeader();
    ASSERT_NE(next, nullptr);
    ASSERT_NE(next, leader);
    absl::Duration failover;
    {
      absl::MutexLock l(&next->mu);
      failover = next->elected_at - destroyed;
    }
    std::fprintf(stderr, "failover after destroy: %s\n",
                 absl::FormatDuration(failover).c_str());
    EXPECT_LT(failover, absl::Seconds(1));
    EXPECT_FALSE(FencedPut(old));
  }
}

TEST_F(LeaderElectionTest, PausedLeaderIsDeposedAndNoticesOnItsOwn) {
  ASSERT_NE(Add("10.0.0.1:7000"), nullptr);
  Manager* first = WaitForOneLeader();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(Add("10.0.0.2:7000"), nullptr);
  Manager* standby = managers_.back().get();
  ASSERT_TRUE(WaitFor([&] { return standby->SeenLeader() == first->address; },
                      absl::Seconds(10)));
  const store::Fence old = *first->election->fence();

  const absl::Time paused = absl::Now();
  first->election->SetKeepAlivePausedForTesting(true);
  // elected_at is set by on_elected, which runs after is_leader() turns true.
  ASSERT_TRUE(WaitFor(
      [&] { return standby->election->is_leader() && standby->Leading(); },
      absl::Seconds(20)));
  absl::Duration failover;
  {
    absl::MutexLock l(&standby->mu);
    failover = standby->elected_at - paused;
  }
  std::fprintf(stderr, "failover after pause: %s\n",
               absl::FormatDuration(failover).c_str());
  EXPECT_LT(failover, absl::Seconds(4));  // 2 x the TTL etcd granted

  EXPECT_TRUE(WaitFor([&] { return first->Lost() == 1; }, absl::Seconds(10)));
  EXPECT_FALSE(first->election->is_leader());
  EXPECT_FALSE(first->election->fence().has_value());
  EXPECT_TRUE(WaitFor([&] { return first->SeenLeader() == standby->address; },
                      absl::Seconds(10)));
  EXPECT_FALSE(FencedPut(old));  // the deposed leader cannot write
  EXPECT_TRUE(FencedPut(*standby->election->fence()));
  EXPECT_EQ(first->Lost(), 1);
  EXPECT_EQ(standby->Lost(), 0);
  ExpectAlternated(first);
  ExpectAlternated(standby);
}

TEST_F(LeaderElectionTest, LeaderStaysLeaderWhenAnEtcdMemberDies) {
  ASSERT_NE(Add("10.0.0.1:7000"), nullptr);
  ASSERT_NE(Add("10.0.0.2:7000"), nullptr);
  Manager* leader = WaitForOneLeader();
  ASSERT_NE(leader, nullptr);
  const store::Fence fence = *leader->election->fence();
  // Member 0 is the one the channel dialled first; it goes, but as a raft
  // follower (losing etcd's raft leader is the next test).
  ASSERT_TRUE(etcd_->MoveRaftLeader(1).ok());
  ASSERT_TRUE(WaitFor([&] { return etcd_->RaftLeader() == 1; },
                      absl::Seconds(10)));
  etcd_->Kill(0);
  ASSERT_TRUE(etcd_->WaitHealthy(absl::Seconds(20)));
  // Three TTLs without a change of leader: the keep-alives moved on.
  EXPECT_FALSE(WaitFor(
      [&] {
        for (auto& m : managers_) {
          if (m->Lost() > 0 || (m.get() != leader && m->Elected() > 0)) {
            return true;
          }
        }
        return false;
      },
      3 * absl::Seconds(2), absl::Milliseconds(50)));
  EXPECT_TRUE(leader->election->is_leader());
  EXPECT_EQ(CreateRevision(fence.key), fence.create_revision);
  EXPECT_TRUE(FencedPut(fence));
}

// Losing etcd's raft leader stalls every keep-alive until the other members
// elect a new one. A manager leader whose lease then went unacknowledged for
// a TTL steps down (the safe side); either way the fabric has exactly one
// leader again soon after, and its fence works.
TEST_F(LeaderElectionTest, LeadershipRecoversWhenEtcdsRaftLeaderDies) {
  ASSERT_NE(Add("10.0.0.1:7000"), nullptr);
  ASSERT_NE(Add("10.0.0.2:7000"), nullptr);
  ASSERT_NE(WaitForOneLeader(), nullptr);
  const int raft_leader = etcd_->RaftLeader();
  ASSERT_GE(raft_leader, 0);
  etcd_->Kill(raft_leader);
  ASSERT_TRUE(etcd_->WaitHealthy(absl::Seconds(20)));
  Manager* leader = WaitForOneLeader();
  ASSERT_NE(leader, nullptr);
  EXPECT_TRUE(FencedPut(*leader->election->fence()));
}

// With on_unreachable set, a leader that loses etcd's quorum keeps its key
// (no manager can win meanwhile) and goes on leading once quorum returns.
TEST_F(LeaderElectionTest, LeaderKeepsItsKeyThroughQuorumLossWhenAsked) {
  Manager* a = Add("a:1", /*keep_key_unreachable=*/true);
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(WaitForOneLeader(), a);
  Manager* b = Add("b:1");
  ASSERT_NE(b, nullptr);
  const std::optional<store::Fence> fence = a->election->fence();
  ASSERT_TRUE(fence.has_value());

  etcd_->Kill(1);
  etcd_->Kill(2);
  ASSERT_TRUE(WaitFor([&] { return a->Unreachable() == 1; },
                      absl::Seconds(20)));
  EXPECT_TRUE(a->election->is_leader());
  EXPECT_EQ(a->Lost(), 0);

  ASSERT_TRUE(etcd_->Restart(1).ok());
  ASSERT_TRUE(etcd_->Restart(2).ok());
  ASSERT_TRUE(etcd_->WaitHealthy(absl::Seconds(20)));
  ASSERT_TRUE(WaitFor([&] { return a->Reachable() == 1; },
                      absl::Seconds(20)));
  EXPECT_TRUE(a->election->is_leader());
  ASSERT_TRUE(a->election->fence().has_value());
  EXPECT_EQ(a->election->fence()->create_revision, fence->create_revision);
  EXPECT_EQ(CreateRevision(fence->key), fence->create_revision);
  EXPECT_EQ(a->Lost(), 0);
  EXPECT_EQ(b->Elected(), 0);
  EXPECT_EQ(a->Unreachable(), 1);
}

TEST_F(LeaderElectionTest, ResignHandsOverAndOnlyOnce) {
  ASSERT_NE(Add("10.0.0.1:7000"), nullptr);
  ASSERT_NE(Add("10.0.0.2:7000"), nullptr);
  Manager* leader = WaitForOneLeader();
  ASSERT_NE(leader, nullptr);
  const store::Fence old = *leader->election->fence();
  EXPECT_TRUE(leader->election->Resign().ok());
  EXPECT_TRUE(leader->election->Resign().ok());  // idempotent
  EXPECT_EQ(leader->Lost(), 1);
  Manager* next = WaitForOneLeader();
  ASSERT_NE(next, nullptr);
  EXPECT_NE(next, leader);
  EXPECT_FALSE(FencedPut(old));
  EXPECT_TRUE(WaitFor([&] { return leader->SeenLeader() == next->address; },
                      absl::Seconds(10)));
  EXPECT_EQ(leader->Elected(), 1);  // it does not campaign again
}

TEST(LeaderElectionStartTest, RejectsBadOptionsAndUnreachableEtcd) {
  ElectionOptions options;
  options.client.endpoints = {"127.0.0.1:1"};
  options.client.rpc_timeout = absl::Seconds(1);
  EXPECT_EQ(LeaderElection::Start(options, {}).status().code(),
            absl::StatusCode::kInvalidArgument);  // no address
  options.address = "10.0.0.1:7000";
  options.ttl = absl::Milliseconds(500);
  EXPECT_EQ(LeaderElection::Start(options, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.ttl = absl::Seconds(2);
  EXPECT_EQ(LeaderElection::Start(options, {}).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace fabric::ha
