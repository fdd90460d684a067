#include "agent/node_agent_service.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "common/grpc_status.h"

namespace fabric::agent {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> r, T* out) {
  if (!r.ok()) return ToGrpcStatus(r.status());
  *out = *std::move(r);
  return grpc::Status::OK;
}

}  // namespace

absl::StatusOr<std::string> ResolveBorrower(const security::Caller& caller,
                                            absl::string_view requested) {
  if (caller.unadmitted) {
    return absl::PermissionDeniedError(
        "VfAccess: the caller was never admitted by the agent's policy");
  }
  if (!caller.authenticated) return std::string(requested);
  const std::string who = caller.identity.ToString();
  switch (caller.identity.kind) {
    case security::PrincipalKind::kManager:
      return std::string(requested);
    case security::PrincipalKind::kNode: {
      const absl::string_view named = absl::StripPrefix(requested, "nodes/");
      if (!named.empty() && named != caller.identity.name) {
        return absl::PermissionDeniedError(absl::StrCat(
            "VfAccess: borrower \"", requested, "\" is not the caller ", who,
            "; a node may reach only the VFs lent to itself"));
      }
      return caller.identity.name;
    }
    case security::PrincipalKind::kUser:
      break;
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "VfAccess: ", who, " is neither a node nor the manager"));
}

NodeAgentService::NodeAgentService(Reconciler* reconciler, VfLending* vf,
                                   const GrantGuard* grants)
    : reconciler_(reconciler), vf_(vf), grants_(grants) {}

grpc::Status NodeAgentService::HostWrite(
    grpc::ServerContext*, const agentproto::v1::HostWriteRequest* req,
    v1::AccessResult* out) {
  if (absl::Status s = grants_->Check(HostAccess::kWrite, req->addr(),
                                      req->data().size());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  auto r = reconciler_->HostWrite(
      req->addr(),
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(req->data().data()),
                          req->data().size()));
  if (!r.ok()) return ToGrpcStatus(r.status());
  out->set_landed(r->landed);
  out->set_node(r->node);
  out->set_addr(r->addr);
  for (const auto& h : r->hops) out->add_hops(h);
  out->set_fault_bridge(r->fault_bridge);
  out->set_fault_addr(r->fault_addr);
  out->set_reason(r->reason);
  return grpc::Status::OK;
}

grpc::Status NodeAgentService::HostRead(
    grpc::ServerContext*, const agentproto::v1::HostReadRequest* req,
    agentproto::v1::HostReadResponse* out) {
  constexpr uint32_t kMaxRead = 16 << 20;
  if (req->length() > kMaxRead) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("length: ", req->length(),
                                     " is over the limit of ", kMaxRead));
  }
  if (absl::Status s =
          grants_->Check(HostAccess::kRead, req->addr(), req->length());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  std::string data(req->length(), '\0');
  absl::Status s = reconciler_->HostRead(
      req->addr(),
      absl::MakeSpan(reinterpret_cast<uint8_t*>(data.data()), data.size()));
  if (!s.ok()) return ToGrpcStatus(s);
  out->set_data(std::move(data));
  return grpc::Status::OK;
}

grpc::Status NodeAgentService::VfAccess(
    grpc::ServerContext* ctx, const agentproto::v1::VfAccessRequest* req,
    agentproto::v1::VfAccessResponse* out) {
  absl::StatusOr<std::string> borrower =
      ResolveBorrower(security::CallerOf(*ctx), req->borrower());
  if (!borrower.ok()) return ToGrpcStatus(borrower.status());
  if (*borrower == req->borrower()) return Reply(vf_->VfAccess(*req), out);
  agentproto::v1::VfAccessRequest resolved = *req;
  resolved.set_borrower(*std::move(borrower));
  return Reply(vf_->VfAccess(resolved), out);
}
grpc::Status NodeAgentService::AccessShadow(grpc::ServerContext*,
                                            const v1::AccessShadowRequest* req,
                                            v1::AccessShadowResponse* out) {
  return Reply(vf_->AccessShadow(*req), out);
}
grpc::Status NodeAgentService::ShadowInterrupt(
    grpc::ServerContext*, const agentproto::v1::ShadowInterruptRequest* req,
    agentproto::v1::ShadowInterruptResponse* out) {
  return Reply(vf_->ShadowInterrupt(*req), out);
}
grpc::Status NodeAgentService::SetVmState(
    grpc::ServerContext*, const hypervisor::v1::SetVmStateRequest* req,
    hypervisor::v1::SetVmStateResponse* out) {
  return Reply(vf_->SetVmState(*req), out);
}

}  // namespace fabric::agent
