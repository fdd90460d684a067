// The agent's side of the AgentService protocol: registers the node with
// the manager, follows the desired-configuration stream and hands each
// configuration to the Reconciler, reports status (after each
// configuration, on every heartbeat and soon after RequestReport()), and
// reconnects with backoff until Stop() or until a newer agent for the node
// fences this one.
//
//   ManagerSession session(options, inventory, &reconciler, vf, clock);
//   session.Start(control_port);   // connects on a thread of its own
//   ...
//   session.Stop();
//
// Thread-safe.
#ifndef FABRIC_AGENT_MANAGER_SESSION_H_
#define FABRIC_AGENT_MANAGER_SESSION_H_

#include <grpcpp/client_context.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "common/leader_channel.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/agent_metrics.h"
#include "agent/grant_guard.h"
#include "agent/reconciler.h"
#include "agent/report_schedule.h"
#include "agent/vf_lending.h"
#include "common/clock.h"
#include "common/security/tls.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {

struct ManagerSessionOptions {
  // HOST:PORT of fabric-manager, or a comma-separated list of the managers
  // of an HA fabric: the agent registers with their leader
  // (common/leader_channel.h).
  std::string manager_address;
  // This agent's certificate, key and CA (or --insecure). The session dials
  // the manager with it and accepts any manager identity at the other end;
  // the Agent also serves NodeAgentService and dials lenders with it.
  security::TlsConfig tls;
  std::string node;             // this node's name in the fabric
  std::string backend;          // "sim" or "linux", reported to the manager
  // Where NodeAgentService listens; port 0 picks one.
  std::string listen = "127.0.0.1:0";
  // The NodeAgentService address other hosts and the manager dial
  // (HOST:PORT). Empty: the listen address when its host is specific; for a
  // wildcard listen host (0.0.0.0, [::]) the manager uses the address it
  // sees this agent's connection come from, with the bound port.
  std::string advertise;
  // With several managers, the deadline of a registration and of a status
  // report: a manager that answers nothing in this time is left for the
  // next one, which names the new leader, unless the others still name it
  // the leader (it holds its lease, so it is slow, not paused): then the
  // agent keeps its session and waits for it. One manager: 5 s, and the
  // agent waits for it.
  absl::Duration attempt_timeout = absl::Seconds(2);
  // Reconnect backoff: doubles from initial to max, with jitter.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Called once, from the connection thread, when a newer registration of
  // this node (another agent) fenced this one: the agent has stopped
  // reconnecting and touching the hardware. `why` is the manager's word.
  // The program should exit (fabric-agent exits with kExitFenced).
  std::function<void(const std::string& why)> on_fenced;
};

// What the session has done; a snapshot.
struct SessionStats {
  // Configurations the stream delivered that a newer one replaced before
  // they were applied.
  int64_t superseded = 0;
  int64_t sessions = 0;  // successful registrations
  // A newer registration of this node fenced this agent (see
  // ManagerSessionOptions::on_fenced), and the manager's reason.
  bool fenced = false;
  std::string fence_reason;
};

// The control address the agent registers: options.advertise, else the
// listen host with `bound_port`, else (wildcard listen host) ":PORT", which
// the manager completes with the host it sees the connection come from.
std::string ControlAddress(const ManagerSessionOptions& options,
                           int bound_port);

// `text` with every byte that is not part of a valid UTF-8 sequence (RFC
// 3629) written as \xNN; valid text is returned unchanged. Protobuf refuses
// a string field that is not UTF-8 and with it the whole message, so every
// string the agent reports passes through this.
std::string ValidUtf8(absl::string_view text);

class ManagerSession {
 public:
  // `reconciler`, `vf`, `clock` (the reconciler's, for the time to the
  // next retry in reports) and `grants` are not owned and must outlive the
  // session. `grants` (may be null) is given each configuration before it
  // is applied, so what a configuration no longer grants is refused on the
  // data path before the hardware changes. `metrics` (may be null; not
  // owned) counts the sessions re-established after the first.
  ManagerSession(ManagerSessionOptions options, v1::NodeInventory inventory,
                 Reconciler* reconciler, VfLending* vf, const Clock* clock,
                 GrantGuard* grants = nullptr, AgentMetrics* metrics = nullptr);
  ~ManagerSession();

  ManagerSession(const ManagerSession&) = delete;
  ManagerSession& operator=(const ManagerSession&) = delete;

  // Starts the connection loop; `control_port` is the bound
  // NodeAgentService port it registers (see ControlAddress). At most once.
  void Start(int control_port);
  // Cancels the open call, disconnects and joins the loop; idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Asks for a status report now, ahead of the next heartbeat: the
  // heartbeat thread wakes and sends it (while a session is open; else the
  // next session's first heartbeat does).
  void RequestReport() { reports_.Request(); }

  SessionStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void ConnectionLoop();
  // One session with the manager at `endpoint`: register, then follow the
  // stream until it breaks or Stop(). Returns whether it registered. A
  // refused registration tells `leader` where to go next (a standby names
  // the leader).
  bool Session(agentproto::v1::AgentService::Stub* stub,
               const LeaderChannel::Endpoint& endpoint, LeaderChannel* leader)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Reports whenever reports_ says one is due, until it is stopped. With
  // several managers, a report the manager does not answer in time ends
  // the session (sets *unanswered): the loop moves on to the next manager.
  // With several managers, a report the manager does not answer in time
  // while the others still name it the leader (LateButLeading) is only late:
  // the session goes on.
  void HeartbeatLoop(agentproto::v1::AgentService::Stub* stub,
                     const LeaderChannel::Endpoint& endpoint,
                     LeaderChannel* leader, std::atomic<bool>* unanswered)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `call` (e.g. "a status report") on `slow`, which ended with
  // `status`, was only late: with several managers, it passed
  // attempt_timeout while the other managers still name `slow` the leader
  // (LeaderChannel::OthersNameAsLeader, probing with an empty ReportStatus
  // of this node, which a standby refuses and a leader that has no session
  // of it refuses too). A leader that is overloaded keeps its election
  // lease; one that is paused or cut off loses it within the lease TTL, and
  // then a standby names another. When true and `log`, says so, and that
  // the agent is `then`.
  bool LateButLeading(const grpc::Status& status,
                      const LeaderChannel::Endpoint& slow,
                      LeaderChannel* leader, absl::string_view call,
                      absl::string_view then, bool log);
  // The deadline of a registration or report from now (attempt_timeout with
  // several managers).
  std::chrono::system_clock::time_point Deadline() const;
  agentproto::v1::ReportStatusRequest StatusReport() const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records that the manager refused this agent's session with ABORTED (a
  // newer registration fenced it), fences the reconciler and ends the
  // session; idempotent.
  void Fence(const grpc::Status& why) ABSL_LOCKS_EXCLUDED(mu_);
  // The digest of what the node's bridge holds, for RegisterNodeRequest and
  // ReportStatusRequest's held_config_digest: held_digest_ while the
  // reconciler still holds that generation without errors (a drift it
  // could not put right, or a newer configuration refused in part, voids
  // it); else empty.
  std::string HeldDigest(const ReconcileStats& stats) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const ManagerSessionOptions options_;
  const v1::NodeInventory inventory_;
  Reconciler* const reconciler_;  // not owned
  VfLending* const vf_;           // not owned
  const Clock* const clock_;      // not owned
  GrantGuard* const grants_;      // not owned; may be null
  AgentMetrics* const metrics_;   // not owned; may be null
  int control_port_ = 0;          // set by Start()
  bool several_managers_ = false; // set by Start()
  // This process's registrations (RegisterNodeRequest.instance, .attempt):
  // random and nonzero, and the last attempt sent (the connection thread's
  // only).
  const uint64_t instance_;
  uint64_t registration_attempts_ = 0;
  // When the next report is due: every heartbeat interval of the open
  // session (real time), and at once after RequestReport().
  ReportSchedule reports_{Clock::Real()};

  mutable absl::Mutex mu_;
  SessionStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The open call's context, to cancel it from Stop().
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The current registration's session (RegisterNodeResponse.session).
  int64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  // The last ReportStatusRequest.sequence built (StatusReport).
  mutable int64_t report_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // The generation and ConfigDigest of the last configuration that was
  // applied in full (0 and empty while the last one was refused in part).
  // What the node holds is attested by HeldDigest().
  int64_t held_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string held_digest_ ABSL_GUARDED_BY(mu_);
  // Set with stats_.fenced; read by the connection loop without mu_.
  std::atomic<bool> fenced_{false};

  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_MANAGER_SESSION_H_
