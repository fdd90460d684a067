// AgentRegistry: the agents' side of the manager. Registration (sessions
// and their fencing), status reports, config stream liveness, silent
// agents, and each node's desired configuration.
//
// Not thread-safe: FabricManager owns one, guarded by its mu_, over the
// ManagerState it guards with the same lock.
#ifndef FABRIC_SERVER_SERVICE_AGENT_REGISTRY_H_
#define FABRIC_SERVER_SERVICE_AGENT_REGISTRY_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/config_digest.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/internal/records.pb.h"
#include "server/service/deadline_queue.h"
#include "server/service/manager_options.h"
#include "server/service/manager_state.h"

namespace fabric::service {

class AgentRegistry {
 public:
  // `state` and `clock` are not owned and must outlive this.
  AgentRegistry(ManagerState* state, Clock* clock,
                const ManagerOptions& options)
      : state_(state), clock_(clock), options_(options) {}

  AgentRegistry(const AgentRegistry&) = delete;
  AgentRegistry& operator=(const AgentRegistry&) = delete;

  // Registers the agent of node id `node` (validated request): a new
  // session that fences older ones. A node in no fabric is accepted too.
  // FAILED_PRECONDITION, and nothing changes, for a registration of the
  // agent instance of the current session that is not newer than it
  // (RegisterNodeRequest.attempt): a late one its agent gave up on.
  absl::StatusOr<agentproto::v1::RegisterNodeResponse> Register(
      const std::string& node, const agentproto::v1::RegisterNodeRequest& req);
  // A status report of node id `node`. FAILED_PRECONDITION when it never
  // registered, ABORTED for a fenced session, INVALID_ARGUMENT for a
  // generation from the future.
  absl::StatusOr<agentproto::v1::ReportStatusResponse> Report(
      const std::string& node, const agentproto::v1::ReportStatusRequest& req);
  // See FabricManager::ConfigStreamOpened / ConfigStreamClosed.
  absl::Status StreamOpened(const std::string& node, int64_t session);
  void StreamClosed(const std::string& node, int64_t session);
  // Told by the config stream of session `session` of node id `node` when
  // the configuration of generation `same_through` is the same as that of
  // generation `sent`, the one it last sent, so it sends the agent nothing:
  // an agent that applied `sent` holds `same_through` too, and leases that
  // waited for it settle. Ignored for a session other than the current one.
  // Costs what a report that moves the applied generation forward costs.
  void ConfigUnchanged(const std::string& node, int64_t session, int64_t sent,
                       int64_t same_through);
  // The node's complete desired configuration at the current generation;
  // empty for a node in no fabric whose agent registered.
  absl::StatusOr<agentproto::v1::DesiredConfig> DesiredConfigFor(
      absl::string_view node) const;
  // Marks agents silent past their allowance NOT_READY at `now` (and
  // forgets those of nodes in no fabric), up to `limit` of them, and
  // returns how many deadlines were due (`limit`: call again, after letting
  // go of the lock, for the rest). Costs O(due · log n) plus one pass over
  // the leases of each fabric that has silent nodes, however many went
  // silent (RefreshLeasesCrossing): the deadlines are kept in a queue, not
  // found by a scan.
  size_t SweepSilent(absl::Time now, size_t limit);

  // On recovery, before anything is served: takes each of `holdings` (by
  // node id, from the store; node_holdings.h) whose digest is that of what
  // the current generation wants of its node as that node's agent, READY
  // and holding the current generation, presumed until it registers or
  // stays silent past its allowance from now. Others (changed since, or of
  // a node in no fabric) are dropped, and their rows deleted at the next
  // save. Returns how many were taken.
  size_t Presume(const std::map<std::string, internal::NodeHolding>& holdings);

  // Checks the heartbeat queue against a scan of the agents: every READY
  // agent, and no other, has its deadline there. INTERNAL otherwise.
  absl::Status CheckTimers() const;

 private:
  // OK when `session` is 0 or `a`'s current session; else ABORTED: a newer
  // registration fenced it.
  absl::Status CheckSession(absl::string_view node, const AgentEntry& a,
                            int64_t session) const;
  // Publishes node `n` of `f` MODIFIED.
  void PublishNode(const FabricEntry& f, int n);
  // When agent `a` counts as silent: its last heartbeat plus its
  // allowance (longer while a config stream of its session is open).
  absl::Time SilentAfter(const AgentEntry& a) const;
  // Sets node `node`'s heartbeat deadline from `a` (READY), or clears it.
  // Called wherever an agent's state, heartbeat or streams change.
  void Rearm(const std::string& node, const AgentEntry& a);

  ManagerState* const state_;  // not owned
  Clock* const clock_;         // not owned
  const ManagerOptions options_;
  // The heartbeat deadline (SilentAfter) of every READY agent, by node id.
  DeadlineQueue heartbeats_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_AGENT_REGISTRY_H_
