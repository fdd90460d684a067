// GatherPolicy: how long a group commit's leader waits for more plans
// before it writes a group.
//
// A store transaction has a fixed cost (an fsync; on etcd a raft round and
// an fsync on every member) that a group shares. Under concurrency, the
// callers a commit answers come back with their next plan a moment after
// the leader has already taken the next, smaller group; on a CPU-bound
// machine each extra transaction is CPU the callers lack. The policy lets
// the leader wait a little for them:
//
//   - never after a commit of one plan: a lone caller (no concurrency seen)
//     is written at once and pays no added latency;
//   - otherwise until `goal + 1` plans are queued, or for at most
//     `fraction` of the last commit's duration (capped by `max_wait`),
//     whichever comes first;
//   - the goal grows by one each time the wait was met, and falls to what
//     was queued when it timed out, so it follows the callers there are.
//
// Not thread-safe: the CommitQueue calls it under its mutex.
#ifndef FABRIC_SERVER_SERVICE_GATHER_POLICY_H_
#define FABRIC_SERVER_SERVICE_GATHER_POLICY_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace fabric::service {

struct GatherOptions {
  // The longest wait, as a fraction of the last commit's duration; 0 never
  // waits (every group is what was queued when the leader looked).
  double fraction = 0;
  // The longest wait in any case.
  absl::Duration max_wait = absl::Milliseconds(5);
};

// The largest GatherOptions::fraction accepted: a leader waits at most as
// long as a commit takes.
inline constexpr double kMaxGatherFraction = 1.0;

// The fraction fabric-manager uses on etcd (--commit-gather=auto).
// fabric-bench --store etcd, 3 members on 2 cores: at 32 clients 13 plans
// per transaction without a wait, 22 with 0.5 (throughput x1.13-1.24; 30
// with 1.0, no faster), at 8 clients 3.4 and 7.6 (x1.4); a lone caller
// never waits.
inline constexpr double kEtcdCommitGather = 0.5;

// OK, or INVALID_ARGUMENT naming the field and its limit: fraction outside
// [0, kMaxGatherFraction], a negative max_wait.
absl::Status ValidateGatherOptions(const GatherOptions& options);

class GatherPolicy {
 public:
  // What the leader waits for: until `queued` plans are queued, for at most
  // `at_most`. A zero `at_most` means take the group now.
  struct Wait {
    size_t queued = 0;
    absl::Duration at_most = absl::ZeroDuration();
  };

  explicit GatherPolicy(GatherOptions options) : options_(options) {}

  // The wait before taking a group from a queue of `queued` plans.
  Wait Before(size_t queued) const;
  // After a wait that Before asked for: whether its count was reached
  // (`met`) and how many plans were queued when it ended.
  void Waited(bool met, size_t queued);
  // After a commit of `plans` plans that took `took`.
  void Committed(size_t plans, absl::Duration took);

  size_t goal() const { return goal_; }

 private:
  const GatherOptions options_;
  size_t last_group_ = 0;
  absl::Duration last_commit_ = absl::ZeroDuration();
  // The group size the policy expects; a wait asks for one more.
  size_t goal_ = 1;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_GATHER_POLICY_H_
