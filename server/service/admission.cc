#include "server/service/admission.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace fabric::service {

absl::Status AdmissionControl::Acquire(absl::string_view method) {
  const int now = inflight_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (max_inflight_ > 0 && now > max_inflight_) {
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(absl::StrCat(
        method, ": the manager is overloaded: ", max_inflight_,
        " mutations are in flight, the limit (--max-inflight); retry with "
        "backoff and the same request_id"));
  }
  admitted_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void AdmissionControl::Release() {
  inflight_.fetch_sub(1, std::memory_order_relaxed);
}

bool AdmitCall(AdmissionControl* admission, absl::string_view method,
               grpc::CallbackServerContext* ctx,
               grpc::ServerUnaryReactor* reactor) {
  if (ctx->deadline() < std::chrono::system_clock::now()) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        absl::StrCat(method, ": the deadline passed before the manager "
                             "could start the call; nothing was changed")));
    return false;
  }
  if (admission == nullptr) return true;
  absl::Status s = admission->Acquire(method);
  if (s.ok()) return true;
  reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               std::string(s.message())));
  return false;
}

}  // namespace fabric::service
