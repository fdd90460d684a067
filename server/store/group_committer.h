// Leader/follower group commit (as in leveldb's DBImpl::Write), shared by the
// stores (SqliteStore, EtcdStore): concurrent Commit() calls queue up; the
// call at the head of the queue becomes the leader, takes as many queued
// batches as fit in the group's limits (always its own), writes them with
// ONE call of the store's write function (one transaction, one fsync or
// one etcd Txn) without holding the queue's lock, and hands each follower
// the result. A batch never spans two writes.
//
// Failure policy of a group: when the group's write fails with a status the
// store calls shared (a property of the medium, e.g. UNAVAILABLE, or of the
// fence), every batch of the group gets that status. Any other failure
// makes the leader write each batch of the group alone, so one bad batch
// cannot fail its neighbours.
//
// Thread-safe. The write function runs on one thread at a time (the
// current leader's).
#ifndef FABRIC_SERVER_STORE_GROUP_COMMITTER_H_
#define FABRIC_SERVER_STORE_GROUP_COMMITTER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace fabric::store {

class GroupCommitter {
 public:
  // Writes `batches`, in order, in one transaction; OK once durable.
  using WriteFn =
      std::function<absl::Status(const std::vector<const WriteBatch*>&)>;
  // True when a failed group write's status belongs to every batch.
  using SharedFn = std::function<bool(const absl::Status&)>;

  // A group holds at most `max_batches` batches (0: no limit) and fits
  // `limits` as one batch would (StoreLimits::Fits over the group's
  // mutations and bytes); the leader's own batch is always taken.
  GroupCommitter(size_t max_batches, StoreLimits limits, WriteFn write,
                 SharedFn shared)
      : max_batches_(max_batches),
        limits_(limits),
        write_(std::move(write)),
        shared_(std::move(shared)) {}

  // Writes `batch` (not empty), grouped with concurrent callers' batches;
  // returns the result of the write that carried it.
  absl::Status Commit(const WriteBatch& batch) ABSL_LOCKS_EXCLUDED(mu_);

  // batches: batches committed OK; commits: successful writes.
  StoreStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // Commit calls queued or being written now (for tests and monitoring).
  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One Commit call in the queue; lives on that caller's stack.
  struct Pending {
    explicit Pending(const WriteBatch* b) : batch(b) {}
    static bool Woken(Pending* p) { return p->done || p->leader; }
    const WriteBatch* const batch;
    bool leader = false;  // At the head of the queue; guarded by mu_.
    bool done = false;    // Guarded by mu_.
    absl::Status status;  // Guarded by mu_; valid once done.
  };

  std::vector<Pending*> TakeGroupLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<absl::Status> WriteGroup(const std::vector<Pending*>& group,
                                       uint64_t* commits)
      ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_batches_;
  const StoreLimits limits_;
  const WriteFn write_;
  const SharedFn shared_;

  mutable absl::Mutex mu_;
  // Commit calls in arrival order; the front one is the leader.
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  StoreStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::store

#endif  // FABRIC_SERVER_STORE_GROUP_COMMITTER_H_
