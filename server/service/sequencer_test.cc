#include "server/service/sequencer.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

using ::testing::ElementsAre;

TEST(SequencerTest, AnOperationThatFinishesAtOnceLetsTheNextStart) {
  Sequencer seq;
  std::vector<int> order;
  for (int i = 0; i < 3; ++i) {
    seq.Run([&order, i](Sequencer::Finished finished) {
      order.push_back(i);
      finished();
    });
  }
  EXPECT_THAT(order, ElementsAre(0, 1, 2));
  EXPECT_FALSE(seq.busy());
}

TEST(SequencerTest, LaterOperationsWaitUntilTheRunningOneFinishes) {
  Sequencer seq;
  std::vector<int> order;
  Sequencer::Finished first_finished;
  seq.Run([&](Sequencer::Finished finished) {
    order.push_back(0);
    first_finished = std::move(finished);  // still running when it returns
  });
  seq.Run([&](Sequencer::Finished finished) {
    order.push_back(1);
    finished();
  });
  seq.Run([&](Sequencer::Finished finished) {
    order.push_back(2);
    finished();
  });
  EXPECT_THAT(order, ElementsAre(0));
  EXPECT_TRUE(seq.busy());
  EXPECT_EQ(seq.queued(), 2u);

  // The thread that finishes the first runs those queued behind it.
  first_finished();
  EXPECT_THAT(order, ElementsAre(0, 1, 2));
  EXPECT_FALSE(seq.busy());
  EXPECT_EQ(seq.queued(), 0u);
}

TEST(SequencerTest, FinishedOnAnotherThreadBeforeTheOperationReturns) {
  Sequencer seq;
  absl::Notification second_ran;
  seq.Run([&](Sequencer::Finished finished) {
    // Finished elsewhere while this operation is still running: the next
    // one starts once this returns, on this thread.
    std::thread t([&] { finished(); });
    t.join();
    EXPECT_FALSE(second_ran.HasBeenNotified());
  });
  // Queued after the first returned: runs at once.
  seq.Run([&](Sequencer::Finished finished) {
    second_ran.Notify();
    finished();
  });
  EXPECT_TRUE(second_ran.HasBeenNotified());
  EXPECT_FALSE(seq.busy());
}

TEST(SequencerTest, OneOperationAtATimeAcrossThreads) {
  Sequencer seq;
  absl::Mutex mu;
  int running = 0;
  int most = 0;
  std::vector<int> order;
  std::vector<std::thread> finishers;
  constexpr int kOps = 200;
  for (int i = 0; i < kOps; ++i) {
    seq.Run([&, i](Sequencer::Finished finished) {
      auto end = [&mu, &running, finished] {
        {
          absl::MutexLock l(&mu);
          --running;
        }
        finished();
      };
      {
        absl::MutexLock l(&mu);
        ++running;
        most = std::max(most, running);
        order.push_back(i);
        // Every other operation is finished on a thread of its own.
        if (i % 2 == 0) {
          finishers.emplace_back(end);
          return;
        }
      }
      end();
    });
  }
  // Waits for all to have run, then for the threads.
  {
    absl::MutexLock l(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<int>* o) { return o->size() == kOps; }, &order));
  }
  for (;;) {
    std::vector<std::thread> joining;
    {
      absl::MutexLock l(&mu);
      joining.swap(finishers);
    }
    if (joining.empty()) break;
    for (std::thread& t : joining) t.join();
  }
  EXPECT_EQ(most, 1);
  for (int i = 0; i < kOps; ++i) EXPECT_EQ(order[i], i);
  EXPECT_FALSE(seq.busy());
}

TEST(SequencerTest, ALongQueueOfQuickOperationsDoesNotRecurse) {
  Sequencer seq;
  Sequencer::Finished first_finished;
  seq.Run([&](Sequencer::Finished finished) {
    first_finished = std::move(finished);
  });
  // A recursive drain would need a stack frame per operation.
  constexpr int kOps = 200000;
  int ran = 0;
  for (int i = 0; i < kOps; ++i) {
    seq.Run([&ran](Sequencer::Finished finished) {
      ++ran;
      finished();
    });
  }
  first_finished();
  EXPECT_EQ(ran, kOps);
  EXPECT_FALSE(seq.busy());
}

}  // namespace
}  // namespace fabric::service
