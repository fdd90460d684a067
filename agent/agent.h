// The node agent: registers its node with the manager, follows the desired
// configuration stream, applies each generation through the hardware layer,
// reports, heartbeats, repairs drift and serves the host's data path.
//
//   std::unique_ptr<hw::BridgeHardware> bridge = ...;   // sim or linux
//   Agent agent(options, bridge.get(), inventory);
//   agent.Start();            // serves NodeAgentService, connects
//   ...
//   agent.Stop();
//
// The Agent only wires its parts together, over mutual TLS with its node
// certificate (options.tls; plaintext only with tls.insecure):
//   Reconciler        (reconciler.h)          the hardware, kept at the
//                                             desired configuration
//   ManagerSession    (manager_session.h)     register, stream, report
//   NodeAgentService  (node_agent_service.h)  the data path, served with
//                                             the policy's AuthProcessor
//   GrantGuard        (grant_guard.h)         what the data path may touch
//   VfLending         (vf_lending.h)          lender and borrower roles
//   AgentMetrics      (agent_metrics.h)       what they all record
//
// Thread-safe.
#ifndef FABRIC_AGENT_AGENT_H_
#define FABRIC_AGENT_AGENT_H_

#include <grpcpp/server.h>

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "agent/agent_metrics.h"
#include "agent/grant_guard.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/manager_session.h"
#include "agent/node_agent_service.h"
#include "agent/reconciler.h"
#include "agent/vf_lending.h"
#include "common/clock.h"
#include "common/security/policy.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {

struct AgentOptions : ManagerSessionOptions, ReconcilerOptions {
  // The reconciler's time: when retries and drift checks are due. Not
  // owned; must outlive the agent. Tests pass a ManualClock.
  Clock* clock = Clock::Real();
  // Who may call which NodeAgentService method (deny by default): the
  // server's AuthProcessor applies it to every call over TLS. Ignored when
  // tls.insecure (no identities).
  security::Policy policy = security::Policy::Default();
};

// fabric-agent's exit code after it was fenced; the systemd unit does not
// restart on it (RestartPreventExitStatus), so two agents never take one
// node from each other in turns.
inline constexpr int kExitFenced = 3;

// What the agent has done; a snapshot of its parts' stats.
struct AgentStats : ReconcileStats, SessionStats {};

class Agent {
 public:
  // `hardware` and `functions` (the host's SR-IOV functions it can lend;
  // null for none) are not owned and must outlive the agent.
  Agent(AgentOptions options, hw::BridgeHardware* hardware,
        v1::NodeInventory inventory,
        hw::SriovFunctions* functions = nullptr);
  ~Agent();

  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Starts serving the data path, the connection loop and the reconciler.
  // UNAVAILABLE if the listen address cannot be bound. The caller has
  // checked options.tls (CheckAgentSecurity, agent/agent_identity.h).
  absl::Status Start();
  // Disconnects and stops every thread; idempotent.
  void Stop();

  // The bound NodeAgentService port (after Start).
  int control_port() const { return control_port_; }
  AgentStats stats() const;
  // What the agent's parts record, for its /metrics (agent_metrics.h).
  const AgentMetrics& metrics() const { return metrics_; }

 private:
  const AgentOptions options_;
  AgentMetrics metrics_;
  Reconciler reconciler_;
  GrantGuard grants_;
  std::unique_ptr<VfLending> vf_;
  std::unique_ptr<ManagerSession> session_;
  NodeAgentService control_;
  std::unique_ptr<grpc::Server> control_server_;
  int control_port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_AGENT_H_
