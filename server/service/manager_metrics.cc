#include "server/service/manager_metrics.h"

#include <string>
#include <utility>
#include <vector>

#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/fabric_service.pb.h"

namespace fabric::service {
namespace {

using metrics::MetricType;
using metrics::SampleWriter;

// One family per label set of a ManagerStats map.
void WriteCounts(const std::map<std::string, int64_t>& counts,
                 SampleWriter& w) {
  for (const auto& [label, n] : counts) {
    w.Add({label}, static_cast<double>(n));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ManagerMetrics>> ManagerMetrics::Create(
    metrics::Registry* registry, Clock* clock) {
  // The services' files, named here so that they are linked in and in the
  // generated pool, where RpcMetrics looks their methods up.
  const std::vector<std::string> services = {
      v1::CreateFabricRequest::descriptor()->file()->service(0)->full_name(),
      agentproto::v1::RegisterNodeRequest::descriptor()
          ->file()
          ->service(0)
          ->full_name(),
      hypervisor::v1::SetVmStateRequest::descriptor()
          ->file()
          ->service(0)
          ->full_name()};
  absl::StatusOr<std::unique_ptr<metrics::RpcMetrics>> rpc =
      metrics::RpcMetrics::Create(registry, "fabric_manager", services, clock);
  if (!rpc.ok()) return rpc.status();
  auto m = std::unique_ptr<ManagerMetrics>(new ManagerMetrics(*std::move(rpc)));
  ManagerMetrics* self = m.get();

  absl::StatusOr<metrics::HistogramFamily*> plans = registry->TryAddHistogram(
      "fabric_manager_commit_group_plans",
      "Mutations written per store transaction (group commit).", {},
      {1, 2, 4, 8, 16, 32, 64, 128, 256});
  if (!plans.ok()) return plans.status();
  m->group_plans_ = (*plans)->WithLabels({});
  absl::StatusOr<metrics::HistogramFamily*> seconds = registry->TryAddHistogram(
      "fabric_manager_store_commit_duration_seconds",
      "Time of one store transaction (group commit), in seconds.", {},
      metrics::DefaultLatencyBuckets());
  if (!seconds.ok()) return seconds.status();
  m->commit_seconds_ = (*seconds)->WithLabels({});
  absl::StatusOr<metrics::CounterFamily*> errors = registry->TryAddCounter(
      "fabric_manager_store_errors_total",
      "Store transactions that failed (nothing of them was written).", {});
  if (!errors.ok()) return errors.status();
  m->store_errors_ = (*errors)->WithLabels({});

  auto stats_family = [&](absl::string_view name, absl::string_view help,
                          std::vector<std::string> labels,
                          std::function<void(const ManagerStats&,
                                             SampleWriter&)> write,
                          metrics::Options options = {}) {
    return registry->TryAddCallback(
        MetricType::kGauge, name, help, std::move(labels),
        [self, write = std::move(write)](SampleWriter& w) {
          Sources s = self->sources();
          if (s.stats == nullptr) return;
          if (std::optional<ManagerStats> stats = s.stats()) write(*stats, w);
        },
        options);
  };
  metrics::Options nodes;
  nodes.max_children = 10000;
  for (absl::Status st : {
           stats_family("fabric_manager_allocations",
                        "Committed allocations by state.", {"state"},
                        [](const ManagerStats& s, SampleWriter& w) {
                          WriteCounts(s.allocations, w);
                        }),
           stats_family("fabric_manager_attachments",
                        "Committed VF attachments by state.", {"state"},
                        [](const ManagerStats& s, SampleWriter& w) {
                          WriteCounts(s.attachments, w);
                        }),
           stats_family("fabric_manager_agents",
                        "Nodes of every fabric by their agent's state.",
                        {"state"},
                        [](const ManagerStats& s, SampleWriter& w) {
                          WriteCounts(s.agents, w);
                        }),
           stats_family("fabric_manager_generation_lag",
                        "Generations a node's agent is behind the desired "
                        "one (0: up to date).",
                        {"node"},
                        [](const ManagerStats& s, SampleWriter& w) {
                          WriteCounts(s.generation_lag, w);
                        },
                        nodes),
           stats_family("fabric_manager_generation",
                        "The manager's configuration generation "
                        "(epoch << 32 | n).",
                        {},
                        [](const ManagerStats& s, SampleWriter& w) {
                          w.Add({}, static_cast<double>(s.generation));
                        }),
           stats_family("fabric_manager_holdings_unsaved",
                        "Nodes whose agent's attested holding is not yet "
                        "durable in the store (a manager that took over "
                        "now would show their leases PENDING until their "
                        "agents register).",
                        {},
                        [](const ManagerStats& s, SampleWriter& w) {
                          w.Add({}, static_cast<double>(s.holdings_unsaved));
                        }),
           stats_family("fabric_manager_links_down",
                        "Links that are down, over every fabric.", {},
                        [](const ManagerStats& s, SampleWriter& w) {
                          w.Add({}, static_cast<double>(s.links_down));
                        }),
           registry->TryAddCallback(
               MetricType::kCounter, "fabric_manager_shed_requests_total",
               "Mutations refused with RESOURCE_EXHAUSTED by admission "
               "control (--max-inflight).",
               {},
               [self](SampleWriter& w) {
                 Sources s = self->sources();
                 w.Add({}, s.shed == nullptr ? 0.0
                                             : static_cast<double>(s.shed()));
               }),
           registry->TryAddCallback(
               MetricType::kGauge, "fabric_manager_leader",
               "1 while this manager leads (serves mutations), else 0.", {},
               [self](SampleWriter& w) {
                 Sources s = self->sources();
                 w.Add({}, s.leader != nullptr && s.leader() ? 1.0 : 0.0);
               }),
       }) {
    if (!st.ok()) return st;
  }
  return m;
}

void ManagerMetrics::SetSources(Sources sources) {
  absl::MutexLock l(&mu_);
  sources_ = std::move(sources);
}

ManagerMetrics::Sources ManagerMetrics::sources() const {
  absl::MutexLock l(&mu_);
  return sources_;
}

void ManagerMetrics::OnCommit(int plans, absl::Duration took,
                              const absl::Status& status) {
  group_plans_->Observe(plans);
  commit_seconds_->Observe(absl::ToDoubleSeconds(took));
  if (!status.ok()) store_errors_->Increment();
}

}  // namespace fabric::service
