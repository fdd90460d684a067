// The reconcile state machine: brings a bridge to the newest desired
// configuration and keeps it there. A configuration the hardware refuses
// (some entries) is tried again with backoff until it lands or a newer one
// replaces it; once it has landed, the hardware is read back every
// drift_check_interval and whatever differs is put right (a repair).
//
//   ManualClock clock;
//   Reconciler r("n1", options, bridge.get(), &clock, /*on_news=*/[] {});
//   r.Apply(config);            // from the config stream
//   clock.Advance(options.drift_check_interval);
//   r.RunDue();                 // the drift check that was due
//
// Time comes only from the injected Clock: Start() runs RunDue() on a
// thread of its own (waking every few milliseconds of real time to look at
// the clock), and a test can leave the thread out and call RunDue() itself.
//
// Thread-safe. Every hardware access, the data path's included (HostRead,
// HostWrite), is serialized under one lock: the BridgeHardware contract is
// thread-compatible.
#ifndef FABRIC_AGENT_RECONCILER_H_
#define FABRIC_AGENT_RECONCILER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "agent/agent_metrics.h"
#include "agent/hw/bridge_hardware.h"
#include "common/clock.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {

struct ReconcilerOptions {
  // How often the hardware is read back and compared with the desired
  // state of the latest generation, once it has landed.
  absl::Duration drift_check_interval = absl::Seconds(1);
  // A generation the hardware refused (some entries) is tried again after
  // apply_retry_initial, doubling up to apply_retry_max, until it lands or a
  // newer generation replaces it. No jitter: the hardware is local.
  absl::Duration apply_retry_initial = absl::Milliseconds(100);
  absl::Duration apply_retry_max = absl::Seconds(5);
};

// What the reconciler has done; a snapshot.
struct ReconcileStats {
  // The newest generation received, and the newest the hardware holds
  // (entries refused for single allocations aside, see Apply()).
  int64_t desired_generation = 0;
  int64_t applied_generation = 0;
  int64_t applies = 0;        // generations applied
  int64_t apply_retries = 0;  // attempts after a refusal
  // Drifted entries put right; a bridge state that could not be read back,
  // rebuilt, counts as one.
  int64_t repairs = 0;
  std::vector<std::string> recent_repairs;
  // The entries the last attempt had refused (their `attempts` set), and
  // when the next attempt is due (InfiniteFuture when none is).
  std::vector<v1::ApplyError> errors;
  absl::Time next_retry = absl::InfiniteFuture();
  // When the next drift check is due, by the reconciler's clock
  // (InfiniteFuture before the first configuration).
  absl::Time next_drift_check = absl::InfiniteFuture();
};

class Reconciler {
 public:
  // `node` names the log lines. `hardware` and `clock` are not owned and must
  // outlive the reconciler. `on_news` is called from RunDue(), with the
  // reconciler's lock held (it must not call back into the reconciler), when
  // something the manager should hear about before the next heartbeat has
  // happened: a repair, a refusal, a retry that landed. `metrics` (may be
  // null; not owned) records applies, the applied generation, repairs and
  // refusals.
  Reconciler(std::string node, ReconcilerOptions options,
             hw::BridgeHardware* hardware, Clock* clock,
             std::function<void()> on_news, AgentMetrics* metrics = nullptr);
  ~Reconciler();

  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Starts the thread that runs RunDue() until Stop(). At most once. The
  // thread sleeps until the next drift check or retry is due (by the
  // clock), or until Apply() changes when that is; it does not poll. An
  // agent that is not Start()ed runs only what Apply() and RunDue() do.
  void Start();
  // Stops that thread; idempotent. Waits for an attempt in progress.
  void Stop() ABSL_LOCKS_EXCLUDED(hw_mu_);

  // Makes `config` the desired configuration and applies it now. A
  // configuration that asks the hardware for exactly what the last one that
  // landed asked (a new generation made for other nodes' changes) is taken
  // without touching the hardware: it is applied at once, and the drift
  // check, still due when it was, keeps the hardware to it. Returns OK
  // when the hardware holds it; else FAILED_PRECONDITION naming the first
  // refused entry, the per-entry errors are in stats().errors, and RunDue()
  // retries this configuration, never an older one, with backoff. Entries
  // refused for single allocations (errors with `allocation` set) do not
  // hold back applied_generation.
  absl::Status Apply(const agentproto::v1::DesiredConfig& config)
      ABSL_LOCKS_EXCLUDED(hw_mu_, mu_);

  // Runs what is due by the clock: when the desired configuration has
  // landed and a drift check is due, reads the hardware back and repairs
  // drift (counted as repairs; a state that cannot be read back is rebuilt
  // from the desired configuration); when it was refused and its retry is
  // due, tries it again (counted as a retry, not a repair). Does nothing
  // before the first Apply() or after Fence().
  void RunDue() ABSL_LOCKS_EXCLUDED(hw_mu_, mu_);

  // Notes `config`'s fingerprint in the bridge's scratchpads (when it
  // changed), so that a restarted agent can tell drift from news. The
  // session calls it after reporting a configuration that landed, to keep
  // the scratchpad writes off the path to READY.
  void RecordFingerprint(const agentproto::v1::DesiredConfig& config)
      ABSL_LOCKS_EXCLUDED(hw_mu_);

  // A newer agent took over the node: RunDue() no longer touches the
  // hardware. Idempotent.
  void Fence() { fenced_ = true; }

  // The host's data path, serialized with reconciliation.
  absl::StatusOr<hw::AccessResult> HostWrite(uint64_t addr,
                                             absl::Span<const uint8_t> data)
      ABSL_LOCKS_EXCLUDED(hw_mu_);
  absl::Status HostRead(uint64_t addr, absl::Span<uint8_t> out)
      ABSL_LOCKS_EXCLUDED(hw_mu_);

  ReconcileStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Why the hardware is being written to.
  enum class Attempt {
    kNew,         // a configuration just received
    kRetry,       // the desired configuration, after a refusal
    kDriftCheck,  // the desired configuration, which had landed
  };
  // RunDue with hw_mu_ held.
  void RunDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  // When RunDue has something to do: the next drift check once desired_
  // has landed, else its next retry; InfiniteFuture before the first
  // Apply() and after Fence().
  absl::Time NextDueLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_);
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
  // Notes `fingerprint` in the scratchpads when it changed.
  void RecordFingerprintLocked(uint64_t fingerprint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hw_mu_);

  const std::string node_;
  const ReconcilerOptions options_;
  hw::BridgeHardware* const hardware_;  // not owned
  Clock* const clock_;                  // not owned
  const std::function<void()> on_news_;
  AgentMetrics* const metrics_;  // not owned; may be null

  // Serializes every hardware access. Taken before mu_.
  absl::Mutex hw_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // What the scratchpads say, as last read or written.
  uint64_t recorded_fingerprint_ ABSL_GUARDED_BY(hw_mu_) = 0;
  // The newest configuration received; what the reconciler converges to.
  std::unique_ptr<agentproto::v1::DesiredConfig> desired_
      ABSL_GUARDED_BY(hw_mu_);
  // Whether the last attempt at desired_ landed in full, and the state it
  // gave the hardware then.
  bool landed_ ABSL_GUARDED_BY(hw_mu_) = false;
  std::optional<hw::BridgeState> landed_state_ ABSL_GUARDED_BY(hw_mu_);
  // Refused attempts at desired_ so far, and the backoff before the next.
  int attempts_ ABSL_GUARDED_BY(hw_mu_) = 0;
  absl::Duration retry_backoff_ ABSL_GUARDED_BY(hw_mu_);
  absl::Time next_retry_ ABSL_GUARDED_BY(hw_mu_) = absl::InfiniteFuture();
  absl::Time next_drift_check_ ABSL_GUARDED_BY(hw_mu_) = absl::InfiniteFuture();
  // Read by RunDue without a lock.
  std::atomic<bool> fenced_{false};

  mutable absl::Mutex mu_;
  ReconcileStats stats_ ABSL_GUARDED_BY(mu_);

  // Stop() was called: the thread ends.
  bool stopping_ ABSL_GUARDED_BY(hw_mu_) = false;
  std::thread thread_;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_RECONCILER_H_
