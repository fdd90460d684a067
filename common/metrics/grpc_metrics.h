// RPC metrics for a gRPC server: for every call,
//   <prefix>_rpcs_total{method,code}            counter
//   <prefix>_rpc_duration_seconds{method}       histogram
//   (DefaultLatencyBuckets)
// where method is the short method name ("CreateAllocation") and code the
// canonical code name ("OK", "NOT_FOUND"). Labels are bounded by
// construction: only the methods of the services named at Create get their
// own value; every other method is "unknown". Methods of the same name in two
// named services share their label value.
//
//   auto rpc = metrics::RpcMetrics::Create(&registry, "fabric_manager",
//                                          {"fabric.v1.FabricService"});
//   interceptors.push_back((*rpc)->NewInterceptorFactory());
//
// The duration runs from the interceptor's creation (the call's start) to
// the moment its status is sent; a call that ends without sending one counts
// as CANCELLED when gRPC destroys it. Works for the sync and callback APIs.
//
// Thread-safe. RpcMetrics must outlive every server its factories serve.
#ifndef FABRIC_COMMON_METRICS_GRPC_METRICS_H_
#define FABRIC_COMMON_METRICS_GRPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics/registry.h"

namespace fabric::metrics {

inline constexpr char kUnknownMethod[] = "unknown";

class RpcMetrics {
 public:
  // Defines the two families in `registry` (not owned; must outlive this).
  // `services`: full proto names ("fabric.v1.FabricService"), looked up in
  // the generated descriptor pool. Errors: INVALID_ARGUMENT for a prefix
  // that makes invalid names, NOT_FOUND for a service the pool does not
  // know, ALREADY_EXISTS when the families are taken (one RpcMetrics per
  // prefix and registry). `clock` (not owned) times the calls.
  static absl::StatusOr<std::unique_ptr<RpcMetrics>> Create(
      Registry* registry, absl::string_view prefix,
      const std::vector<std::string>& services, Clock* clock = Clock::Real());

  // Records one finished call of `method` ("/fabric.v1.FabricService/Ping").
  // Lock-free once the (method, code) pair has been seen.
  void Record(absl::string_view method, grpc::StatusCode code,
              absl::Duration elapsed);

  // A factory for ServerBuilder::experimental().SetInterceptorCreators; any
  // number may be made (one per server build), all feeding this object.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  Clock* clock() const { return clock_; }

 private:
  static constexpr int kCodes = 17;  // OK .. UNAUTHENTICATED
  struct Method {
    std::string label;
    Histogram* duration = nullptr;
    std::array<std::atomic<Counter*>, kCodes> by_code{};  // filled lazily
  };

  RpcMetrics(CounterFamily* rpcs, HistogramFamily* durations, Clock* clock)
      : rpcs_(rpcs), durations_(durations), clock_(clock) {}
  void AddMethod(const std::string& path, const std::string& label);

  CounterFamily* const rpcs_;         // owned by the registry
  HistogramFamily* const durations_;  // owned by the registry
  Clock* const clock_;                // not owned
  // By full method path; immutable after Create.
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_;
  Method unknown_;
};

}  // namespace fabric::metrics

#endif  // FABRIC_COMMON_METRICS_GRPC_METRICS_H_
