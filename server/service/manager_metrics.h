// ManagerMetrics: the fabric manager's Prometheus metrics (issue 16),
// served at /metrics on --http-listen (README, "Metrics").
//
//   fabric_manager_rpcs_total{method,code}        counter (RpcMetrics; REST
//   fabric_manager_rpc_duration_seconds{method}   histogram  calls included)
//   fabric_manager_allocations{state}             gauge
//   fabric_manager_attachments{state}             gauge
//   fabric_manager_agents{state}                  gauge (every node)
//   fabric_manager_generation_lag{node}           gauge (desired - applied)
//   fabric_manager_generation                     gauge
//   fabric_manager_links_down                     gauge
//   fabric_manager_holdings_unsaved               gauge
//   fabric_manager_commit_group_plans             histogram (plans/commit)
//   fabric_manager_store_commit_duration_seconds  histogram
//   fabric_manager_store_errors_total             counter
//   fabric_manager_shed_requests_total            counter (admission)
//   fabric_manager_leader                         gauge (1 leads, 0 not)
//
// Events (group commits) are recorded as they happen (CommitObserver); the
// state families are read at scrape time from Sources, so nothing is kept
// in step by hand. Labels are bounded: states, methods and codes by their
// enums, nodes by the fabric's size (at most 10,000 series).
//
// Thread-safe.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_METRICS_H_
#define FABRIC_SERVER_SERVICE_MANAGER_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics/grpc_metrics.h"
#include "common/metrics/registry.h"
#include "server/service/manager_options.h"
#include "server/service/manager_stats.h"

namespace fabric::service {

class ManagerMetrics : public CommitObserver {
 public:
  // Where the scrape-time families read from: whichever manager serves now.
  struct Sources {
    // The serving manager's stats; nullopt while none serves (a standby).
    std::function<std::optional<ManagerStats>()> stats;
    // Requests shed by admission control so far (a counter).
    std::function<uint64_t()> shed;
    // Whether this manager leads (a lone SQLite manager always does).
    std::function<bool()> leader;
  };

  // Registers every family on `registry` (not owned; must outlive this).
  // Errors: ALREADY_EXISTS when they are registered already.
  static absl::StatusOr<std::unique_ptr<ManagerMetrics>> Create(
      metrics::Registry* registry, Clock* clock = Clock::Real());

  // Sets the sources; until then the state families are empty.
  void SetSources(Sources sources) ABSL_LOCKS_EXCLUDED(mu_);

  // The interceptor factory of every gRPC server the manager runs (one per
  // server build: ServerOptions::interceptors).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory() {
    return rpc_->NewInterceptorFactory();
  }

  void OnCommit(int plans, absl::Duration took,
                const absl::Status& status) override;

 private:
  explicit ManagerMetrics(std::unique_ptr<metrics::RpcMetrics> rpc)
      : rpc_(std::move(rpc)) {}
  // The sources, copied out under mu_.
  Sources sources() const ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<metrics::RpcMetrics> rpc_;
  metrics::Histogram* group_plans_ = nullptr;
  metrics::Histogram* commit_seconds_ = nullptr;
  metrics::Counter* store_errors_ = nullptr;

  mutable absl::Mutex mu_;
  Sources sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_METRICS_H_
