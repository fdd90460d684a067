#include "agent/agent_metrics.h"

#include <cstdlib>
#include <iostream>
#include <utility>

#include "agent/vf/config_virtualizer.h"
#include "fabric/agentproto/v1/node_agent_service.pb.h"

namespace fabric::agent {
namespace {

constexpr char kPrefix[] = "fabric_agent";
constexpr RefusalKind kRefusalKinds[] = {
    RefusalKind::kHostMemory, RefusalKind::kMapEntry, RefusalKind::kWindow,
    RefusalKind::kInbound,    RefusalKind::kPort,     RefusalKind::kBridge,
    RefusalKind::kHardware};

// The full name of the service the agent serves; naming it through its
// file's descriptor links that file into every program that uses this one.
std::string NodeAgentServiceName() {
  return agentproto::v1::HostReadRequest::descriptor()
      ->file()
      ->FindServiceByName("NodeAgentService")
      ->full_name();
}

}  // namespace

absl::string_view RefusalKindName(RefusalKind kind) {
  switch (kind) {
    case RefusalKind::kHostMemory:
      return "host_memory";
    case RefusalKind::kMapEntry:
      return "map_entry";
    case RefusalKind::kWindow:
      return "window";
    case RefusalKind::kInbound:
      return "inbound";
    case RefusalKind::kPort:
      return "port";
    case RefusalKind::kBridge:
      return "bridge";
    case RefusalKind::kHardware:
      return "hardware";
  }
  return "bridge";
}

AgentMetrics::AgentMetrics(Clock* clock) {
  apply_duration_ =
      registry_
          .AddHistogram("fabric_agent_apply_duration_seconds",
                        "One attempt at applying a desired configuration "
                        "(new or retried), end to end.",
                        {}, metrics::DefaultLatencyBuckets())
          ->WithLabels({});
  applied_generation_ =
      registry_
          .AddGauge("fabric_agent_applied_generation",
                    "The newest configuration generation the bridge holds.", {})
          ->WithLabels({});
  drift_repairs_ =
      registry_
          .AddCounter("fabric_agent_drift_repairs_total",
                      "Bridge entries found differing from what was applied, "
                      "and repaired.",
                      {})
          ->WithLabels({});
  refused_ = registry_.AddCounter(
      "fabric_agent_refused_entries_total",
      "Bridge entries the hardware refused, counted per attempt.", {"kind"});
  // Every label set of a bounded family from the start, at 0, so that
  // rate() and alerts see a series before its first event.
  for (RefusalKind kind : kRefusalKinds) Refused(kind, 0);
  metrics::CounterFamily* interrupts = registry_.AddCounter(
      "fabric_agent_interrupts_total",
      "Interrupts of borrowed VFs delivered: directly to a running VM (or "
      "the host), or injected by the hypervisor.",
      {"mode"});
  interrupts_direct_ = interrupts->WithLabels({"direct"});
  interrupts_hypervisor_ = interrupts->WithLabels({"hypervisor"});
  exits_avoided_ =
      registry_
          .AddCounter("fabric_agent_vm_exits_avoided_total",
                      "Interrupts delivered to a running VM without a VM "
                      "exit.",
                      {})
          ->WithLabels({});
  shadow_accesses_ = registry_.AddCounter(
      "fabric_agent_shadow_accesses_total",
      "Borrowers' config-space and MSI-X table accesses to shadow devices, "
      "by virtualization rule.",
      {"op", "rule"});
  for (const std::string& rule : vf::ConfigVirtualizer::RuleNames()) {
    for (const char* op : {"read", "write"}) {
      shadow_accesses_->WithLabels({op, rule});
    }
  }
  reconnects_ =
      registry_
          .AddCounter("fabric_agent_reconnects_total",
                      "Sessions with the manager re-established after the "
                      "first.",
                      {})
          ->WithLabels({});
  auto rpc = metrics::RpcMetrics::Create(&registry_, kPrefix,
                                         {NodeAgentServiceName()}, clock);
  if (!rpc.ok()) {
    std::cerr << "fabric-agent: metrics: " << rpc.status() << std::endl;
    std::abort();
  }
  rpc_ = *std::move(rpc);
}

void AgentMetrics::ApplyDone(absl::Duration elapsed) {
  apply_duration_->Observe(absl::ToDoubleSeconds(elapsed));
}

void AgentMetrics::SetAppliedGeneration(int64_t generation) {
  applied_generation_->Set(static_cast<double>(generation));
}

void AgentMetrics::DriftRepaired(int64_t entries) {
  drift_repairs_->Increment(static_cast<double>(entries));
}

void AgentMetrics::Refused(RefusalKind kind, int64_t entries) {
  refused_->WithLabels({std::string(RefusalKindName(kind))})
      ->Increment(static_cast<double>(entries));
}

void AgentMetrics::Interrupt(InterruptMode mode, bool exit_avoided) {
  (mode == InterruptMode::kDirect ? interrupts_direct_ : interrupts_hypervisor_)
      ->Increment();
  if (exit_avoided) exits_avoided_->Increment();
}

void AgentMetrics::ShadowAccess(ShadowOp op, absl::string_view rule) {
  shadow_accesses_
      ->WithLabels(
          {op == ShadowOp::kRead ? "read" : "write", std::string(rule)})
      ->Increment();
}

void AgentMetrics::Reconnected() { reconnects_->Increment(); }

http::HttpHandler MetricsHandler(const AgentMetrics* metrics) {
  return [metrics](const http::HttpRequest& r) {
    if (r.path != "/metrics") {
      return http::HttpResponse::Text(404, "text/plain",
                                      "not found; the agent serves /metrics\n");
    }
    if (r.method != "GET" && r.method != "HEAD") {
      http::HttpResponse out =
          http::HttpResponse::Text(405, "text/plain", "/metrics: only GET\n");
      out.headers.emplace("Allow", "GET");
      return out;
    }
    return http::HttpResponse::Text(200, metrics::kContentType,
                                    metrics->Render());
  };
}

absl::StatusOr<std::unique_ptr<http::HttpServer>> ServeAgentMetrics(
    const http::HttpServerOptions& options, const AgentMetrics* metrics) {
  return http::HttpServer::Start(options, MetricsHandler(metrics));
}

}  // namespace fabric::agent
