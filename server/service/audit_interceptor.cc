#include "server/service/audit_interceptor.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/message.h>

#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/security/grpc_auth.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.grpc.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"

namespace fabric::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

// Agent telemetry: only its refusals are audited (see the header).
constexpr absl::string_view kTelemetry[] = {
    "/fabric.agentproto.v1.AgentService/ReportStatus",
    "/fabric.agentproto.v1.AgentService/StreamConfig",
};

const google::protobuf::MethodDescriptor* FindMethod(absl::string_view method) {
  // "/pkg.Service/Method" -> "pkg.Service.Method".
  if (!absl::ConsumePrefix(&method, "/")) return nullptr;
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
      absl::StrReplaceAll(method, {{"/", "."}}));
}

// The string field request_id of `request`, "" when it has none.
std::string RequestIdOf(const google::protobuf::Message& request) {
  const google::protobuf::FieldDescriptor* field =
      request.GetDescriptor()->FindFieldByName("request_id");
  if (field == nullptr || field->is_repeated() ||
      field->type() != google::protobuf::FieldDescriptor::TYPE_STRING) {
    return "";
  }
  return request.GetReflection()->GetString(request, field);
}

// Audits one call: the request id when its message arrives, the caller and
// the outcome when its status is sent.
class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  // `only_refusals`: record the call only when it ends PERMISSION_DENIED.
  AuditInterceptor(grpc::experimental::ServerRpcInfo* info,
                   security::AuditLog* log, bool only_refusals)
      : info_(info), log_(log), only_refusals_(only_refusals) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE)) {
      // Every audited method is a generated protobuf method (the factory
      // only audits methods of the descriptor pool), so the message is one.
      const auto* request =
          static_cast<const google::protobuf::Message*>(m->GetRecvMessage());
      if (request != nullptr && event_.request_id.empty()) {
        event_.request_id = RequestIdOf(*request);
      }
      // Read before the handler runs, so never at the same time as it.
      ReadCaller();
    }
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = m->GetSendStatus();
      if (only_refusals_ &&
          status.error_code() != grpc::StatusCode::PERMISSION_DENIED) {
        m->Proceed();
        return;
      }
      ReadCaller();
      event_.time = absl::Now();
      event_.method = info_->method();
      event_.code = absl::StatusCodeToString(
          static_cast<absl::StatusCode>(status.error_code()));
      event_.message = status.error_message();
      log_->Record(event_);
    }
    m->Proceed();
  }

 private:
  void ReadCaller() {
    if (caller_read_) return;
    caller_read_ = true;
    const security::Caller caller =
        security::CallerOf(*info_->server_context());
    event_.identity = caller.OwnerName();
    event_.role = caller.role;
  }

  grpc::experimental::ServerRpcInfo* const info_;  // owns this
  security::AuditLog* const log_;                  // not owned
  const bool only_refusals_;
  // gRPC runs one hook point of a call at a time, in order.
  bool caller_read_ = false;
  security::AuditEvent event_;
};

}  // namespace

bool IsAuditedMethod(absl::string_view method) {
  for (absl::string_view t : kTelemetry) {
    if (method == t) return false;
  }
  const google::protobuf::MethodDescriptor* d = FindMethod(method);
  if (d == nullptr) return false;
  if (!absl::StartsWith(d->service()->full_name(), "fabric.")) return false;
  return d->options().idempotency_level() !=
         google::protobuf::MethodOptions::NO_SIDE_EFFECTS;
}

AuditInterceptorFactory::AuditInterceptorFactory(security::AuditLog* log)
    : log_(log) {
  for (absl::string_view service :
       {v1::FabricService::service_full_name(),
        agentproto::v1::AgentService::service_full_name(),
        hypervisor::v1::HypervisorService::service_full_name()}) {
    const google::protobuf::ServiceDescriptor* s =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            std::string(service));
    if (s == nullptr) continue;
    for (int i = 0; i < s->method_count(); ++i) {
      const std::string name =
          absl::StrCat("/", s->full_name(), "/", s->method(i)->name());
      audited_[name] = IsAuditedMethod(name);
    }
  }
}

grpc::experimental::Interceptor*
AuditInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  const char* method = info->method();
  if (method == nullptr) return nullptr;
  auto it = audited_.find(method);
  const bool audited =
      it != audited_.end() ? it->second : IsAuditedMethod(method);
  if (audited) return new AuditInterceptor(info, log_, /*only_refusals=*/false);
  for (absl::string_view t : kTelemetry) {
    if (t == method) {
      return new AuditInterceptor(info, log_, /*only_refusals=*/true);
    }
  }
  return nullptr;
}

}  // namespace fabric::service
