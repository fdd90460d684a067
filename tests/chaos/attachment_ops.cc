#include "tests/chaos/attachment_ops.h"

#include <grpcpp/client_context.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace fabric::chaos {

std::string AttachmentKind::SpecOf(const Record& a) {
  return AttachmentOps::Spec(a.vf(), a.borrower());
}

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

absl::Status AttachmentOps::BeforeVerify(v1::FabricService::Stub* stub,
                                         const ObservedResource& r) {
  v1::AccessShadowRequest setup;
  setup.set_attachment(r.name);
  setup.set_op(v1::AccessShadowRequest::DRIVER_SETUP);
  v1::AccessShadowResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(10));
  grpc::Status s = stub->AccessShadow(&ctx, setup, &resp);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("AccessShadow DRIVER_SETUP ", r.name, ": ", ErrorText(s)));
  }
  return absl::OkStatus();
}

}  // namespace fabric::chaos
