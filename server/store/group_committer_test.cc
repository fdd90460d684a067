#include "server/store/group_committer.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::store {
namespace {

using ::testing::ElementsAre;

WriteBatch Batch(int ops, const std::string& tag) {
  WriteBatch batch;
  for (int i = 0; i < ops; ++i) batch.Put("t", absl::StrCat(tag, i), "v");
  return batch;
}

// A write function that records each group's batch counts, and holds the
// first write until released, so that later callers queue up behind it.
class Recorder {
 public:
  GroupCommitter::WriteFn Fn() {
    return [this](const std::vector<const WriteBatch*>& batches) {
      absl::MutexLock lock(&mu_);
      groups_.push_back(batches.size());
      if (groups_.size() == 1) {
        mu_.Await(absl::Condition(&released_));
      }
      for (const WriteBatch* b : batches) {
        for (const Mutation& m : b->mutations()) {
          if (m.key.rfind("bad", 0) == 0) return fail_;
        }
      }
      return absl::OkStatus();
    };
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }
  std::vector<size_t> groups() {
    absl::MutexLock lock(&mu_);
    return groups_;
  }
  absl::Status fail_ = absl::InvalidArgumentError("bad batch");

 private:
  absl::Mutex mu_;
  bool released_ = false;
  std::vector<size_t> groups_;
};

// Runs one caller per batch: the first one's write is held until every
// other caller is queued behind it, so the later groups are deterministic.
std::vector<absl::Status> RunQueued(GroupCommitter& committer,
                                    Recorder& recorder,
                                    const std::vector<WriteBatch>& batches) {
  std::vector<absl::Status> results(batches.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < batches.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = committer.Commit(batches[i]); });
    if (i == 0) {
      while (recorder.groups().empty()) std::this_thread::yield();
    }
  }
  while (committer.queued() < batches.size()) std::this_thread::yield();
  recorder.Release();
  for (std::thread& t : threads) t.join();
  return results;
}

TEST(GroupCommitterTest, LoneCallerWritesAlone) {
  Recorder recorder;
  recorder.Release();
  GroupCommitter committer(0, {}, recorder.Fn(),
                           [](const absl::Status&) { return false; });
  EXPECT_TRUE(committer.Commit(Batch(3, "a")).ok());
  EXPECT_TRUE(committer.Commit(Batch(1, "b")).ok());
  EXPECT_THAT(recorder.groups(), ElementsAre(1, 1));
  EXPECT_EQ(committer.stats().batches, 2u);
  EXPECT_EQ(committer.stats().commits, 2u);
}

TEST(GroupCommitterTest, QueuedCallersShareWritesWithinTheLimits) {
  Recorder recorder;
  // At most 5 mutations per group: batches of 2 go two by two.
  GroupCommitter committer(0, StoreLimits{.max_ops = 5}, recorder.Fn(),
                           [](const absl::Status&) { return false; });
  std::vector<WriteBatch> batches;
  for (int i = 0; i < 7; ++i) batches.push_back(Batch(2, absl::StrCat(i)));
  for (const absl::Status& s : RunQueued(committer, recorder, batches)) {
    EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_THAT(recorder.groups(), ElementsAre(1, 2, 2, 2));
  EXPECT_EQ(committer.stats().batches, 7u);
  EXPECT_EQ(committer.stats().commits, 4u);
  EXPECT_EQ(committer.queued(), 0u);
}

TEST(GroupCommitterTest, MaxBatchesAndMaxBytesCapAGroup) {
  Recorder recorder;
  GroupCommitter committer(2, {}, recorder.Fn(),
                           [](const absl::Status&) { return false; });
  std::vector<WriteBatch> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(Batch(1, absl::StrCat(i)));
  RunQueued(committer, recorder, batches);
  EXPECT_THAT(recorder.groups(), ElementsAre(1, 2, 2, 1));

  // Each batch is 4 bytes ("t" "0x" "v") + 6 overhead: two per 20 bytes.
  Recorder by_bytes;
  GroupCommitter bytes_committer(
      0, StoreLimits{.max_bytes = 20, .per_op_overhead_bytes = 6},
      by_bytes.Fn(), [](const absl::Status&) { return false; });
  RunQueued(bytes_committer, by_bytes, batches);
  EXPECT_THAT(by_bytes.groups(), ElementsAre(1, 2, 2, 1));
}

TEST(GroupCommitterTest, ABadBatchIsRetriedAloneSoItsNeighboursLand) {
  Recorder recorder;
  GroupCommitter committer(0, {}, recorder.Fn(),
                           [](const absl::Status&) { return false; });
  std::vector<WriteBatch> batches = {Batch(1, "first"), Batch(1, "bad"),
                                     Batch(1, "ok")};
  std::vector<absl::Status> results = RunQueued(committer, recorder, batches);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(results[2].ok());
  EXPECT_THAT(recorder.groups(), ElementsAre(1, 2, 1, 1));
  EXPECT_EQ(committer.stats().batches, 2u);
  EXPECT_EQ(committer.stats().commits, 2u);
}

TEST(GroupCommitterTest, ASharedFailureFailsTheWholeGroup) {
  Recorder recorder;
  recorder.fail_ = absl::UnavailableError("medium gone");
  GroupCommitter committer(
      0, {}, recorder.Fn(),
      [](const absl::Status& s) { return absl::IsUnavailable(s); });
  std::vector<WriteBatch> batches = {Batch(1, "first"), Batch(1, "bad"),
                                     Batch(1, "ok")};
  std::vector<absl::Status> results = RunQueued(committer, recorder, batches);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[1].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(results[2].code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(recorder.groups(), ElementsAre(1, 2));
  EXPECT_EQ(committer.stats().batches, 1u);
}

}  // namespace
}  // namespace fabric::store
