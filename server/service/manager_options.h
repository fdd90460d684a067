// ManagerOptions: the manager's tunables, and their validation.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_OPTIONS_H_
#define FABRIC_SERVER_SERVICE_MANAGER_OPTIONS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/service/gather_policy.h"

namespace fabric::service {

// Told of every group commit: how many plans it held, how long the store's
// Apply took and how it ended. Called on the committing thread, without the
// manager's lock; must be fast and thread-safe (ManagerMetrics).
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  virtual void OnCommit(int plans, absl::Duration took,
                        const absl::Status& status) = 0;
};

struct ManagerOptions {
  // Told of every group commit (metrics); null: nobody. Not owned; must
  // outlive the manager.
  CommitObserver* commit_observer = nullptr;
  // An agent whose last ReportStatus is older than this is NOT_READY,
  // unless its config stream is open (see stream_grace).
  absl::Duration heartbeat_timeout = absl::Seconds(3);
  // While an agent's config stream is open, its transport is known to be
  // alive: the server's keepalive pings end the stream of a peer that stops
  // answering (ServerOptions), and a killed agent's stream ends at once. A
  // late heartbeat then (an agent starved of CPU) does not make the node
  // NOT_READY until its last report is this old. Never less than
  // heartbeat_timeout.
  absl::Duration stream_grace = absl::Seconds(30);
  // How often agents are asked to report.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // How often leases, heartbeats and old request records are swept; zero
  // disables the background sweeper (tests call Sweep() themselves).
  absl::Duration sweep_interval = absl::Milliseconds(200);
  // How long request ids are remembered.
  absl::Duration request_retention = absl::Hours(24);
  // How many request ids are remembered at most: once more are recorded,
  // the oldest completed ones are forgotten (in memory and in the store, in
  // the batch that records the new id), so memory stays bounded between
  // sweeps too. Each remembered id costs about 0.9 KiB of heap (measured by
  // RequestIdHeapCost in manager_test.cc; its store row is on disk), so the
  // default bounds them to about 90 MiB while still covering ~20 s of the
  // highest request rate measured (~4,600 ids/s, 400 clients on 2 cores),
  // longer than a client's retry window (the overload bench's clients retry
  // for at most ~15 s). 1 to kMaxRequestIdsLimit.
  int64_t max_request_ids = 100000;
  // How long a group commit's leader may wait for more plans once
  // commits hold more than one (GatherPolicy; fabric-manager
  // --commit-gather). Off by default; the manager turns it on for etcd,
  // whose transactions cost a raft round and an fsync on every member.
  GatherOptions commit_gather;
};

// The largest ManagerOptions::max_request_ids accepted.
inline constexpr int64_t kMaxRequestIdsLimit = 100000000;

// OK, or INVALID_ARGUMENT naming the flag and the rule: max_request_ids out
// of range; a heartbeat_timeout shorter than two heartbeat_intervals (one
// late heartbeat would make a live node NOT_READY: nodes would flap);
// non-positive durations; commit_gather out of range
// (ValidateGatherOptions). Defined in validate.cc.
absl::Status ValidateManagerOptions(const ManagerOptions& options);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_OPTIONS_H_
