// Leader election among managers that share one etcd prefix (issue 14),
// through etcd's own lease and Election API:
//
//   1. LeaseGrant(ttl); the lease is kept alive on a LeaseKeepAlive stream
//      every ttl/3.
//   2. Election.Campaign(name = PREFIX/leader, lease, value = this manager's
//      address) blocks until this manager leads; its LeaderKey (key and
//      creation revision) is the Fence every write is conditioned on
//      (EtcdStore::SetFence).
//   3. Election.Observe tells every manager who leads (the value is the
//      leader's address), for standbys to name or forward to.
//   4. Resign on a clean shutdown; otherwise the lease expires ttl after the
//      last keep-alive and another manager's Campaign returns.
//
// Losing leadership (a keep-alive answered with TTL 0 or failing past the
// TTL, unless on_unreachable is set, or the observed leader key no longer
// being ours) calls on_lost once,
// after which is_leader() is false; a deposed leader cannot write anyway,
// since its fence compare fails. It may Campaign again.
//
// Thread-safe. The callbacks run on the election's own threads, one at a
// time and in order (on_elected and on_lost alternate; on_unreachable and
// on_reachable alternate between them), must not block for
// long, and must not call Resign() or destroy the election. The destructor
// calls none of them.
#ifndef FABRIC_SERVER_HA_LEADER_ELECTION_H_
#define FABRIC_SERVER_HA_LEADER_ELECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/etcd/etcd_client.h"
#include "server/store/etcd/etcd_store.h"

namespace fabric::ha {

struct ElectionOptions {
  store::EtcdClientOptions client;
  std::string prefix;  // as store::EtcdUrl::prefix; the election is PREFIX/leader
  // This manager's address as clients should dial it ("HOST:PORT").
  std::string address;
  // The lease TTL; etcd rounds to whole seconds, minimum 1.
  absl::Duration ttl = absl::Seconds(2);
};

// Who leads, as etcd says.
struct LeaderInfo {
  std::string address;      // the leader's ElectionOptions::address
  std::string key;          // its election key
  int64_t create_revision;  // the key's creation revision
  int64_t lease;            // its lease id
};

class LeaderElection {
 public:
  struct Callbacks {
    // This manager now leads, with this fence.
    std::function<void(const store::Fence&)> on_elected;
    // This manager no longer leads (see above).
    std::function<void()> on_lost;
    // The leader changed (nullopt: none right now), as Observe reports it;
    // also for this manager's own election.
    std::function<void(const std::optional<LeaderInfo>&)> on_leader;
    // Optional, together. When set, a leader whose keep-alives fail (etcd
    // unreachable or without quorum: `cause` is etcd's error) for a whole
    // TTL is not deposed: on_unreachable runs once, it keeps its key (and
    // fence) and goes on sending keep-alives on the same lease. Once one is
    // answered with the lease alive and the key is still ours, on_reachable
    // runs; a keep-alive answered with TTL 0, a key no longer ours or a
    // newer key observed deposes it (on_lost). Unset: such a leader is
    // deposed after the TTL (on_lost). A leader without quorum cannot
    // commit either way: its fenced writes fail.
    std::function<void(const absl::Status& cause)> on_unreachable;
    std::function<void()> on_reachable;
  };

  // Grants the lease, starts keeping it alive and observing, and starts
  // campaigning in the background. Errors: INVALID_ARGUMENT for bad options
  // (empty address, ttl under 1 s); UNAVAILABLE when etcd does not answer.
  static absl::StatusOr<std::unique_ptr<LeaderElection>> Start(
      const ElectionOptions& options, Callbacks callbacks);

  // Resigns if leading, revokes the lease, stops every thread.
  virtual ~LeaderElection() = default;

  virtual bool is_leader() const = 0;
  // The fence while leading; nullopt otherwise.
  virtual std::optional<store::Fence> fence() const = 0;
  // The last leader Observe reported; nullopt when none.
  virtual std::optional<LeaderInfo> leader() const = 0;
  // This manager's lease id.
  virtual int64_t lease() const = 0;

  // Gives leadership up (the key is deleted; another Campaign returns) and
  // does not campaign again. Idempotent.
  virtual absl::Status Resign() = 0;

  // Tests only: while paused, no keep-alive is sent, as if this process
  // were stopped (SIGSTOP); the lease expires a TTL after the last one and
  // this manager notices on its own, as a paused one does once it wakes.
  // A no-op for implementations without keep-alives.
  virtual void SetKeepAlivePausedForTesting(bool paused) {}
};

}  // namespace fabric::ha

#endif  // FABRIC_SERVER_HA_LEADER_ELECTION_H_
