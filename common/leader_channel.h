// Managers in HA mode (issue 14): how a standby names the leader, and how a
// client follows it over a list of manager addresses.
//
// The contract (server/ha/standby_server.h answers it): a standby manager
// refuses every call of the fabric, agent and hypervisor services with
// UNAVAILABLE, the message StandbyMessage(leader), and the trailing metadata
// kLeaderMetadataKey = "HOST:PORT" of the leader (absent while none is
// elected). A standby never applies anything, so its answer is never a
// partial effect. We name the leader rather than forwarding to it: a client
// reaches the leader directly from then on, and a standby holds no state.
//
//   auto targets = ParseManagerList("--server", "m1:7070,m2:7070");
//   LeaderChannel leader(*targets, [&](const std::string& t) {
//     return grpc::CreateChannel(t, creds);
//   });
//   grpc::Status s = leader.Call(
//       [&](const LeaderChannel::Endpoint& e, grpc::ClientContext& ctx) {
//         return Stub(e.channel)->GetNode(&ctx, req, &resp);
//       },
//       /*retry_safe=*/true);
#ifndef FABRIC_COMMON_LEADER_CHANNEL_H_
#define FABRIC_COMMON_LEADER_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fabric {

// The trailing metadata key a standby puts the leader's HOST:PORT in.
inline constexpr char kLeaderMetadataKey[] = "fabric-leader";

// "this manager is a standby; the leader is HOST:PORT", or "...; no leader
// is elected yet" for nullopt.
std::string StandbyMessage(const std::optional<std::string>& leader);

// True when `status` is a standby's answer (UNAVAILABLE with the message
// StandbyMessage starts with).
bool IsStandbyAnswer(const grpc::Status& status);

// The leader a standby named in the trailing metadata of a finished call
// (nullopt when there is none).
std::optional<std::string> LeaderOf(const grpc::ClientContext& ctx);

// Parses a comma-separated list of HOST:PORT ("a:1,b:2"; spaces around the
// commas are allowed). Errors: INVALID_ARGUMENT starting with `flag`, for an
// empty entry, an address ParseHostPort refuses or port 0 (a single address
// gets ParseHostPort's own messages).
// Duplicates are dropped; the order is kept.
absl::StatusOr<std::vector<std::string>> ParseManagerList(
    absl::string_view flag, absl::string_view text);

// A set of manager addresses, one of them current (where calls go), that
// follows the leader: a call answered by a standby that names the leader
// moves to the leader (dialled on first use, and added to the set when it
// was not in the list); a call answered by a standby that names no leader,
// or that found its manager unreachable, moves to the next address.
//
// Thread-safe. Channels are dialled once per address and kept.
class LeaderChannel {
 public:
  using Dial =
      std::function<std::shared_ptr<grpc::Channel>(const std::string& target)>;

  struct Endpoint {
    std::string target;
    std::shared_ptr<grpc::Channel> channel;
  };

  // `targets`: at least one HOST:PORT (ParseManagerList); the first is
  // current.
  LeaderChannel(std::vector<std::string> targets, Dial dial);

  // Where calls go now.
  Endpoint Current() ABSL_LOCKS_EXCLUDED(mu_);
  // Every address known (the list given, then leaders learned), in order.
  std::vector<std::string> targets() const ABSL_LOCKS_EXCLUDED(mu_);

  // Makes one call by running `attempt` with the current endpoint and a
  // fresh context (`attempt` sets its deadline, which may be shorter than
  // the call's `deadline`). When it fails with UNAVAILABLE from a standby or
  // an unreachable manager, or with DEADLINE_EXCEEDED before `deadline` (the
  // attempt's own deadline passed: the manager answers nothing, as a paused
  // one), the current endpoint moves as Observe says, and when `retry_safe`
  // (a read, or a mutation that carries a request id) the call is made again
  // there. It is also made again on the same endpoint when that manager is
  // between standby and leader (IsSwitching). At most once per known
  // address, plus once more after a leader was named. Otherwise, and for
  // every other status, returns the status of the last attempt. `last`,
  // when given, is set to the endpoint of the last attempt.
  grpc::Status Call(
      absl::FunctionRef<grpc::Status(const Endpoint&, grpc::ClientContext&)>
          attempt,
      bool retry_safe, Endpoint* last = nullptr,
      absl::Time deadline = absl::InfiniteFuture()) ABSL_LOCKS_EXCLUDED(mu_);

  // For callers that make their calls themselves (streams, agents): after a
  // call on `tried` finished with `status` (and `ctx`'s trailing metadata),
  // moves the current endpoint as Call does and returns it; `tried` itself
  // when the status says nothing about where the leader is (then the current
  // endpoint is left as it is), or when it says the leader is `tried`
  // itself (IsSwitching). A DEADLINE_EXCEEDED (the manager did not answer
  // within the caller's deadline: paused, or its host is gone) moves to the
  // next address: a manager that answers nothing is not followed.
  Endpoint Observe(const Endpoint& tried, const grpc::Status& status,
                   const grpc::ClientContext& ctx) ABSL_LOCKS_EXCLUDED(mu_);

  // Whether another manager of the set still names `slow` the leader, for a
  // caller whose call on `slow` passed its deadline: a leader that is only
  // slow (overloaded) keeps its election lease and stays the leader, so the
  // caller keeps its session with it; a paused or partitioned one loses the
  // lease, and its successor (or a standby naming it) says so. Asks each
  // other known address in turn with `probe` (a call that a standby refuses
  // with the leader's name and that is harmless on a leader; the probe sets
  // its own deadline) until one says who leads: true when a standby names
  // `slow.target`; false when one names another manager or answers as the
  // leader itself, and when none says (all unreachable, or no leader
  // elected). Does not move the current endpoint.
  bool OthersNameAsLeader(
      const Endpoint& slow,
      absl::FunctionRef<grpc::Status(const Endpoint&, grpc::ClientContext&)>
          probe) ABSL_LOCKS_EXCLUDED(mu_);

  // True when a call on `tried` that ended with `status` (and `ctx`'s
  // trailing metadata) met the manager switching from standby to leader:
  // a standby answer naming `tried` itself as the leader (its election is
  // won and its leader's server is starting), or CANCELLED (a server
  // shutting down ended the call: the standby's, as it hands the port to
  // the leader's server). Trying the same manager again soon reaches the
  // leader.
  static bool IsSwitching(const Endpoint& tried, const grpc::Status& status,
                          const grpc::ClientContext& ctx);

 private:
  Endpoint EndpointLocked(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves current to `leader` (adding it) when current is still `from`.
  Endpoint Follow(const std::string& from, const std::string& leader)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Moves current to the address after `from`, when current is still `from`.
  Endpoint Advance(const std::string& from) ABSL_LOCKS_EXCLUDED(mu_);

  const Dial dial_;
  mutable absl::Mutex mu_;
  std::vector<std::string> targets_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric

#endif  // FABRIC_COMMON_LEADER_CHANNEL_H_
