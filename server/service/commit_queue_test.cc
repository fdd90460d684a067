// CommitQueue's group gathering (GatherPolicy) through the real queue: a
// store whose writes wait for the test, and a manual clock that says how
// long a commit took.
#include "server/service/commit_queue.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/manual_clock.h"
#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"
#include "server/store/store.h"

namespace fabric::service {
namespace {

// A store whose Apply calls wait, in order, until the test lets them
// through (Release), and that counts the mutations of each. Each Apply
// also advances `clock` by what SetApplyTakes says, so that the queue
// sees it take that long.
class GatedStore : public store::Store {
 public:
  explicit GatedStore(ManualClock* clock) : clock_(clock) {}

  absl::Status Apply(const store::WriteBatch& batch) override {
    absl::MutexLock l(&mu_);
    Gate gate{this, sizes_.size() + 1};
    sizes_.push_back(batch.mutations().size());
    mu_.Await(absl::Condition(
        +[](Gate* g) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return g->store->released_ >= g->n;
        },
        &gate));
    clock_->Advance(takes_);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Get(absl::string_view,
                                  absl::string_view) override {
    return absl::NotFoundError("the gated store keeps nothing");
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view) override {
    return std::vector<std::pair<std::string, std::string>>();
  }
  store::StoreStats stats() const override { return {}; }

  // Lets the first `n` Apply calls return.
  void Release(size_t n) {
    absl::MutexLock l(&mu_);
    released_ = n;
  }
  void SetApplyTakes(absl::Duration d) {
    absl::MutexLock l(&mu_);
    takes_ = d;
  }
  // Waits until `n` Apply calls have started.
  void AwaitStarted(size_t n) {
    absl::MutexLock l(&mu_);
    Gate gate{this, n};
    mu_.Await(absl::Condition(
        +[](Gate* g) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return g->store->sizes_.size() >= g->n;
        },
        &gate));
  }
  // The mutations of each Apply so far, in order.
  std::vector<size_t> sizes() {
    absl::MutexLock l(&mu_);
    return sizes_;
  }

 private:
  struct Gate {
    GatedStore* store;
    size_t n;
  };

  ManualClock* const clock_;
  absl::Mutex mu_;
  std::vector<size_t> sizes_ ABSL_GUARDED_BY(mu_);
  size_t released_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration takes_ ABSL_GUARDED_BY(mu_);
};

class CommitQueueGatherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions options;
    options.commit_gather.fraction = 1.0;
    // Long enough that only the plans' arrival (or Close) can end a wait:
    // a wait the queue should not make hangs the test instead.
    options.commit_gather.max_wait = absl::Hours(1);
    queue_ = std::make_unique<CommitQueue>(&store_, &clock_, &mu_, options);
  }
  void TearDown() override {
    store_.Release(1000);
    queue_->Close();
    for (std::thread& t : threads_) t.join();
  }

  // Queues one plan of one Put, with a request id (so that
  // RememberedRequestIds counts the plans queued); `done` is told the
  // outcome.
  void Mutate(int i) {
    google::protobuf::StringValue request;
    request.set_value(absl::StrCat(i));
    queue_->MutateAsync(
        "Test", absl::StrCat("req-", i), request,
        [i]() -> absl::StatusOr<Plan> {
          Plan plan;
          plan.batch.Put("t", absl::StrCat("k", i), "v");
          return plan;
        },
        [this](absl::StatusOr<std::string> r) {
          absl::MutexLock l(&done_mu_);
          if (r.ok()) ++succeeded_;
        });
  }
  void MutateOnThread(int i) {
    threads_.emplace_back([this, i] { Mutate(i); });
  }
  void AwaitQueued(size_t n) {
    while (queue_->RememberedRequestIds() < n) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  int succeeded() {
    absl::MutexLock l(&done_mu_);
    return succeeded_;
  }

  ManualClock clock_;
  GatedStore store_{&clock_};
  absl::Mutex mu_;
  std::unique_ptr<CommitQueue> queue_;
  std::vector<std::thread> threads_;
  absl::Mutex done_mu_;
  int succeeded_ ABSL_GUARDED_BY(done_mu_) = 0;
};

TEST_F(CommitQueueGatherTest, ALoneCallerIsWrittenAtOnce) {
  store_.Release(1000);
  store_.SetApplyTakes(absl::Hours(1));  // a wait would be an hour long
  for (int i = 0; i < 5; ++i) {
    Mutate(i);  // the leader: returns once written
  }
  EXPECT_EQ(store_.sizes(), std::vector<size_t>(5, 2));  // Put + request row
  EXPECT_EQ(succeeded(), 5);
}

TEST_F(CommitQueueGatherTest, AfterAGroupTheLeaderWaitsForOneMorePlan) {
  // 1 commits alone while 2 and 3 queue; they commit together, slowly.
  MutateOnThread(1);
  store_.AwaitStarted(1);
  Mutate(2);
  Mutate(3);  // followers: queued, answered by the leader
  store_.Release(1);
  store_.SetApplyTakes(absl::Hours(1));
  store_.Release(2);
  store_.AwaitStarted(2);
  ASSERT_EQ(store_.sizes(), (std::vector<size_t>{2, 4}));
  // 4's leader now waits for 3 plans (the group of two, and one more).
  MutateOnThread(4);
  AwaitQueued(4);
  Mutate(5);
  store_.Release(3);
  EXPECT_EQ(store_.sizes().size(), 2u);  // still gathering
  Mutate(6);
  store_.AwaitStarted(3);
  EXPECT_EQ(store_.sizes(), (std::vector<size_t>{2, 4, 6}));
}

TEST_F(CommitQueueGatherTest, CloseEndsAGatherAtOnce) {
  MutateOnThread(1);
  store_.AwaitStarted(1);
  Mutate(2);
  Mutate(3);
  store_.Release(1);
  store_.SetApplyTakes(absl::Hours(1));
  store_.Release(1000);
  store_.AwaitStarted(2);
  MutateOnThread(4);
  AwaitQueued(4);
  // Without the gather cut short, Close would wait out the hour.
  EXPECT_TRUE(queue_->Close());
  EXPECT_EQ(store_.sizes(), (std::vector<size_t>{2, 4, 2}));
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  EXPECT_EQ(succeeded(), 4);
}

}  // namespace
}  // namespace fabric::service
