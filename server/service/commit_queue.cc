#include "server/service/commit_queue.h"

#include <iterator>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/store/batch_limits.h"

namespace fabric::service {
namespace {

// Old request ids a new one may forget in its own batch; more than one, so
// that a backlog (a failed delete, a lowered cap) is caught up with.
constexpr size_t kForgetPerRequest = 16;
// Bounds one transaction; the rest waits for the next round.
constexpr size_t kMaxGroup = 1024;

}  // namespace

CommitQueue::CommitQueue(store::Store* store, Clock* clock, absl::Mutex* mu,
                         const ManagerOptions& options)
    : store_(store),
      clock_(clock),
      observer_(options.commit_observer),
      mu_(mu),
      requests_(options.max_request_ids, options.request_retention),
      gather_(options.commit_gather) {}

void CommitQueue::MutateAsync(
    absl::string_view method, absl::string_view request_id,
    const google::protobuf::Message& request,
    const std::function<absl::StatusOr<Plan>()>& plan_fn,
    Done<std::string> done) {
  if (request_id.size() > kMaxRequestIdLength) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "request_id: ", request_id.size(), " characters is over the limit of ",
        kMaxRequestIdLength)));
    return;
  }
  const RequestDigest fingerprint = request_id.empty()
                                       ? RequestDigest{}
                                       : DigestOf(Fingerprint(request));
  absl::Status early;
  // A retry of a completed request: its answer is read from its row.
  bool recorded = false;
  std::string recorded_key;  // its row's
  bool lead = false;
  const store::StoreLimits limits = store_->limits();
  {
    absl::MutexLock l(mu_);
    if (closed_) {
      early = absl::UnavailableError("the manager is shutting down");
    } else if (!request_id.empty()) {
      if (PendingRequest* prior = requests_.Find(request_id)) {
        if (*prior->method != method || prior->fingerprint != fingerprint) {
          early = absl::InvalidArgumentError(absl::StrCat(
              "request_id: \"", request_id,
              "\" was already used for a different ", *prior->method,
              " request; use a new id for a new request"));
        } else if (prior->done) {
          recorded = true;
          recorded_key = RequestLog::RowKey(*prior);
        } else {
          // In flight: answered together with the first attempt.
          prior->AddWaiter(std::move(done));
          return;
        }
      }
    }
    if (early.ok() && !recorded) {
      absl::StatusOr<Plan> plan = plan_fn();
      if (!plan.ok()) {
        early = plan.status();
      } else {
        QueuedPlan q{*std::move(plan),
                     nullptr,
                     std::string(request_id),
                     std::move(done),
                     {},
                     {}};
        if (!request_id.empty()) {
          q.pending = requests_.Record(q.request_id, method, fingerprint,
                                       clock_->Now());
          q.plan.batch.Put(kTableRequests,
                           RequestLog::RowKey(*q.pending),
                           RequestLog::Row(*q.pending, q.plan.response));
          // Keeps the number of ids bounded between sweeps: the ids this
          // one pushes over max_request_ids (or past retention) are
          // forgotten in the same atomic batch, so memory and store never
          // disagree, whatever becomes of the write.
          q.forget =
              TakeForgetsThatFit(q.pending->time(), limits, q.plan.batch);
        }
        absl::Status fits = store::CheckFits(q.plan.batch, limits);
        if (fits.ok() && !q.plan.tail.empty()) {
          if (store::FitsIn(limits,
                            q.plan.batch.mutations().size() +
                                q.plan.tail.mutations().size(),
                            q.plan.batch.ApproximateBytes() +
                                q.plan.tail.ApproximateBytes())) {
            q.plan.batch.Append(std::move(q.plan.tail));  // one transaction
          } else {
            absl::StatusOr<std::vector<store::WriteBatch>> chunks =
                store::SplitToFit(std::move(q.plan.tail), limits);
            if (chunks.ok()) {
              q.tail_chunks = *std::move(chunks);
            } else {
              fits = chunks.status();
            }
          }
          q.plan.tail = store::WriteBatch();
        }
        if (!fits.ok()) {
          // Too large for one transaction even alone: undone at once (it
          // is the last plan made, so reverse order holds) and refused.
          if (q.plan.rollback) q.plan.rollback();
          requests_.Restore(std::move(q.forget));
          // Nothing waits on it yet: the lock was held since Record.
          if (q.pending != nullptr) requests_.Abandon(q.pending);
          done = std::move(q.done);
          early = std::move(fits);
        } else {
          queue_.push_back(std::move(q));
          if (committing_) return;  // the leader commits it with its group
          committing_ = true;
          lead = true;
        }
      }
    }
  }
  if (lead) {
    // Leader/follower: the first caller to find no commit in progress
    // writes every queued plan (its own first), in groups, then finishes
    // their calls; the others return at once.
    LeadCommits();
  } else if (!early.ok()) {
    done(early);
  } else {
    done(RecordedAnswer(request_id, recorded_key, fingerprint));
  }
}

absl::StatusOr<std::string> CommitQueue::RecordedAnswer(
    absl::string_view request_id, absl::string_view row_key,
    const RequestDigest& fingerprint) {
  absl::StatusOr<std::string> row = store_->Get(kTableRequests, row_key);
  absl::StatusOr<std::string> answer =
      row.ok() ? RequestLog::RecordedAnswer(*row, fingerprint) : row.status();
  if (absl::IsNotFound(answer.status())) {
    // Being forgotten right now (its row deleted, the log not yet told):
    // a retry after that is a new request.
    return absl::UnavailableError(absl::StrCat(
        "request_id: \"", request_id,
        "\" is being forgotten (past --request-retention or over "
        "--max-request-ids); retry"));
  }
  return answer;
}

absl::StatusOr<std::string> CommitQueue::Mutate(
    absl::string_view method, absl::string_view request_id,
    const google::protobuf::Message& request,
    const std::function<absl::StatusOr<Plan>()>& plan_fn) {
  return AwaitResult<std::string>([&](Done<std::string> done) {
    MutateAsync(method, request_id, request, plan_fn, std::move(done));
  });
}

std::vector<RequestSlot> CommitQueue::TakeForgetsThatFit(
    absl::Time now, const store::StoreLimits& limits,
    store::WriteBatch& batch) {
  std::vector<RequestSlot> forget =
      requests_.TakeToForget(now, kForgetPerRequest);
  // Only as many as fit beside the plan in one transaction; the others
  // wait for a later id or the sweep.
  size_t ops = batch.mutations().size();
  size_t bytes = batch.ApproximateBytes();
  size_t kept = 0;
  for (; kept < forget.size(); ++kept) {
    std::string key = RequestLog::RowKey(*forget[kept].request);
    const size_t more = sizeof(kTableRequests) - 1 + key.size();
    if (!store::FitsIn(limits, ops + 1, bytes + more)) break;
    ++ops;
    bytes += more;
    batch.Delete(kTableRequests, std::move(key));
  }
  requests_.Restore(
      std::vector<RequestSlot>(std::make_move_iterator(forget.begin() + kept),
                               std::make_move_iterator(forget.end())));
  forget.resize(kept);
  return forget;
}

CommitQueue::Replies CommitQueue::CommitGroup(std::vector<QueuedPlan> group) {
  // The plans' batches are not needed once written: moved, not copied.
  store::WriteBatch merged;
  for (QueuedPlan& q : group) merged.Append(std::move(q.plan.batch));
  const absl::Time start = clock_->Now();
  absl::Status written = store_->Apply(merged);
  const absl::Duration took = clock_->Now() - start;
  if (observer_ != nullptr) {
    observer_->OnCommit(static_cast<int>(group.size()), took, written);
  }
  if (!written.ok() && absl::IsUnavailable(written)) {
    written = absl::UnavailableError(absl::StrCat(
        "the store cannot be written, nothing was changed; retry later: ",
        written.message()));
  }
  // Tails cut into transactions of their own, in planning order; a plan
  // whose tail failed neither commits nor rolls back (see Plan).
  std::vector<absl::Status> tails(group.size());
  for (size_t i = 0; written.ok() && i < group.size(); ++i) {
    for (const store::WriteBatch& chunk : group[i].tail_chunks) {
      tails[i] = store_->Apply(chunk);
      if (!tails[i].ok()) {
        tails[i] = absl::UnavailableError(absl::StrCat(
            "the store failed part-way through this change (",
            group[i].tail_chunks.size() + 1,
            " transactions); what was written is finished by a retry or by "
            "the manager's next start: ",
            tails[i].message()));
        break;
      }
    }
  }
  Replies replies;
  absl::MutexLock l(mu_);
  gather_.Committed(group.size(), took);
  if (written.ok()) {
    for (size_t i = 0; i < group.size(); ++i) {
      QueuedPlan& q = group[i];
      if (!tails[i].ok()) {
        requests_.Forget(q.forget);
        if (q.pending != nullptr) {
          for (auto& w : requests_.Abandon(q.pending))
            replies.emplace_back(std::move(w), tails[i]);
        }
        replies.emplace_back(std::move(q.done), tails[i]);
        continue;
      }
      if (q.plan.commit) q.plan.commit();
      requests_.Forget(q.forget);
      if (q.pending != nullptr) {
        for (auto& w : requests_.Complete(q.pending))
          replies.emplace_back(std::move(w), q.plan.response);
      }
      replies.emplace_back(std::move(q.done), std::move(q.plan.response));
    }
  } else {
    // Undo in reverse order of planning.
    for (auto it = group.rbegin(); it != group.rend(); ++it) {
      if (it->plan.rollback) it->plan.rollback();
      requests_.Restore(std::move(it->forget));
      if (it->pending != nullptr) {
        for (auto& w : requests_.Abandon(it->pending))
          replies.emplace_back(std::move(w), written);
      }
      replies.emplace_back(std::move(it->done), written);
    }
  }
  return replies;
}

void CommitQueue::LeadCommits() {
  for (;;) {
    std::vector<QueuedPlan> group;
    {
      absl::MutexLock l(mu_);
      if (queue_.empty()) {
        committing_ = false;
        return;
      }
      const GatherPolicy::Wait wait = gather_.Before(queue_.size());
      if (wait.at_most > absl::ZeroDuration()) {
        struct Gathered {
          CommitQueue* q;
          size_t plans;
        } gathered{this, wait.queued};
        const bool met = mu_->AwaitWithTimeout(
            absl::Condition(
                +[](Gathered* g) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                  // Await holds mu_ while it evaluates the condition.
                  return g->q->closed_ || g->q->queue_.size() >= g->plans;
                },
                &gathered),
            wait.at_most);
        gather_.Waited(met && queue_.size() >= wait.queued, queue_.size());
      }
      // As many plans as fit the store's limits together (each fits
      // alone: MutateAsync refused the others).
      const store::StoreLimits limits = store_->limits();
      size_t ops = 0;
      size_t bytes = 0;
      while (!queue_.empty() && group.size() < kMaxGroup) {
        const store::WriteBatch& next = queue_.front().plan.batch;
        ops += next.mutations().size();
        bytes += next.ApproximateBytes();
        if (!group.empty() && !store::FitsIn(limits, ops, bytes)) break;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Replies replies = CommitGroup(std::move(group));
    for (auto& [done, result] : replies) done(std::move(result));
  }
}

bool CommitQueue::Close() {
  absl::MutexLock l(mu_);
  if (closed_) return false;
  closed_ = true;
  // A leader may still be writing what was planned before; let it finish.
  mu_->Await(absl::Condition(
      +[](CommitQueue* q)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) { return !q->committing_; },
      this));
  return true;
}

size_t CommitQueue::RememberedRequestIds() const {
  absl::MutexLock l(mu_);
  return requests_.size();
}

void CommitQueue::ForgetOldRequests(absl::Time now, size_t limit) {
  std::vector<RequestSlot> old;
  store::WriteBatch batch;
  {
    absl::MutexLock l(mu_);
    old = requests_.TakeToForget(now, limit);
    for (const RequestSlot& r : old) {
      batch.Delete(kTableRequests, RequestLog::RowKey(*r.request));
    }
  }
  if (old.empty()) return;
  // In chunks that fit the store's limits; each chunk's ids are forgotten
  // once its delete is durable.
  auto chunks = store::SplitToFit(std::move(batch), store_->limits());
  size_t deleted = 0;
  if (chunks.ok()) {
    for (const store::WriteBatch& chunk : *chunks) {
      if (!store_->Apply(chunk).ok()) break;
      deleted += chunk.mutations().size();
    }
  }
  std::vector<RequestSlot> left(std::make_move_iterator(old.begin() + deleted),
                                std::make_move_iterator(old.end()));
  old.resize(deleted);
  absl::MutexLock l(mu_);
  requests_.Forget(old);
  // Still remembered in the store, so in memory too; the next sweep (or the
  // next new id) tries again.
  requests_.Restore(std::move(left));
}

}  // namespace fabric::service
