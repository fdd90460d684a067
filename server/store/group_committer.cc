#include "server/store/group_committer.h"

#include <utility>

namespace fabric::store {

absl::Status GroupCommitter::Commit(const WriteBatch& batch) {
  Pending self(&batch);
  absl::MutexLock lock(&mu_);
  self.leader = queue_.empty();
  queue_.push_back(&self);
  mu_.Await(absl::Condition(&Pending::Woken, &self));
  if (self.done) return self.status;

  // The head of the queue: write a group from it without holding mu_ (others
  // keep enqueueing), hand out the results, then make the next one leader.
  std::vector<Pending*> group = TakeGroupLocked();
  mu_.Unlock();
  uint64_t commits = 0;
  std::vector<absl::Status> results = WriteGroup(group, &commits);
  mu_.Lock();
  stats_.commits += commits;
  for (size_t i = 0; i < group.size(); ++i) {
    queue_.pop_front();
    group[i]->status = std::move(results[i]);
    group[i]->done = true;
    if (group[i]->status.ok()) ++stats_.batches;
  }
  if (!queue_.empty()) queue_.front()->leader = true;
  return self.status;
}

StoreStats GroupCommitter::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

size_t GroupCommitter::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

std::vector<GroupCommitter::Pending*> GroupCommitter::TakeGroupLocked() {
  std::vector<Pending*> group;
  size_t ops = 0;
  size_t bytes = 0;
  for (Pending* p : queue_) {
    const size_t n = p->batch->mutations().size();
    const size_t size =
        p->batch->ApproximateBytes() + n * limits_.per_op_overhead_bytes;
    if (!group.empty() &&
        ((max_batches_ != 0 && group.size() >= max_batches_) ||
         (limits_.max_ops != 0 && ops + n > limits_.max_ops) ||
         (limits_.max_bytes != 0 && bytes + size > limits_.max_bytes))) {
      break;
    }
    group.push_back(p);
    ops += n;
    bytes += size;
  }
  return group;
}

std::vector<absl::Status> GroupCommitter::WriteGroup(
    const std::vector<Pending*>& group, uint64_t* commits) {
  std::vector<const WriteBatch*> batches;
  batches.reserve(group.size());
  for (const Pending* p : group) batches.push_back(p->batch);
  absl::Status status = write_(batches);
  if (status.ok()) ++*commits;
  if (status.ok() || group.size() == 1 || shared_(status)) {
    return std::vector<absl::Status>(group.size(), status);
  }
  // Something in the group is bad; find out which batch by writing each
  // alone so the others still land.
  std::vector<absl::Status> results;
  results.reserve(group.size());
  for (const WriteBatch* batch : batches) {
    results.push_back(write_({batch}));
    if (results.back().ok()) ++*commits;
  }
  return results;
}

}  // namespace fabric::store
