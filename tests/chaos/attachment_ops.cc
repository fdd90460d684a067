#include "tests/chaos/attachment_ops.h"

#include <grpcpp/client_context.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fabric::chaos {
namespace {

std::string ErrorText(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), " ", s.error_message());
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

std::string FullNode(const std::string& node) {
  return absl::StartsWith(node, "nodes/") ? node : absl::StrCat("nodes/", node);
}

}  // namespace

std::string AttachmentOps::Spec(const std::string& vf,
                                const std::string& borrower) {
  return absl::StrCat(vf, " -> ", FullNode(borrower));
}

std::optional<NewCreate> AttachmentOps::RandomCreate(
    v1::FabricService::Stub* stub, const FabricInfo& fabric,
    const std::string& request_id, Rng& rng) {
  v1::ListVirtualFunctionsRequest list;
  list.set_fabric(absl::StrCat("fabrics/", fabric.fabric));
  list.set_page_size(1000);
  v1::ListVirtualFunctionsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(3));
  if (!stub->ListVirtualFunctions(&ctx, list, &resp).ok()) return std::nullopt;
  std::vector<const v1::VirtualFunction*> free;
  for (const v1::VirtualFunction& vf : resp.virtual_functions()) {
    if (vf.state() == v1::VirtualFunction::FREE) free.push_back(&vf);
  }
  if (free.empty() || fabric.nodes.size() < 2) return std::nullopt;
  const v1::VirtualFunction& vf = *free[rng() % free.size()];
  std::vector<std::string> borrowers;
  for (const std::string& n : fabric.nodes) {
    if (FullNode(n) != FullNode(vf.node())) borrowers.push_back(n);
  }
  if (borrowers.empty()) return std::nullopt;
  const std::string& borrower = borrowers[rng() % borrowers.size()];
  v1::CreateAttachmentRequest req;
  req.mutable_attachment()->set_vf(vf.name());
  req.mutable_attachment()->set_borrower(borrower);
  req.mutable_attachment()->set_owner("fabric-chaos");
  req.set_request_id(request_id);
  return NewCreate{Spec(vf.name(), borrower), req.SerializeAsString()};
}

Attempt AttachmentOps::Create(v1::FabricService::Stub* stub,
                              const std::string& request,
                              absl::Duration timeout) {
  v1::CreateAttachmentRequest req;
  if (!req.ParseFromString(request)) {
    return {Outcome::kRejected, grpc::StatusCode::INVALID_ARGUMENT, "",
            "unparsable CreateAttachmentRequest"};
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  v1::Attachment a;
  grpc::Status s = stub->CreateAttachment(&ctx, req, &a);
  return ToAttempt(s, a.name());
}

Attempt AttachmentOps::Delete(v1::FabricService::Stub* stub,
                              const std::string& name,
                              const std::string& request_id,
                              absl::Duration timeout) {
  v1::DeleteAttachmentRequest req;
  req.set_name(name);
  req.set_request_id(request_id);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  v1::Attachment a;
  grpc::Status s = stub->DeleteAttachment(&ctx, req, &a);
  Attempt out = ToAttempt(s, name);
  if (s.ok() && a.state() != v1::Attachment::DETACHED) {
    out.outcome = Outcome::kRejected;
    out.error = absl::StrCat("DeleteAttachment answered state ",
                             v1::Attachment::State_Name(a.state()));
  }
  return out;
}

absl::StatusOr<std::vector<v1::Attachment>> AttachmentOps::ListAll(
    v1::FabricService::Stub* stub) {
  std::vector<v1::Attachment> out;
  std::string token;
  do {
    v1::ListAttachmentsRequest req;
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListAttachmentsResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(5));
    grpc::Status s = stub->ListAttachments(&ctx, req, &resp);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("ListAttachments: ", ErrorText(s)));
    }
    out.insert(out.end(), resp.attachments().begin(), resp.attachments().end());
    token = resp.next_page_token();
  } while (!token.empty());
  return out;
}

absl::StatusOr<std::vector<ObservedResource>> AttachmentOps::List(
    v1::FabricService::Stub* stub) {
  auto all = ListAll(stub);
  if (!all.ok()) return all.status();
  std::vector<ObservedResource> out;
  for (const v1::Attachment& a : *all) {
    out.push_back({kind(), a.name(), Spec(a.vf(), a.borrower()),
                   v1::Attachment::State_Name(a.state())});
  }
  return out;
}

bool AttachmentOps::Settled(const ObservedResource& r) const {
  return r.state == "READY" || r.state == "DEGRADED";
}

absl::Status AttachmentOps::Verify(v1::FabricService::Stub* stub,
                                   const ObservedResource& r) {
  if (r.state != "READY") {
    return absl::FailedPreconditionError(
        absl::StrCat(r.name, " is ", r.state, ", not READY"));
  }
  {
    // What the borrower's driver does first: without bus mastering the VF
    // cannot DMA.
    v1::AccessShadowRequest setup;
    setup.set_attachment(r.name);
    setup.set_op(v1::AccessShadowRequest::DRIVER_SETUP);
    v1::AccessShadowResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(10));
    grpc::Status s = stub->AccessShadow(&ctx, setup, &resp);
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("AccessShadow DRIVER_SETUP ",
                                              r.name, ": ", ErrorText(s)));
    }
  }
  v1::VerifyAttachmentRequest req;
  req.set_name(r.name);
  v1::VerifyResult result;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(10));
  grpc::Status s = stub->VerifyAttachment(&ctx, req, &result);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("VerifyAttachment ", r.name, ": ", ErrorText(s)));
  }
  if (!result.ok()) {
    return absl::InternalError(
        absl::StrCat(r.name, " (", r.spec, ") failed: ", result.summary()));
  }
  return absl::OkStatus();
}

}  // namespace fabric::chaos
