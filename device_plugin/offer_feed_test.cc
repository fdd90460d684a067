#include "device_plugin/offer_feed.h"

#include <memory>
#include <vector>

#include "device_plugin/testing/fake_offer_manager.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace fabric::device_plugin {
namespace {

using testing::FakeOfferManager;

// A leader whose first stream ends after its set.
FakeOfferManager::Options FirstStreamFails() {
  FakeOfferManager::Options o;
  o.failing_streams = 1;
  return o;
}

FakeOfferManager::Options StandbyOf(const std::string& leader) {
  FakeOfferManager::Options o;
  o.leader = leader;
  return o;
}

// Collects the sets the feed hands on.
class Sink {
 public:
  OfferFeed::Sink callback() {
    return [this](const fabric::v1::OfferSet& set) {
      absl::MutexLock l(&mu_);
      sets_.push_back(set);
    };
  }
  bool WaitFor(size_t n) {
    absl::MutexLock l(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return sets_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  }
  std::vector<fabric::v1::OfferSet> sets() {
    absl::MutexLock l(&mu_);
    return sets_;
  }

 private:
  absl::Mutex mu_;
  std::vector<fabric::v1::OfferSet> sets_ ABSL_GUARDED_BY(mu_);
};

OfferFeedOptions Options(std::vector<std::string> managers) {
  OfferFeedOptions o;
  o.managers = std::move(managers);
  o.tls.insecure = true;
  o.node = "n1";
  o.memory_chunk_bytes = 1 << 20;
  o.retry_initial = absl::Milliseconds(10);
  return o;
}

TEST(OfferFeedTest, HandsOnSetsAndReopensALostStream) {
  FakeOfferManager manager(FirstStreamFails());
  Sink sink;
  OfferFeed feed(Options({manager.address()}), sink.callback());
  feed.Start();
  ASSERT_TRUE(sink.WaitFor(2));
  feed.Stop();
  std::vector<fabric::v1::OfferSet> sets = sink.sets();
  EXPECT_EQ(sets[0].generation(), 1);
  EXPECT_EQ(sets[0].offers(0).id(), "vf-1");
  EXPECT_EQ(sets[1].offers(0).id(), "vf-2");
  auto requests = manager.requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[0].node(), "n1");
  EXPECT_EQ(requests[0].memory_chunk_bytes(), 1u << 20);
  EXPECT_EQ(feed.stats().sets, 2);
}

TEST(OfferFeedTest, FollowsTheLeaderAStandbyNames) {
  FakeOfferManager leader(FakeOfferManager::Options{});
  FakeOfferManager standby(StandbyOf(leader.address()));
  Sink sink;
  OfferFeed feed(Options({standby.address()}), sink.callback());
  feed.Start();
  ASSERT_TRUE(sink.WaitFor(1));
  EXPECT_EQ(feed.stats().manager, leader.address());
  EXPECT_EQ(standby.requests().size(), 1u);
}

TEST(OfferFeedTest, StopEndsAnOpenStream) {
  FakeOfferManager manager(FirstStreamFails());
  Sink sink;
  OfferFeed feed(Options({manager.address()}), sink.callback());
  feed.Start();
  ASSERT_TRUE(sink.WaitFor(2));  // the second stream stays open
  feed.Stop();
  EXPECT_EQ(sink.sets().size(), 2u);
}

}  // namespace
}  // namespace fabric::device_plugin
