#include "common/metrics/grpc_metrics.h"

#include <google/protobuf/descriptor.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fabric::metrics {
namespace {

using grpc::experimental::InterceptionHookPoints;

// Times one call and records it once: when its status is sent, or as
// CANCELLED when gRPC destroys it without one.
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, std::string method)
      : metrics_(metrics),
        method_(std::move(method)),
        start_(metrics->clock()->Now()) {}

  ~RpcMetricsInterceptor() override {
    if (!recorded_) Finish(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finish(m->GetSendStatus().error_code());
    }
    m->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code) {
    recorded_ = true;
    metrics_->Record(method_, code, metrics_->clock()->Now() - start_);
  }

  RpcMetrics* const metrics_;  // not owned
  const std::string method_;
  const absl::Time start_;
  // gRPC runs one hook point of a call at a time, in order.
  bool recorded_ = false;
};

class Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(RpcMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* method = info->method();
    return new RpcMetricsInterceptor(metrics_, method ? method : "");
  }

 private:
  RpcMetrics* const metrics_;  // not owned
};

}  // namespace

absl::StatusOr<std::unique_ptr<RpcMetrics>> RpcMetrics::Create(
    Registry* registry, absl::string_view prefix,
    const std::vector<std::string>& services, Clock* clock) {
  std::vector<const google::protobuf::ServiceDescriptor*> descriptors;
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* s =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    if (s == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "service \"", name, "\" is not in the generated descriptor pool"));
    }
    descriptors.push_back(s);
  }
  absl::StatusOr<CounterFamily*> rpcs = registry->TryAddCounter(
      absl::StrCat(prefix, "_rpcs_total"), "RPCs served, by method and code.",
      {"method", "code"});
  if (!rpcs.ok()) return rpcs.status();
  absl::StatusOr<HistogramFamily*> durations = registry->TryAddHistogram(
      absl::StrCat(prefix, "_rpc_duration_seconds"),
      "Time from an RPC's start to its status, by method.", {"method"},
      DefaultLatencyBuckets());
  if (!durations.ok()) return durations.status();

  std::unique_ptr<RpcMetrics> m(new RpcMetrics(*rpcs, *durations, clock));
  for (const google::protobuf::ServiceDescriptor* s : descriptors) {
    for (int i = 0; i < s->method_count(); ++i) {
      m->AddMethod(absl::StrCat("/", s->full_name(), "/", s->method(i)->name()),
                   s->method(i)->name());
    }
  }
  m->unknown_.label = kUnknownMethod;
  m->unknown_.duration = m->durations_->WithLabels({kUnknownMethod});
  return m;
}

void RpcMetrics::AddMethod(const std::string& path, const std::string& label) {
  auto method = std::make_unique<Method>();
  method->label = label;
  method->duration = durations_->WithLabels({label});
  methods_[path] = std::move(method);
}

void RpcMetrics::Record(absl::string_view method, grpc::StatusCode code,
                        absl::Duration elapsed) {
  auto it = methods_.find(method);
  Method& m = it != methods_.end() ? *it->second : unknown_;
  int c = static_cast<int>(code);
  if (c < 0 || c >= kCodes) c = static_cast<int>(grpc::StatusCode::UNKNOWN);
  Counter* counter = m.by_code[c].load(std::memory_order_acquire);
  if (counter == nullptr) {
    // WithLabels returns the same child to every racer.
    counter = rpcs_->WithLabels(
        {m.label, absl::StatusCodeToString(static_cast<absl::StatusCode>(c))});
    m.by_code[c].store(counter, std::memory_order_release);
  }
  counter->Increment();
  m.duration->Observe(absl::ToDoubleSeconds(elapsed));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::NewInterceptorFactory() {
  return std::make_unique<Factory>(this);
}

}  // namespace fabric::metrics
