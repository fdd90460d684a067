// CommitQueue: the group commit. Mutations are planned under the owner's
// mutex, queued in the order they were planned, and written to the store
// in groups (one Apply, one fsync, per group; each group as many plans as
// fit the store's limits()) by whichever caller found no commit in progress
// (the leader, as in leveldb); the others return at once and are answered by
// the leader.
//
// It also owns the RequestLog: a mutation with a request id is answered
// from the log when retried, and its id is recorded (and old ids are
// forgotten) in the same batch as its effects.
//
// Before it takes a group, the leader may wait a little for more plans
// (options.commit_gather, see GatherPolicy): never after a commit of one
// plan, at most a fraction of the last commit's duration otherwise.
//
// Thread-safe. It shares the owner's mutex `mu`, which guards everything
// plans touch: plan functions, commit and rollback run with `mu` held;
// callbacks (Done) run without it.
#ifndef FABRIC_SERVER_SERVICE_COMMIT_QUEUE_H_
#define FABRIC_SERVER_SERVICE_COMMIT_QUEUE_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "google/protobuf/message.h"
#include "server/service/gather_policy.h"
#include "server/service/manager_options.h"
#include "server/service/request_log.h"
#include "server/store/store.h"

namespace fabric::service {

// A callback that gets a result once.
template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

// A planned mutation: what to write, and what to do in memory once it is
// durable (commit) or once the write failed (rollback). Both run under the
// owner's mutex, in planning order (rollbacks in reverse).
//
// `tail`: more mutations, written after `batch` in the same transaction
// when both fit the store's limits together, else after it in as many
// transactions as they need, in order. The plan must make that safe: once
// `batch` is durable, a restart has to finish or undo a tail cut short
// (e.g. a tombstone in `batch` that recovery acts on). If a tail
// transaction fails, neither commit nor rollback runs (what the plan did
// in memory stays), and the caller gets UNAVAILABLE saying the change was
// written in part.
struct Plan {
  store::WriteBatch batch;
  store::WriteBatch tail;
  std::function<void()> commit;
  std::function<void()> rollback;
  std::string response;  // serialized response message
};

class CommitQueue {
 public:
  // `store`, `clock` and `mu` are not owned and must outlive this.
  CommitQueue(store::Store* store, Clock* clock, absl::Mutex* mu,
              const ManagerOptions& options);

  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  // Runs `plan_fn` under mu and queues its plan, so that store writes
  // happen in the order plans were made. `done` gets the serialized
  // response once it is durable, or the error: INVALID_ARGUMENT for a
  // request id over kMaxRequestIdLength or reused for another request, or
  // for a plan whose batch alone does not fit the store's limits (then its
  // rollback runs at once and nothing is written; the message names the
  // limit), UNAVAILABLE once closed or when the store cannot be written, or
  // what plan_fn returned. A retry of a request id gets the first response
  // (waiting for it if in flight). `done` runs on the calling thread for an
  // early answer, or on the leader's once written.
  void MutateAsync(absl::string_view method, absl::string_view request_id,
                   const google::protobuf::Message& request,
                   const std::function<absl::StatusOr<Plan>()>& plan_fn,
                   Done<std::string> done) ABSL_LOCKS_EXCLUDED(mu_);

  // MutateAsync, waiting for the outcome.
  absl::StatusOr<std::string> Mutate(
      absl::string_view method, absl::string_view request_id,
      const google::protobuf::Message& request,
      const std::function<absl::StatusOr<Plan>()>& plan_fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses new mutations from now on and waits until what was queued
  // before is written. False if it was already closed.
  bool Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets up to `limit` request ids past retention or over the cap
  // (those a new id could not forget, e.g. after a failed write), deleting
  // their store rows first, in chunks that fit the store's limits; the ids
  // of a chunk whose delete failed (and of the chunks after it) stay
  // remembered.
  void ForgetOldRequests(absl::Time now, size_t limit) ABSL_LOCKS_EXCLUDED(mu_);

  // Tells the thread-safety analysis that the owner's mutex, which this
  // shares, is held; checks it in debug builds.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(mu_) {
    mu_->AssertHeld();
  }

  // The request log, for recovery.
  RequestLog& requests() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_;
  }
  // Request ids remembered now (RequestLog::size).
  size_t RememberedRequestIds() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A planned mutation waiting to be written.
  struct QueuedPlan {
    Plan plan;
    // The request log's record of it (RequestLog::Record); null without a
    // request id.
    PendingRequest* pending = nullptr;
    std::string request_id;
    Done<std::string> done;
    // Old request ids whose store rows this plan's batch deletes: forgotten
    // when it commits, remembered again if the write fails.
    std::vector<RequestSlot> forget;
    // The plan's tail when it did not fit beside its batch: written after
    // the group's transaction, one Apply each.
    std::vector<store::WriteBatch> tail_chunks;
  };
  using Replies =
      std::vector<std::pair<Done<std::string>, absl::StatusOr<std::string>>>;

  // Takes the old request ids a new id forgets in its own `batch` (at most
  // kForgetPerRequest, and no more than fit `limits` beside it), adding
  // their deletes to `batch`.
  std::vector<RequestSlot> TakeForgetsThatFit(absl::Time now,
                                              const store::StoreLimits& limits,
                                              store::WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The answer of the completed request `request_id` with `fingerprint`,
  // read from its store row, keyed `row_key` (outside mu_). UNAVAILABLE
  // when the row is gone (the id is being forgotten), else the store's
  // error.
  absl::StatusOr<std::string> RecordedAnswer(absl::string_view request_id,
                                             absl::string_view row_key,
                                             const RequestDigest& fingerprint)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Writes the group's batches to the store in one Apply (one fsync), then
  // commits or rolls back each plan in order. Returns the callbacks to run.
  Replies CommitGroup(std::vector<QueuedPlan> group) ABSL_LOCKS_EXCLUDED(mu_);
  // Commits queued plans group by group until the queue is empty, running
  // the callbacks after each group; before each group it waits as gather_
  // says (cut short by Close). REQUIRES: this caller set committing_.
  void LeadCommits() ABSL_LOCKS_EXCLUDED(mu_);

  store::Store* const store_;  // not owned
  Clock* const clock_;         // not owned
  CommitObserver* const observer_;  // not owned; may be null
  absl::Mutex* const mu_;      // not owned; the owner's
  RequestLog requests_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<QueuedPlan> queue_ ABSL_GUARDED_BY(mu_);
  // A caller is writing queued plans (the leader).
  bool committing_ ABSL_GUARDED_BY(mu_) = false;
  GatherPolicy gather_ ABSL_GUARDED_BY(mu_);
};

// Adapts a callback of a message type to one of its serialized bytes.
template <typename T>
Done<std::string> ParseInto(Done<T> done) {
  return [done = std::move(done)](absl::StatusOr<std::string> bytes) {
    if (!bytes.ok()) {
      done(bytes.status());
      return;
    }
    T out;
    out.ParseFromString(*bytes);
    done(std::move(out));
  };
}

// Runs an asynchronous call and waits for its callback.
template <typename T, typename Start>
absl::StatusOr<T> AwaitResult(Start start) {
  absl::Notification finished;
  absl::StatusOr<T> result;
  start([&](absl::StatusOr<T> r) {
    result = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_COMMIT_QUEUE_H_
