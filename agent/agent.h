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
// Thread-safe. The hardware is touched under one lock (hw_mu_): the
// BridgeHardware contract is thread-compatible.
#ifndef FABRIC_AGENT_AGENT_H_
#define FABRIC_AGENT_AGENT_H_

#include <grpcpp/client_context.h>
#include <grpcpp/server.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/vf_lending.h"
#include "fabric/v1/fabric.grpc.pb.h"

namespace fabric::agent {

struct AgentOptions {
  std::string manager_address;  // HOST:PORT of fabric-manager
  std::string node;             // this node's name in the fabric
  std::string backend;          // "sim" or "linux", reported to the manager
  // Where NodeAgentService listens; port 0 picks one.
  std::string listen = "127.0.0.1:0";
  // The NodeAgentService address other hosts and the manager dial
  // (HOST:PORT). Empty: the listen address when its host is specific; for a
  // wildcard listen host (0.0.0.0, [::]) the manager uses the address it
  // sees this agent's connection come from, with the bound port.
  std::string advertise;
  // Reconnect backoff: doubles from initial to max, with jitter.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // How often the hardware is read back and compared with the desired
  // state of the latest generation, once it has landed.
  absl::Duration drift_check_interval = absl::Seconds(1);
  // A generation the hardware refused (some entries) is tried again after
  // apply_retry_initial, doubling up to apply_retry_max, until it lands or a
  // newer generation replaces it. No jitter: the hardware is local.
  absl::Duration apply_retry_initial = absl::Milliseconds(100);
  absl::Duration apply_retry_max = absl::Seconds(5);
  // Called once, from the connection thread, when a newer registration of
  // this node (another agent) fenced this one: the agent has stopped
  // reconnecting and touching the hardware. `why` is the manager's word.
  // The program should exit (fabric-agent exits with kExitFenced).
  std::function<void(const std::string& why)> on_fenced;
};

// fabric-agent's exit code after it was fenced; the systemd unit does not
// restart on it (RestartPreventExitStatus), so two agents never take one
// node from each other in turns.
inline constexpr int kExitFenced = 3;

// What the agent has done; a snapshot.
struct AgentStats {
  // The newest generation received, and the newest the hardware holds
  // (entries refused for single allocations aside, see Apply()).
  int64_t desired_generation = 0;
  int64_t applied_generation = 0;
  int64_t applies = 0;        // generations applied
  // Configurations the stream delivered that a newer one replaced before
  // they were applied.
  int64_t superseded = 0;
  int64_t apply_retries = 0;  // attempts after a refusal
  // Drifted entries put right; a bridge state that could not be read back,
  // rebuilt, counts as one.
  int64_t repairs = 0;
  int64_t sessions = 0;       // successful registrations
  // A newer registration of this node fenced this agent (see
  // AgentOptions::on_fenced), and the manager's reason.
  bool fenced = false;
  std::string fence_reason;
  std::vector<std::string> recent_repairs;
  // The entries the last attempt had refused (their `attempts` set), and
  // when the next attempt is due (InfiniteFuture when none is).
  std::vector<v1::ApplyError> errors;
  absl::Time next_retry = absl::InfiniteFuture();
};

// The control address the agent registers: options.advertise, else the
// listen host with `bound_port`, else (wildcard listen host) ":PORT", which
// the manager completes with the host it sees the connection come from.
std::string ControlAddress(const AgentOptions& options, int bound_port);

// The hardware state a desired configuration asks for.
hw::BridgeState DesiredState(const v1::DesiredConfig& config);

// A 64-bit fingerprint of what the hardware holds in `s` (tags, doorbell
// and scratchpads left out); never 0.
uint64_t Fingerprint(const hw::BridgeState& s);

// `text` with every byte that is not part of a valid UTF-8 sequence (RFC
// 3629) written as \xNN; valid text is returned unchanged. Protobuf refuses
// a string field that is not UTF-8 and with it the whole message, so every
// string the agent reports passes through this.
std::string ValidUtf8(absl::string_view text);

// The entries in which `have` differs from `want`, e.g. "window 0",
// "map entry 2", "inbound 0x1_0000_0000", "port 1", "host memory".
std::vector<std::string> DiffEntries(const hw::BridgeState& have,
                                     const hw::BridgeState& want);

class Agent {
 public:
  // `hardware` and `functions` (the host's SR-IOV functions it can lend;
  // null for none) are not owned and must outlive the agent.
  Agent(AgentOptions options, hw::BridgeHardware* hardware,
        v1::NodeInventory inventory, LocalFunctions* functions = nullptr);
  ~Agent();

  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Starts serving the data path and the connection loop. UNAVAILABLE if
  // the listen address cannot be bound.
  absl::Status Start();
  // Disconnects and stops every thread; idempotent.
  void Stop();

  // The bound NodeAgentService port (after Start).
  int control_port() const { return control_port_; }
  AgentStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // Makes `config` the desired configuration and applies it now (what the
  // stream loop does for each message). Returns OK when the hardware holds
  // it; else the per-entry errors are in stats().errors and the
  // reconciler retries this configuration, never an older one, with
  // backoff. Public for tests.
  absl::Status Apply(const v1::DesiredConfig& config)
      ABSL_LOCKS_EXCLUDED(mu_, hw_mu_);

  // One reconcile step now, whatever the schedule: when the desired
  // configuration has landed, reads the hardware back and repairs drift
  // (counted as repairs; a state that cannot be read back is rebuilt from
  // the desired configuration); when it was refused, tries it again
  // (counted as a retry, not a repair). Called by the reconciler; public
  // for tests.
  void CheckDrift() ABSL_LOCKS_EXCLUDED(mu_, hw_mu_);

 private:
  class ControlService;

  void ConnectionLoop();
  // One session: register, then follow the stream until it breaks or
  // Stop(). Returns whether it registered.
  bool Session(v1::AgentService::Stub* stub) ABSL_LOCKS_EXCLUDED(mu_);
  void HeartbeatLoop(v1::AgentService::Stub* stub, absl::Duration interval,
                     absl::Notification* done) ABSL_LOCKS_EXCLUDED(mu_);
  v1::ReportStatusRequest StatusReport() const ABSL_LOCKS_EXCLUDED(mu_);
  // Records that the manager refused this agent's session with ABORTED (a
  // newer registration fenced it) and ends the session; idempotent.
  void Fence(const grpc::Status& why) ABSL_LOCKS_EXCLUDED(mu_);

  // Why the hardware is being written to.
  enum class Attempt {
    kNew,         // a configuration just received
    kRetry,       // the desired configuration, after a refusal
    kDriftCheck,  // the desired configuration, which had landed
  };
  // The reconciler thread: runs due retries and drift checks until Stop().
  void ReconcileLoop() ABSL_LOCKS_EXCLUDED(mu_, hw_mu_);
  // Applies desired_ and schedules what comes next (a retry with backoff,
  // or the next drift check). Updates stats_.
  absl::Status AttemptLocked(Attempt attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Brings the hardware to `want` for `generation`, entry by entry where the
  // hardware refuses the whole. Counts the differences as repairs for a
  // drift check, or for a new configuration the scratchpads say this
  // hardware had already been given. A state the hardware cannot read back
  // is rebuilt from `want` on any attempt and counted as one repair once it
  // reads back; until then the read error leads `errors` (entry
  // "hardware"). Fills `errors` with the refusals. Returns whether the
  // hardware differed (or was unreadable) and was written to.
  bool ApplyLocked(const hw::BridgeState& want, int64_t generation,
                   Attempt attempt, std::vector<v1::ApplyError>* errors)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts `repairs` and keeps `what` (one line) among the recent repairs.
  void RecordRepair(int64_t repairs, std::string what) ABSL_LOCKS_EXCLUDED(mu_);

  // Notes the fingerprint of the state just applied in the bridge's
  // scratchpads (when it changed), so that a restarted agent can tell drift
  // from news.
  void RecordFingerprintLocked(uint64_t fingerprint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_);

  const AgentOptions options_;
  hw::BridgeHardware* const hardware_;  // not owned
  const v1::NodeInventory inventory_;
  // VF lending (lender and borrower roles).
  std::unique_ptr<VfLending> vf_;
  // Set when something the manager should hear about now has changed.
  std::atomic<bool> report_requested_{false};

  // Serializes every hardware access. Taken before mu_.
  absl::Mutex hw_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // What the scratchpads say, as last read or written.
  uint64_t recorded_fingerprint_ ABSL_GUARDED_BY(hw_mu_) = 0;
  // The newest configuration received; what the reconciler converges to.
  std::unique_ptr<v1::DesiredConfig> desired_ ABSL_GUARDED_BY(hw_mu_);
  // Whether the last attempt at desired_ landed in full.
  bool landed_ ABSL_GUARDED_BY(hw_mu_) = false;
  // Refused attempts at desired_ so far, and the backoff before the next.
  int attempts_ ABSL_GUARDED_BY(hw_mu_) = 0;
  absl::Duration retry_backoff_ ABSL_GUARDED_BY(hw_mu_);
  absl::Time next_retry_ ABSL_GUARDED_BY(hw_mu_) = absl::InfiniteFuture();
  absl::Time next_drift_check_ ABSL_GUARDED_BY(hw_mu_) =
      absl::InfiniteFuture();
  mutable absl::Mutex mu_;
  AgentStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The stream's context, to cancel it from Stop().
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The current registration's session (RegisterNodeResponse.session).
  int64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  // The last ReportStatusRequest.sequence built (StatusReport).
  mutable int64_t report_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Set with stats_.fenced; read by the reconciler without mu_.
  std::atomic<bool> fenced_{false};

  std::unique_ptr<ControlService> control_;
  std::unique_ptr<grpc::Server> control_server_;
  int control_port_ = 0;
  absl::Notification stop_;
  std::thread connection_thread_;
  std::thread reconcile_thread_;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_AGENT_H_
