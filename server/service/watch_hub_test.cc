#include "server/service/watch_hub.h"

#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);

v1::WatchEvent FabricEvent() {
  v1::WatchEvent e;
  e.set_type(v1::WatchEvent::MODIFIED);
  e.mutable_fabric()->set_name("fabrics/f");
  return e;
}

// Counts its calls. Thread-safe.
class CountingListener : public WatchHub::Listener {
 public:
  void OnHubChanged() override {
    absl::MutexLock l(&mu_);
    ++calls_;
  }
  int calls() const {
    absl::MutexLock l(&mu_);
    return calls_;
  }
  // Waits until it has been called more than `n` times.
  bool AwaitMoreThan(int n) const {
    absl::MutexLock l(&mu_);
    auto more = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ > n; };
    return mu_.AwaitWithTimeout(absl::Condition(&more), kWait);
  }

 private:
  mutable absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(WatchHubTest, ReadNeverWaits) {
  WatchHub hub(/*capacity=*/4);
  std::vector<v1::WatchEvent> out;
  EXPECT_EQ(hub.Read(0, &out), WatchHub::ReadResult::kNothingNew);
  for (int i = 0; i < 10; ++i) hub.Publish(FabricEvent());
  EXPECT_EQ(hub.last_sequence(), 10);
  EXPECT_EQ(hub.Read(0, &out), WatchHub::ReadResult::kFellBehind);
  EXPECT_EQ(hub.Read(6, &out), WatchHub::ReadResult::kOk);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out.front().sequence(), 7);
  EXPECT_EQ(out.back().sequence(), 10);
  out.clear();
  EXPECT_EQ(hub.Read(10, &out), WatchHub::ReadResult::kNothingNew);
  hub.Close();
  EXPECT_EQ(hub.Read(6, &out), WatchHub::ReadResult::kClosed);
  EXPECT_TRUE(out.empty());
}

// A keyed listener (a node's config stream) hears of generations that name
// its key or name none, and of Close; not of events, nor of generations
// that name other keys. Listeners without a key hear of everything.
TEST(WatchHubTest, KeyedListenersAreToldOnlyOfGenerationsThatNameThem) {
  WatchHub hub;
  CountingListener n1, n1_too, n2, witness;
  hub.AddListener(&n1, /*periodic=*/false, "n1");
  hub.AddListener(&n1_too, /*periodic=*/false, "n1");
  hub.AddListener(&n2, /*periodic=*/false, "n2");
  hub.AddListener(&witness);
  // Runs `change` and waits until the notifier has told everyone of it: the
  // witness (no key) is told of every change, and once it has been told of
  // an event published after the change's round began, that round is over.
  auto settle = [&](const std::function<void()>& change) {
    const int seen = witness.calls();
    change();
    ASSERT_TRUE(witness.AwaitMoreThan(seen));
    hub.Publish(FabricEvent());
    ASSERT_TRUE(witness.AwaitMoreThan(seen + 1));
  };
  auto counts = [&] {
    return std::vector<int>{n1.calls(), n1_too.calls(), n2.calls()};
  };
  settle([&] { hub.Publish(FabricEvent()); });
  EXPECT_EQ(counts(), (std::vector<int>{0, 0, 0}));
  settle([&] { hub.SetGeneration(5, {"n2"}); });
  EXPECT_EQ(counts(), (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(hub.generation(), 5);
  settle([&] { hub.SetGeneration(6, {"n1", "n3"}); });
  EXPECT_EQ(counts(), (std::vector<int>{1, 1, 1}));
  settle([&] { hub.SetGeneration(7); });
  EXPECT_EQ(counts(), (std::vector<int>{2, 2, 2}));
  hub.RemoveListener(&n1_too);
  settle([&] { hub.SetGeneration(8, {"n1"}); });
  EXPECT_EQ(counts(), (std::vector<int>{3, 2, 2}));
  settle([&] { hub.Close(); });
  EXPECT_EQ(counts(), (std::vector<int>{4, 2, 3}));
  hub.RemoveListener(&n1);
  hub.RemoveListener(&n2);
  hub.RemoveListener(&witness);
}

TEST(WatchHubTest, ListenersAreToldOfEventsGenerationsAndClose) {
  WatchHub hub;
  CountingListener listener;
  hub.AddListener(&listener);
  hub.Publish(FabricEvent());
  ASSERT_TRUE(listener.AwaitMoreThan(0));
  int seen = listener.calls();
  hub.SetGeneration(7);
  ASSERT_TRUE(listener.AwaitMoreThan(seen));
  EXPECT_EQ(hub.generation(), 7);
  seen = listener.calls();
  hub.Close();
  ASSERT_TRUE(listener.AwaitMoreThan(seen));
  EXPECT_TRUE(hub.closed());
  hub.RemoveListener(&listener);
  seen = listener.calls();
  hub.Publish(FabricEvent());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(listener.calls(), seen);
}

TEST(WatchHubTest, OnlyPeriodicListenersAreCalledWithoutChanges) {
  WatchHub hub;
  CountingListener periodic, other;
  hub.AddListener(&periodic, /*periodic=*/true);
  hub.AddListener(&other);
  ASSERT_TRUE(periodic.AwaitMoreThan(1));
  EXPECT_EQ(other.calls(), 0);
  hub.RemoveListener(&periodic);
  hub.RemoveListener(&other);
}

// Once RemoveListener returns, the listener may be destroyed: it waits for
// a call in progress.
TEST(WatchHubTest, RemoveListenerWaitsForTheCallInProgress) {
  class Blocking : public WatchHub::Listener {
   public:
    void OnHubChanged() override {
      entered.Notify();
      release.WaitForNotification();
    }
    absl::Notification entered, release;
  } listener;
  WatchHub hub;
  hub.AddListener(&listener);
  hub.Publish(FabricEvent());
  ASSERT_TRUE(listener.entered.WaitForNotificationWithTimeout(kWait));
  absl::Notification removed;
  std::thread remover([&] {
    hub.RemoveListener(&listener);
    removed.Notify();
  });
  EXPECT_FALSE(removed.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  listener.release.Notify();
  EXPECT_TRUE(removed.WaitForNotificationWithTimeout(kWait));
  remover.join();
}

// A listener's call may end a stream whose OnDone runs inline: removing
// listeners from within a call neither deadlocks nor calls them again.
TEST(WatchHubTest, ListenersCanBeRemovedFromWithinACall) {
  WatchHub hub;
  CountingListener victim;
  class Remover : public WatchHub::Listener {
   public:
    Remover(WatchHub* hub, WatchHub::Listener* victim)
        : hub_(hub), victim_(victim) {}
    void OnHubChanged() override {
      hub_->RemoveListener(victim_);
      hub_->RemoveListener(this);
      done.Notify();
    }
    absl::Notification done;

   private:
    WatchHub* const hub_;
    WatchHub::Listener* const victim_;
  } remover(&hub, &victim);
  hub.AddListener(&remover);
  hub.AddListener(&victim);
  hub.Publish(FabricEvent());
  ASSERT_TRUE(remover.done.WaitForNotificationWithTimeout(kWait));
  const int calls = victim.calls();  // 0 or 1: called before the remover
  hub.Publish(FabricEvent());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(victim.calls(), calls);
  EXPECT_LE(calls, 1);
}

}  // namespace
}  // namespace fabric::service
