// The node agent's Prometheus metrics (issue 16), recorded where each event
// happens and served on `fabric-agent --http-listen` (ServeAgentMetrics):
//
//   fabric_agent_apply_duration_seconds          histogram  one attempt at a
//       desired configuration (new or retried), end to end, in real time
//   fabric_agent_applied_generation              gauge
//   fabric_agent_drift_repairs_total             counter    entries found
//       differing from what was applied, and repaired
//   fabric_agent_refused_entries_total{kind}     counter    entries the
//       bridge refused, per attempt (kind: RefusalKindName)
//   fabric_agent_interrupts_total{mode}          counter    "direct" |
//       "hypervisor"
//   fabric_agent_vm_exits_avoided_total          counter
//   fabric_agent_shadow_accesses_total{op,rule}  counter    op "read" |
//       "write"; rule from vf::ConfigVirtualizer::RuleNames()
//   fabric_agent_reconnects_total                counter    sessions with
//       the manager re-established after the first
//   fabric_agent_rpcs_total{method,code},
//   fabric_agent_rpc_duration_seconds{method}    the agent's gRPC servers
//       (metrics::RpcMetrics, NodeAgentService's methods)
//
// Every counter is recorded by the agent's parts through this object (none
// is read back at scrape time): the parts take an `AgentMetrics*` that may
// be null (unit tests), so a call site is `if (metrics_) metrics_->X()`.
// Every label is bounded by an enum or a fixed rule set.
//
// Thread-safe; the recording calls are lock-free once a label set has been
// seen, so they may be made with the callers' locks held.
#ifndef FABRIC_AGENT_AGENT_METRICS_H_
#define FABRIC_AGENT_AGENT_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http/http_server.h"
#include "common/metrics/grpc_metrics.h"
#include "common/metrics/registry.h"

namespace fabric::agent {

// What kind of bridge entry a refusal was about.
enum class RefusalKind {
  kHostMemory,
  kMapEntry,
  kWindow,
  kInbound,
  kPort,
  kBridge,    // the whole state, when no single entry was to blame
  kHardware,  // the state could not be read back
};
// "host_memory", "map_entry", "window", "inbound", "port", "bridge",
// "hardware".
absl::string_view RefusalKindName(RefusalKind kind);

enum class InterruptMode { kDirect, kHypervisor };
enum class ShadowOp { kRead, kWrite };

class AgentMetrics {
 public:
  // Defines the families in a registry of its own. `clock` (not owned;
  // must outlive this) times applies and RPCs.
  explicit AgentMetrics(Clock* clock = Clock::Real());
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  // What durations are measured with.
  Clock* clock() const { return rpc_->clock(); }

  // One attempt at applying a desired configuration took `elapsed`.
  void ApplyDone(absl::Duration elapsed);
  void SetAppliedGeneration(int64_t generation);
  // `entries` drifted entries put right (a rebuilt state counts as one).
  void DriftRepaired(int64_t entries);
  void Refused(RefusalKind kind, int64_t entries = 1);
  // One interrupt reached a guest or the host. `exit_avoided`: it went
  // straight to a running VM (a VM exit the hypervisor path would cost).
  void Interrupt(InterruptMode mode, bool exit_avoided);
  // A borrower's config-space (or MSI-X table) access to a shadow device,
  // governed by `rule` (one of a fixed set; see the file comment).
  void ShadowAccess(ShadowOp op, absl::string_view rule);
  void Reconnected();

  // Counts the RPCs of the servers built with its interceptor factories.
  metrics::RpcMetrics& rpc() { return *rpc_; }
  const metrics::Registry& registry() const { return registry_; }
  // Text format 0.0.4 (metrics::kContentType).
  std::string Render() const { return registry_.Render(); }

 private:
  metrics::Registry registry_;
  metrics::Histogram* apply_duration_;
  metrics::Gauge* applied_generation_;
  metrics::Counter* drift_repairs_;
  metrics::CounterFamily* refused_;
  metrics::Counter* interrupts_direct_;
  metrics::Counter* interrupts_hypervisor_;
  metrics::Counter* exits_avoided_;
  metrics::CounterFamily* shadow_accesses_;
  metrics::Counter* reconnects_;
  std::unique_ptr<metrics::RpcMetrics> rpc_;
};

// The handler of the agent's HTTP listener: GET /metrics renders `metrics`
// (any client the TLS handshake admitted may read it); other paths are 404,
// other methods on /metrics 405. `metrics` must outlive the handler.
http::HttpHandler MetricsHandler(const AgentMetrics* metrics);

// Starts the agent's HTTP listener on options.listen with MetricsHandler.
// Errors: those of http::HttpServer::Start.
absl::StatusOr<std::unique_ptr<http::HttpServer>> ServeAgentMetrics(
    const http::HttpServerOptions& options, const AgentMetrics* metrics);

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_AGENT_METRICS_H_
