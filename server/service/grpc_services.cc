#include "server/service/grpc_services.h"

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/grpc_status.h"
#include "server/core/profiles.h"
#include "server/service/convert.h"

namespace fabric::service {
namespace {

// Copies a StatusOr's value into *out, or returns its error as grpc::Status.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *out = *std::move(result);
  return grpc::Status::OK;
}

// A manager callback that fills *out and finishes the call. gRPC keeps
// `reactor` and `out` alive until Finish.
template <typename T>
std::function<void(absl::StatusOr<T>)> FinishWith(
    grpc::ServerUnaryReactor* reactor, T* out) {
  return [reactor, out](absl::StatusOr<T> result) {
    if (result.ok()) *out = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

constexpr absl::Duration kPollInterval = absl::Milliseconds(200);

// The host of a gRPC peer URI ("ipv4:10.0.0.2:5000" -> "10.0.0.2",
// "ipv6:[fd00::2]:5000" -> "[fd00::2]"); "" for other kinds (unix sockets).
std::string PeerHost(absl::string_view peer) {
  for (absl::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (!absl::ConsumePrefix(&peer, scheme)) continue;
    const size_t colon = peer.rfind(':');
    if (colon == absl::string_view::npos || colon == 0) return "";
    std::string host(peer.substr(0, colon));
    // gRPC escapes the brackets of IPv6 peers as %5B/%5D.
    host = absl::StrReplaceAll(host, {{"%5B", "["}, {"%5D", "]"}});
    return host;
  }
  return "";
}

}  // namespace

grpc::Status FabricServiceImpl::CreateFabric(grpc::ServerContext*,
                                             const v1::CreateFabricRequest* r,
                                             v1::Fabric* out) {
  return Reply(manager_->CreateFabric(*r), out);
}
grpc::Status FabricServiceImpl::GetFabric(grpc::ServerContext*,
                                          const v1::GetFabricRequest* r,
                                          v1::Fabric* out) {
  return Reply(manager_->GetFabric(r->name()), out);
}
grpc::Status FabricServiceImpl::ListFabrics(grpc::ServerContext*,
                                            const v1::ListFabricsRequest* r,
                                            v1::ListFabricsResponse* out) {
  return Reply(manager_->ListFabrics(*r), out);
}
grpc::Status FabricServiceImpl::DeleteFabric(grpc::ServerContext*,
                                             const v1::DeleteFabricRequest* r,
                                             v1::Fabric* out) {
  return Reply(manager_->DeleteFabric(*r), out);
}
grpc::Status FabricServiceImpl::GetNode(grpc::ServerContext*,
                                        const v1::GetNodeRequest* r,
                                        v1::Node* out) {
  return Reply(manager_->GetNode(r->name()), out);
}
grpc::Status FabricServiceImpl::ListNodes(grpc::ServerContext*,
                                          const v1::ListNodesRequest* r,
                                          v1::ListNodesResponse* out) {
  return Reply(manager_->ListNodes(*r), out);
}
grpc::Status FabricServiceImpl::GetBridge(grpc::ServerContext*,
                                          const v1::GetBridgeRequest* r,
                                          v1::Bridge* out) {
  return Reply(manager_->GetBridge(r->name()), out);
}
grpc::Status FabricServiceImpl::ListBridges(grpc::ServerContext*,
                                            const v1::ListBridgesRequest* r,
                                            v1::ListBridgesResponse* out) {
  return Reply(manager_->ListBridges(*r), out);
}
grpc::Status FabricServiceImpl::GetLink(grpc::ServerContext*,
                                        const v1::GetLinkRequest* r,
                                        v1::Link* out) {
  return Reply(manager_->GetLink(r->name()), out);
}
grpc::Status FabricServiceImpl::ListLinks(grpc::ServerContext*,
                                          const v1::ListLinksRequest* r,
                                          v1::ListLinksResponse* out) {
  return Reply(manager_->ListLinks(*r), out);
}
grpc::Status FabricServiceImpl::SetLinkState(grpc::ServerContext*,
                                             const v1::SetLinkStateRequest* r,
                                             v1::Link* out) {
  return Reply(manager_->SetLinkState(*r), out);
}
grpc::Status FabricServiceImpl::GetAddressMap(grpc::ServerContext*,
                                              const v1::GetAddressMapRequest* r,
                                              v1::AddressMap* out) {
  return Reply(manager_->GetAddressMap(r->name()), out);
}
grpc::Status FabricServiceImpl::ListAddressMaps(
    grpc::ServerContext*, const v1::ListAddressMapsRequest* r,
    v1::ListAddressMapsResponse* out) {
  return Reply(manager_->ListAddressMaps(*r), out);
}
grpc::ServerUnaryReactor* FabricServiceImpl::CreateAllocation(
    grpc::CallbackServerContext* ctx, const v1::CreateAllocationRequest* r,
    v1::Allocation* out) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!AdmitCall(admission_, "CreateAllocation", ctx, reactor)) return reactor;
  manager_->CreateAllocationAsync(
      *r, ReleasingSlot(admission_, FinishWith(reactor, out)));
  return reactor;
}
grpc::Status FabricServiceImpl::GetAllocation(grpc::ServerContext*,
                                              const v1::GetAllocationRequest* r,
                                              v1::Allocation* out) {
  return Reply(manager_->GetAllocation(r->name()), out);
}
grpc::Status FabricServiceImpl::ListAllocations(
    grpc::ServerContext*, const v1::ListAllocationsRequest* r,
    v1::ListAllocationsResponse* out) {
  return Reply(manager_->ListAllocations(*r), out);
}
grpc::ServerUnaryReactor* FabricServiceImpl::DeleteAllocation(
    grpc::CallbackServerContext* ctx, const v1::DeleteAllocationRequest* r,
    v1::Allocation* out) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!AdmitCall(admission_, "DeleteAllocation", ctx, reactor)) return reactor;
  manager_->DeleteAllocationAsync(
      *r, ReleasingSlot(admission_, FinishWith(reactor, out)));
  return reactor;
}

grpc::Status FabricServiceImpl::ListProfiles(grpc::ServerContext*,
                                             const v1::ListProfilesRequest*,
                                             v1::ListProfilesResponse* out) {
  for (const auto& p : core::AllProfiles())
    *out->add_profiles() = ProfileToProto(p);
  return grpc::Status::OK;
}

grpc::Status FabricServiceImpl::VerifyAllocation(
    grpc::ServerContext*, const v1::VerifyAllocationRequest* r,
    v1::VerifyResult* out) {
  return Reply(verifier_.Verify(*r), out);
}

grpc::Status FabricServiceImpl::ListVirtualFunctions(
    grpc::ServerContext*, const v1::ListVirtualFunctionsRequest* r,
    v1::ListVirtualFunctionsResponse* out) {
  return Reply(manager_->ListVirtualFunctions(*r), out);
}
grpc::Status FabricServiceImpl::GetVirtualFunction(
    grpc::ServerContext*, const v1::GetVirtualFunctionRequest* r,
    v1::VirtualFunction* out) {
  return Reply(manager_->GetVirtualFunction(r->name()), out);
}
grpc::Status FabricServiceImpl::CreateAttachment(
    grpc::ServerContext*, const v1::CreateAttachmentRequest* r,
    v1::Attachment* out) {
  return Reply(manager_->CreateAttachment(*r), out);
}
grpc::Status FabricServiceImpl::GetAttachment(grpc::ServerContext*,
                                              const v1::GetAttachmentRequest* r,
                                              v1::Attachment* out) {
  return Reply(manager_->GetAttachment(r->name()), out);
}
grpc::Status FabricServiceImpl::ListAttachments(
    grpc::ServerContext*, const v1::ListAttachmentsRequest* r,
    v1::ListAttachmentsResponse* out) {
  return Reply(manager_->ListAttachments(*r), out);
}
grpc::Status FabricServiceImpl::DeleteAttachment(
    grpc::ServerContext*, const v1::DeleteAttachmentRequest* r,
    v1::Attachment* out) {
  return Reply(manager_->DeleteAttachment(*r), out);
}
grpc::Status FabricServiceImpl::AccessShadow(grpc::ServerContext*,
                                             const v1::AccessShadowRequest* r,
                                             v1::AccessShadowResponse* out) {
  return Reply(verifier_.AccessShadow(*r), out);
}
grpc::Status FabricServiceImpl::VerifyAttachment(
    grpc::ServerContext*, const v1::VerifyAttachmentRequest* r,
    v1::VerifyResult* out) {
  return Reply(verifier_.VerifyAttachment(*r), out);
}
grpc::Status FabricServiceImpl::RaiseVfInterrupt(
    grpc::ServerContext*, const v1::RaiseVfInterruptRequest* r,
    v1::RaiseVfInterruptResponse* out) {
  return Reply(verifier_.RaiseVfInterrupt(*r), out);
}
grpc::Status FabricServiceImpl::SetVmState(grpc::ServerContext*,
                                           const v1::SetVmStateRequest* r,
                                           v1::SetVmStateResponse* out) {
  return Reply(verifier_.SetVmState(*r), out);
}

grpc::ServerUnaryReactor* FabricServiceImpl::Ping(
    grpc::CallbackServerContext* ctx, const v1::PingRequest*,
    v1::PingResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::Status FabricServiceImpl::Watch(
    grpc::ServerContext* ctx, const v1::WatchRequest* r,
    grpc::ServerWriter<v1::WatchEvent>* writer) {
  static const absl::flat_hash_set<std::string> kCollections = {
      "fabrics", "nodes", "links", "allocations", "attachments"};
  absl::flat_hash_set<std::string> want;
  for (const auto& c : r->collections()) {
    if (!kCollections.contains(c)) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat(
              "collections: unknown collection \"", c,
              "\"; use fabrics, nodes, links, allocations or attachments"));
    }
    want.insert(c);
  }
  std::string fabric;
  if (!r->fabric().empty()) {
    auto f = manager_->GetFabric(r->fabric());
    if (!f.ok()) return ToGrpcStatus(f.status());
    fabric = f->name();
  }
  auto wanted = [&](const v1::WatchEvent& e) {
    std::string collection, of_fabric;
    switch (e.resource_case()) {
      case v1::WatchEvent::kFabric:
        collection = "fabrics";
        of_fabric = e.fabric().name();
        break;
      case v1::WatchEvent::kNode:
        collection = "nodes";
        of_fabric = e.node().fabric();
        break;
      case v1::WatchEvent::kLink:
        collection = "links";
        of_fabric = e.link().fabric();
        break;
      case v1::WatchEvent::kAllocation:
        collection = "allocations";
        of_fabric = e.allocation().fabric();
        break;
      case v1::WatchEvent::kAttachment:
        collection = "attachments";
        of_fabric = e.attachment().fabric();
        break;
      default:
        return false;
    }
    return (want.empty() || want.contains(collection)) &&
           (fabric.empty() || of_fabric == fabric);
  };
  WatchHub& hub = manager_->hub();
  WatchHub::Subscription subscription(&hub);
  // Events after this sequence are streamed; taking it before the snapshot
  // means a change racing with the snapshot is sent (again) rather than lost.
  int64_t seen = hub.last_sequence();
  if (r->initial_state()) {
    auto add = [&](v1::WatchEvent e) {
      e.set_type(v1::WatchEvent::ADDED);
      if (wanted(e)) writer->Write(e);
    };
    v1::ListFabricsRequest lf;
    lf.set_page_size(1000);
    auto fabrics = manager_->ListFabrics(lf);
    if (fabrics.ok()) {
      for (const auto& f : fabrics->fabrics()) {
        v1::WatchEvent e;
        *e.mutable_fabric() = f;
        add(e);
        v1::ListNodesRequest ln;
        ln.set_fabric(f.name());
        ln.set_page_size(1000);
        for (;;) {
          auto nodes = manager_->ListNodes(ln);
          if (!nodes.ok()) break;
          for (const auto& n : nodes->nodes()) {
            v1::WatchEvent ne;
            *ne.mutable_node() = n;
            add(ne);
          }
          if (nodes->next_page_token().empty()) break;
          ln.set_page_token(nodes->next_page_token());
        }
        v1::ListLinksRequest ll;
        ll.set_fabric(f.name());
        ll.set_page_size(1000);
        for (;;) {
          auto links = manager_->ListLinks(ll);
          if (!links.ok()) break;
          for (const auto& l : links->links()) {
            v1::WatchEvent le;
            *le.mutable_link() = l;
            add(le);
          }
          if (links->next_page_token().empty()) break;
          ll.set_page_token(links->next_page_token());
        }
      }
    }
    v1::ListAllocationsRequest la;
    la.set_fabric(fabric);
    la.set_page_size(1000);
    for (;;) {
      auto allocs = manager_->ListAllocations(la);
      if (!allocs.ok()) break;
      for (const auto& a : allocs->allocations()) {
        v1::WatchEvent e;
        *e.mutable_allocation() = a;
        add(e);
      }
      if (allocs->next_page_token().empty()) break;
      la.set_page_token(allocs->next_page_token());
    }
    v1::ListAttachmentsRequest lat;
    lat.set_fabric(fabric);
    lat.set_page_size(1000);
    for (;;) {
      auto atts = manager_->ListAttachments(lat);
      if (!atts.ok()) break;
      for (const auto& a : atts->attachments()) {
        v1::WatchEvent e;
        *e.mutable_attachment() = a;
        add(e);
      }
      if (atts->next_page_token().empty()) break;
      lat.set_page_token(atts->next_page_token());
    }
    v1::WatchEvent synced;
    synced.set_type(v1::WatchEvent::SYNCED);
    synced.set_sequence(seen);
    if (!writer->Write(synced)) return grpc::Status::CANCELLED;
  }
  std::vector<v1::WatchEvent> batch;
  while (!ctx->IsCancelled()) {
    batch.clear();
    switch (hub.Read(seen, kPollInterval, &batch)) {
      case WatchHub::ReadResult::kClosed:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the manager is shutting down");
      case WatchHub::ReadResult::kFellBehind:
        return grpc::Status(grpc::StatusCode::ABORTED,
                            "watch fell behind the event buffer; list again "
                            "and start a new watch");
      case WatchHub::ReadResult::kTimeout:
        continue;
      case WatchHub::ReadResult::kOk:
        break;
    }
    for (const auto& e : batch) {
      seen = e.sequence();
      if (wanted(e) && !writer->Write(e)) return grpc::Status::CANCELLED;
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status AgentServiceImpl::RegisterNode(grpc::ServerContext* ctx,
                                            const v1::RegisterNodeRequest* r,
                                            v1::RegisterNodeResponse* out) {
  if (!absl::StartsWith(r->control_address(), ":")) {
    return Reply(manager_->RegisterNode(*r), out);
  }
  // ":PORT": the agent listens on every address; it is reached at the
  // address its connection comes from.
  std::string host = PeerHost(ctx->peer());
  if (host.empty()) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("control_address: \"", r->control_address(),
                     "\" has no host and the connection's peer (",
                     ctx->peer().substr(0, 64),
                     ") has none to use; start the agent with --advertise"));
  }
  v1::RegisterNodeRequest completed = *r;
  completed.set_control_address(absl::StrCat(host, r->control_address()));
  return Reply(manager_->RegisterNode(completed), out);
}

grpc::Status AgentServiceImpl::ReportStatus(grpc::ServerContext*,
                                            const v1::ReportStatusRequest* r,
                                            v1::ReportStatusResponse* out) {
  return Reply(manager_->ReportStatus(*r), out);
}

grpc::Status AgentServiceImpl::StreamConfig(
    grpc::ServerContext* ctx, const v1::StreamConfigRequest* r,
    grpc::ServerWriter<v1::DesiredConfig>* writer) {
  WatchHub& hub = manager_->hub();
  if (absl::Status opened = manager_->ConfigStreamOpened(r->node(), r->session());
      !opened.ok()) {
    return ToGrpcStatus(opened);
  }
  absl::Cleanup closed = [&] {
    manager_->ConfigStreamClosed(r->node(), r->session());
  };
  int64_t sent = -1;
  while (!ctx->IsCancelled()) {
    auto config = manager_->DesiredConfigFor(r->node());
    if (!config.ok()) return ToGrpcStatus(config.status());
    if (config->generation() != sent) {
      if (!writer->Write(*config)) return grpc::Status::CANCELLED;
      sent = config->generation();
    }
    hub.AwaitGeneration(sent, kPollInterval);
    if (hub.closed()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the manager is shutting down");
    }
  }
  return grpc::Status::CANCELLED;
}

}  // namespace fabric::service
