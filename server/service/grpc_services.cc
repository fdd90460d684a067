#include "server/service/grpc_services.h"

#include <deque>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/latency_trace.h"
#include "common/profiles.h"
#include "common/security/grpc_auth.h"
#include "common/status_macros.h"
#include "server/offers/offer_service.h"
#include "server/service/access_scope.h"
#include "server/service/audit_reader.h"
#include "server/service/convert.h"
#include "server/service/hub_stream.h"
#include "server/service/paginate.h"

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

// Serves a mutation on the callback API: admitted by `admission` (null
// admits everything) as `method`, then started with `start`; the call is
// finished when the manager answers. Returns the call's reactor.
// `owned_answer`: the answer is an allocation or attachment, and an OWN
// caller gets it only if it owns it (see DeleteAllocation).
template <typename Request, typename Response>
grpc::ServerUnaryReactor* ServeMutation(
    grpc::CallbackServerContext* ctx, absl::string_view method,
    AdmissionControl* admission, FabricManager* manager,
    void (FabricManager::*start)(const Request&, FabricManager::Done<Response>),
    const Request& request, Response* out, bool owned_answer = false) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!AdmitCall(admission, method, ctx, reactor)) return reactor;
  std::function<void(absl::StatusOr<Response>)> finish =
      FinishWith(reactor, out);
  if constexpr (std::is_same_v<Response, v1::Allocation> ||
                std::is_same_v<Response, v1::Attachment>) {
    const security::Caller caller = security::CallerOf(*ctx);
    if (owned_answer && NeedsOwnerCheck(caller)) {
      finish = [caller, finish = std::move(finish)](
                   absl::StatusOr<Response> answer) {
        if (answer.ok()) {
          absl::Status own =
              CheckOwner(caller, answer->name(), answer->owner());
          if (!own.ok()) answer = own;
        }
        finish(std::move(answer));
      };
    }
  }
  (manager->*start)(request, ReleasingSlot(admission, std::move(finish)));
  return reactor;
}

// A unary call on the callback API refused before it started.
grpc::ServerUnaryReactor* Refused(grpc::CallbackServerContext* ctx,
                                  const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A unary call on the callback API answered at once with `result`.
template <typename T>
grpc::ServerUnaryReactor* Answered(grpc::CallbackServerContext* ctx,
                                   absl::StatusOr<T> result, T* out) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  FinishWith(reactor, out)(std::move(result));
  return reactor;
}

// OWN (access_scope.h): the allocation or attachment `name`, looked up with
// `get`, must be the caller's. An unknown one passes: the call itself says
// NOT_FOUND (or answers a retried request_id).
template <typename Resource>
absl::Status CheckOwnerOf(
    const grpc::ServerContextBase& ctx, FabricManager* manager,
    absl::StatusOr<Resource> (FabricManager::*get)(absl::string_view),
    absl::string_view name) {
  const security::Caller caller = security::CallerOf(ctx);
  if (!NeedsOwnerCheck(caller)) return absl::OkStatus();
  absl::StatusOr<Resource> resource = (manager->*get)(name);
  if (!resource.ok()) return absl::OkStatus();
  return CheckOwner(caller, resource->name(), resource->owner());
}

// SELF_NODE (access_scope.h): the node a request names must be the caller's.
absl::Status BoundToNode(const grpc::ServerContextBase& ctx,
                         absl::string_view node) {
  return CheckNodeBinding(security::CallerOf(ctx), "node", node);
}

// A claim (CreateAllocation, CreateAttachment): SELF_NODE binds its
// borrower (the request's field `field`) to the caller's node; then, with
// offers, `check(offers, consumer)` refuses a device offered to another
// node. `consumer`: the claim's owner is the borrower's consumer.
template <typename CheckFn>
absl::Status CheckClaim(const security::Caller& caller,
                        absl::string_view field, absl::string_view borrower,
                        offers::OfferService* offers, CheckFn check,
                        absl::string_view owner) {
  if (absl::Status s = CheckNodeBinding(caller, field, borrower); !s.ok()) {
    return s;
  }
  if (offers == nullptr) return absl::OkStatus();
  return check(*offers, owner == offers::ConsumerOwner(borrower));
}

// A read of one allocation or attachment, with the OWN check.
template <typename Resource>
grpc::Status ReplyOwned(const grpc::ServerContextBase& ctx,
                        absl::StatusOr<Resource> resource, Resource* out) {
  if (resource.ok()) {
    absl::Status own = CheckOwner(security::CallerOf(ctx), resource->name(),
                                  resource->owner());
    if (!own.ok()) return ToGrpcStatus(own);
  }
  return Reply(std::move(resource), out);
}

constexpr absl::string_view kShuttingDown = "the manager is shutting down";

// Which events a Watch wants: those of its collections (every collection
// when it names none) and of its fabric (every fabric when it names none).
// A caller whose scope is its own resources (OWN, SELF_NODE) watches only
// the allocations and attachments it owns, as it may only read those.
class WatchFilter {
 public:
  // INVALID_ARGUMENT naming an unknown collection; the lookup's error for
  // an unknown fabric.
  static absl::StatusOr<WatchFilter> Make(const v1::WatchRequest& r,
                                          const security::Caller& caller,
                                          FabricManager* manager) {
    constexpr absl::string_view kCollections[] = {
        "fabrics", "nodes", "links", "allocations", "attachments"};
    WatchFilter filter;
    for (const auto& c : r.collections()) {
      if (!absl::c_linear_search(kCollections, c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "collections: unknown collection \"", c,
            "\"; use fabrics, nodes, links, allocations or attachments"));
      }
      filter.collections_.insert(c);
    }
    if (NeedsOwnerCheck(caller)) {
      filter.owner_only_ = true;
      filter.owner_ = caller.OwnerName();
    }
    if (!r.fabric().empty()) {
      ASSIGN_OR_RETURN(v1::Fabric f, manager->GetFabric(r.fabric()));
      filter.fabric_ = f.name();
    }
    return filter;
  }

  bool Wants(const v1::WatchEvent& e) const {
    absl::string_view collection, of_fabric;
    if (owner_only_) {
      const bool own =
          (e.has_allocation() && e.allocation().owner() == owner_) ||
          (e.has_attachment() && e.attachment().owner() == owner_);
      if (!own) return false;
    }
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
    return (collections_.empty() || collections_.contains(collection)) &&
           (fabric_.empty() || of_fabric == fabric_);
  }

  // The fabric's name; empty for every fabric.
  const std::string& fabric() const { return fabric_; }
  // The owner every allocation and attachment must have; empty for any.
  const std::string& owner() const { return owner_; }

 private:
  absl::flat_hash_set<std::string> collections_;
  std::string fabric_;
  // Only the allocations and attachments `owner_` owns.
  bool owner_only_ = false;
  std::string owner_;
};

// What a Watch with initial_state sends first: every resource `filter`
// wants, as ADDED, then SYNCED stamped `seen` (the events after it follow).
absl::StatusOr<std::deque<v1::WatchEvent>> InitialState(
    FabricManager* manager, const WatchFilter& filter, int64_t seen) {
  std::deque<v1::WatchEvent> out;
  auto add = [&](v1::WatchEvent e) {
    e.set_type(v1::WatchEvent::ADDED);
    if (filter.Wants(e)) out.push_back(std::move(e));
  };
  std::vector<v1::Fabric> fabrics;
  RETURN_IF_ERROR(ForEachPage(
      v1::ListFabricsRequest(),
      [&](const auto& req) { return manager->ListFabrics(req); },
      [&](const v1::ListFabricsResponse& page) {
        fabrics.insert(fabrics.end(), page.fabrics().begin(),
                       page.fabrics().end());
      }));
  for (const v1::Fabric& f : fabrics) {
    v1::WatchEvent e;
    *e.mutable_fabric() = f;
    add(std::move(e));
    v1::ListNodesRequest ln;
    ln.set_fabric(f.name());
    RETURN_IF_ERROR(ForEachPage(
        ln, [&](const auto& req) { return manager->ListNodes(req); },
        [&](const v1::ListNodesResponse& page) {
          for (const auto& n : page.nodes()) {
            v1::WatchEvent ne;
            *ne.mutable_node() = n;
            add(std::move(ne));
          }
        }));
    v1::ListLinksRequest ll;
    ll.set_fabric(f.name());
    RETURN_IF_ERROR(ForEachPage(
        ll, [&](const auto& req) { return manager->ListLinks(req); },
        [&](const v1::ListLinksResponse& page) {
          for (const auto& l : page.links()) {
            v1::WatchEvent le;
            *le.mutable_link() = l;
            add(std::move(le));
          }
        }));
  }
  v1::ListAllocationsRequest la;
  la.set_fabric(filter.fabric());
  la.set_owner(filter.owner());
  RETURN_IF_ERROR(ForEachPage(
      la, [&](const auto& req) { return manager->ListAllocations(req); },
      [&](const v1::ListAllocationsResponse& page) {
        for (const auto& a : page.allocations()) {
          v1::WatchEvent e;
          *e.mutable_allocation() = a;
          add(std::move(e));
        }
      }));
  v1::ListAttachmentsRequest lat;
  lat.set_fabric(filter.fabric());
  lat.set_owner(filter.owner());
  RETURN_IF_ERROR(ForEachPage(
      lat, [&](const auto& req) { return manager->ListAttachments(req); },
      [&](const v1::ListAttachmentsResponse& page) {
        for (const auto& a : page.attachments()) {
          v1::WatchEvent e;
          *e.mutable_attachment() = a;
          add(std::move(e));
        }
      }));
  v1::WatchEvent synced;
  synced.set_type(v1::WatchEvent::SYNCED);
  synced.set_sequence(seen);
  out.push_back(std::move(synced));
  return out;
}

// A Watch: the initial state when asked for, then every event after it
// that the filter wants, in order. Ends with ABORTED when events it has
// not read yet are dropped from the hub's buffer (the client reads too
// slowly), and with UNAVAILABLE once the hub is closed.
class WatchStream final : public HubStream<v1::WatchEvent> {
 public:
  WatchStream(FabricManager* manager, WatchFilter filter, bool initial_state)
      : HubStream(&manager->hub(), /*periodic=*/false),
        subscription_(&manager->hub()),
        filter_(std::move(filter)) {
    // Events after `seen` are streamed; taking it (after subscribing, before
    // the snapshot) means a change racing with the snapshot is sent (again)
    // rather than lost.
    const int64_t seen = hub()->last_sequence();
    absl::StatusOr<std::deque<v1::WatchEvent>> initial =
        std::deque<v1::WatchEvent>();
    if (initial_state) initial = InitialState(manager, filter_, seen);
    absl::MutexLock l(&mu_);
    seen_ = seen;
    if (initial.ok()) {
      pending_ = *std::move(initial);
    } else {
      failed_ = initial.status();
    }
  }

 private:
  absl::StatusOr<bool> NextLocked(v1::WatchEvent* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    // A snapshot cut short is never sent as if it were whole.
    if (!failed_.ok()) return failed_;
    while (pending_.empty()) {
      std::vector<v1::WatchEvent> batch;
      switch (hub()->Read(seen_, &batch)) {
        case WatchHub::ReadResult::kClosed:
          return absl::UnavailableError(kShuttingDown);
        case WatchHub::ReadResult::kFellBehind:
          return absl::AbortedError(
              "watch fell behind the event buffer; list again and start a "
              "new watch");
        case WatchHub::ReadResult::kNothingNew:
          return false;
        case WatchHub::ReadResult::kOk:
          break;
      }
      for (auto& e : batch) {
        seen_ = e.sequence();
        if (filter_.Wants(e)) pending_.push_back(std::move(e));
      }
    }
    *out = std::move(pending_.front());
    pending_.pop_front();
    return true;
  }

  const WatchHub::Subscription subscription_;  // counts it while it lives
  const WatchFilter filter_;
  // The newest event taken from the hub.
  int64_t seen_ ABSL_GUARDED_BY(mu_) = 0;
  // Taken, not written yet, in order: the initial state, then at most one
  // Read's worth (256 events).
  std::deque<v1::WatchEvent> pending_ ABSL_GUARDED_BY(mu_);
  // Why the initial state could not be read: the stream ends with it.
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
};

// An agent's config stream: the node's desired configuration, then the
// newest one each time it changes. Only the newest matters (it carries
// everything), so generations that come while a write is in flight are
// coalesced into one. The agent's own stream (a session) sends nothing for
// a generation that changes nothing for its node (most of them: a commit
// touches a few nodes of a fabric): it does not even compute the
// configuration when no generation since the one it sent named its node
// (FabricManager::ConfigChangedAt), and when one did but the content is
// the same, it tells the manager (ConfigUnchanged); either way the agent
// neither applies nor reports it. A reader without a session gets every
// generation.
class ConfigStream final : public HubStream<agentproto::v1::DesiredConfig> {
 public:
  // REQUIRES: manager->ConfigStreamOpened(node, session) succeeded; the
  // stream calls ConfigStreamClosed(node, session) once it is over.
  ConfigStream(FabricManager* manager, std::string node, int64_t session)
      // Periodic: the node's configuration can become an error without a
      // new generation (an agent of a node in no fabric that goes silent is
      // forgotten), which the synchronous loop noticed on its poll. A
      // session's stream is woken only by generations that name its node
      // (and by the periodic tick); a reader without one, by every one.
      : HubStream(&manager->hub(), /*periodic=*/true,
                  session != 0 ? ParseName("node", node, "nodes").value_or("")
                               : ""),
        manager_(manager),
        node_(std::move(node)),
        session_(session) {}

 private:
  absl::StatusOr<bool> NextLocked(agentproto::v1::DesiredConfig* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    // The first configuration is sent even when the hub is already closed.
    if (fetched_ && hub()->closed()) {
      return absl::UnavailableError(kShuttingDown);
    }
    const int64_t generation = hub()->generation();
    const absl::Time now = absl::Now();
    if (fetched_ && generation == fetched_generation_ &&
        !(in_no_fabric_ && now >= fetched_at_ + WatchHub::kRecheckInterval)) {
      return false;
    }
    if (session_ != 0 && sent_ > 0 && !in_no_fabric_ &&
        manager_->ConfigChangedAt(node_) <= std::max(sent_, same_through_)) {
      // No generation since the one sent changed this node (the commits
      // named other nodes): nothing to compute or send, and the agent, by
      // holding what was sent, holds them all (ManagerState::
      // HeldGeneration).
      fetched_generation_ = generation;
      return false;
    }
    ASSIGN_OR_RETURN(agentproto::v1::DesiredConfig config,
                     manager_->DesiredConfigFor(node_));
    fetched_ = true;
    fetched_generation_ = generation;
    fetched_at_ = now;
    in_no_fabric_ = config.fabric().empty();
    const int64_t fetched = config.generation();
    if (fetched == sent_) return false;
    if (session_ != 0) {
      std::string content = ConfigContent(&config);
      if (sent_ > 0 && content == sent_content_) {
        manager_->ConfigUnchanged(node_, session_, sent_, fetched);
        same_through_ = fetched;
        return false;
      }
      sent_content_ = std::move(content);
    }
    sent_ = fetched;
    LatencyTrace::Record("manager.config_sent", node_, sent_);
    *out = std::move(config);
    return true;
  }

  void Ended() override { manager_->ConfigStreamClosed(node_, session_); }

  FabricManager* const manager_;  // not owned
  const std::string node_;
  const int64_t session_;
  bool fetched_ ABSL_GUARDED_BY(mu_) = false;
  // The hub's generation and the time when the configuration was last
  // fetched.
  int64_t fetched_generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time fetched_at_ ABSL_GUARDED_BY(mu_);
  // The node was in no fabric then: its configuration is fetched again
  // every WatchHub::kRecheckInterval, as the synchronous loop polled it.
  bool in_no_fabric_ ABSL_GUARDED_BY(mu_) = false;
  int64_t sent_ ABSL_GUARDED_BY(mu_) = -1;  // the generation last written
  // Of a session's stream: ConfigContent of the configuration last written.
  std::string sent_content_ ABSL_GUARDED_BY(mu_);
  // Of a session's stream: the newest generation found to want the same
  // as sent_ (ConfigUnchanged); 0 before any.
  int64_t same_through_ ABSL_GUARDED_BY(mu_) = 0;
};

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

grpc::ServerUnaryReactor* FabricServiceImpl::CreateFabric(
    grpc::CallbackServerContext* ctx, const v1::CreateFabricRequest* r,
    v1::Fabric* out) {
  return ServeMutation(ctx, "CreateFabric", admission_, manager_,
                       &FabricManager::CreateFabricAsync, *r, out);
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
grpc::ServerUnaryReactor* FabricServiceImpl::DeleteFabric(
    grpc::CallbackServerContext* ctx, const v1::DeleteFabricRequest* r,
    v1::Fabric* out) {
  return ServeMutation(ctx, "DeleteFabric", admission_, manager_,
                       &FabricManager::DeleteFabricAsync, *r, out);
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
grpc::ServerUnaryReactor* FabricServiceImpl::SetLinkState(
    grpc::CallbackServerContext* ctx, const v1::SetLinkStateRequest* r,
    v1::Link* out) {
  return ServeMutation(ctx, "SetLinkState", admission_, manager_,
                       &FabricManager::SetLinkStateAsync, *r, out);
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
  const v1::Allocation& a = r->allocation();
  const security::Caller caller = security::CallerOf(*ctx);
  absl::StatusOr<std::string> owner =
      OwnerForCreate(caller, "allocation.owner", a.owner());
  if (!owner.ok()) return Refused(ctx, owner.status());
  if (absl::Status s = CheckClaim(
          caller, "allocation.borrower", a.borrower(), offers_,
          [&](offers::OfferService& o, bool consumer) {
            return o.CheckMemoryClaim(a.borrower(), a.target(), a.size(),
                                      consumer);
          },
          *owner);
      !s.ok()) {
    return Refused(ctx, s);
  }
  v1::CreateAllocationRequest owned = *r;
  owned.mutable_allocation()->set_owner(*std::move(owner));
  return ServeMutation(ctx, "CreateAllocation", admission_, manager_,
                       &FabricManager::CreateAllocationAsync, owned, out);
}
grpc::Status FabricServiceImpl::GetAllocation(grpc::ServerContext* ctx,
                                              const v1::GetAllocationRequest* r,
                                              v1::Allocation* out) {
  return ReplyOwned(*ctx, manager_->GetAllocation(r->name()), out);
}
grpc::Status FabricServiceImpl::ListAllocations(
    grpc::ServerContext* ctx, const v1::ListAllocationsRequest* r,
    v1::ListAllocationsResponse* out) {
  absl::StatusOr<std::string> owner =
      OwnerFilter(security::CallerOf(*ctx), "owner", r->owner());
  if (!owner.ok()) return ToGrpcStatus(owner.status());
  v1::ListAllocationsRequest own = *r;
  own.set_owner(*std::move(owner));
  return Reply(manager_->ListAllocations(own), out);
}
grpc::ServerUnaryReactor* FabricServiceImpl::DeleteAllocation(
    grpc::CallbackServerContext* ctx, const v1::DeleteAllocationRequest* r,
    v1::Allocation* out) {
  if (absl::Status own = CheckOwnerOf(*ctx, manager_,
                                      &FabricManager::GetAllocation, r->name());
      !own.ok()) {
    return Refused(ctx, own);
  }
  // The check above passes for a name already released; a retry of its
  // request_id is answered with the released allocation, which only its
  // owner may read.
  return ServeMutation(ctx, "DeleteAllocation", admission_, manager_,
                       &FabricManager::DeleteAllocationAsync, *r, out,
                       /*owned_answer=*/true);
}

grpc::Status FabricServiceImpl::ListProfiles(grpc::ServerContext*,
                                             const v1::ListProfilesRequest*,
                                             v1::ListProfilesResponse* out) {
  for (const auto& p : core::AllProfiles())
    *out->add_profiles() = ProfileToProto(p);
  return grpc::Status::OK;
}

grpc::Status FabricServiceImpl::ListManagers(grpc::ServerContext*,
                                             const v1::ListManagersRequest*,
                                             v1::ListManagersResponse* out) {
  return Reply(ListManagersFrom(managers_), out);
}

grpc::Status FabricServiceImpl::ReadAuditLog(
    grpc::ServerContext*, const v1::ReadAuditLogRequest* r,
    v1::ReadAuditLogResponse* out) {
  return Reply(service::ReadAuditLog(audit_, *r), out);
}

grpc::Status FabricServiceImpl::VerifyAllocation(
    grpc::ServerContext* ctx, const v1::VerifyAllocationRequest* r,
    v1::VerifyResult* out) {
  absl::Status own =
      CheckOwnerOf(*ctx, manager_, &FabricManager::GetAllocation, r->name());
  return own.ok() ? Reply(relay_.Verify(*r), out) : ToGrpcStatus(own);
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
grpc::ServerUnaryReactor* FabricServiceImpl::CreateAttachment(
    grpc::CallbackServerContext* ctx, const v1::CreateAttachmentRequest* r,
    v1::Attachment* out) {
  const v1::Attachment& a = r->attachment();
  const security::Caller caller = security::CallerOf(*ctx);
  absl::StatusOr<std::string> owner =
      OwnerForCreate(caller, "attachment.owner", a.owner());
  if (!owner.ok()) return Refused(ctx, owner.status());
  if (absl::Status s = CheckClaim(
          caller, "attachment.borrower", a.borrower(), offers_,
          [&](offers::OfferService& o, bool consumer) {
            return o.CheckVfClaim(a.borrower(), a.vf(), consumer);
          },
          *owner);
      !s.ok()) {
    return Refused(ctx, s);
  }
  v1::CreateAttachmentRequest owned = *r;
  owned.mutable_attachment()->set_owner(*std::move(owner));
  return ServeMutation(ctx, "CreateAttachment", admission_, manager_,
                       &FabricManager::CreateAttachmentAsync, owned, out);
}
grpc::Status FabricServiceImpl::GetAttachment(grpc::ServerContext* ctx,
                                              const v1::GetAttachmentRequest* r,
                                              v1::Attachment* out) {
  return ReplyOwned(*ctx, manager_->GetAttachment(r->name()), out);
}
grpc::Status FabricServiceImpl::ListAttachments(
    grpc::ServerContext* ctx, const v1::ListAttachmentsRequest* r,
    v1::ListAttachmentsResponse* out) {
  absl::StatusOr<std::string> owner =
      OwnerFilter(security::CallerOf(*ctx), "owner", r->owner());
  if (!owner.ok()) return ToGrpcStatus(owner.status());
  v1::ListAttachmentsRequest own = *r;
  own.set_owner(*std::move(owner));
  return Reply(manager_->ListAttachments(own), out);
}
grpc::ServerUnaryReactor* FabricServiceImpl::DeleteAttachment(
    grpc::CallbackServerContext* ctx, const v1::DeleteAttachmentRequest* r,
    v1::Attachment* out) {
  if (absl::Status own = CheckOwnerOf(*ctx, manager_,
                                      &FabricManager::GetAttachment, r->name());
      !own.ok()) {
    return Refused(ctx, own);
  }
  // As DeleteAllocation: a retry's answer is checked too.
  return ServeMutation(ctx, "DeleteAttachment", admission_, manager_,
                       &FabricManager::DeleteAttachmentAsync, *r, out,
                       /*owned_answer=*/true);
}
grpc::Status FabricServiceImpl::AccessShadow(grpc::ServerContext* ctx,
                                             const v1::AccessShadowRequest* r,
                                             v1::AccessShadowResponse* out) {
  absl::Status own = CheckOwnerOf(*ctx, manager_, &FabricManager::GetAttachment,
                                  r->attachment());
  return own.ok() ? Reply(relay_.AccessShadow(*r), out) : ToGrpcStatus(own);
}
grpc::Status FabricServiceImpl::VerifyAttachment(
    grpc::ServerContext* ctx, const v1::VerifyAttachmentRequest* r,
    v1::VerifyResult* out) {
  absl::Status own =
      CheckOwnerOf(*ctx, manager_, &FabricManager::GetAttachment, r->name());
  return own.ok() ? Reply(relay_.VerifyAttachment(*r), out) : ToGrpcStatus(own);
}
grpc::Status FabricServiceImpl::RaiseVfInterrupt(
    grpc::ServerContext* ctx, const v1::RaiseVfInterruptRequest* r,
    v1::RaiseVfInterruptResponse* out) {
  absl::Status own = CheckOwnerOf(*ctx, manager_, &FabricManager::GetAttachment,
                                  r->attachment());
  return own.ok() ? Reply(relay_.RaiseVfInterrupt(*r), out) : ToGrpcStatus(own);
}
grpc::Status HypervisorServiceImpl::SetVmState(
    grpc::ServerContext* ctx, const hypervisor::v1::SetVmStateRequest* r,
    hypervisor::v1::SetVmStateResponse* out) {
  absl::Status bound = BoundToNode(*ctx, r->node());
  if (!bound.ok()) return ToGrpcStatus(bound);
  return Reply(relay_.SetVmState(*r), out);
}

grpc::ServerUnaryReactor* FabricServiceImpl::Ping(
    grpc::CallbackServerContext* ctx, const v1::PingRequest*,
    v1::PingResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchEvent>* FabricServiceImpl::Watch(
    grpc::CallbackServerContext* ctx, const v1::WatchRequest* r) {
  absl::StatusOr<WatchFilter> filter =
      WatchFilter::Make(*r, security::CallerOf(*ctx), manager_);
  if (!filter.ok()) return FailedStream<v1::WatchEvent>(filter.status());
  auto* stream =
      new WatchStream(manager_, *std::move(filter), r->initial_state());
  stream->Start(ctx);
  return stream;
}

grpc::ServerUnaryReactor* AgentServiceImpl::RegisterNode(
    grpc::CallbackServerContext* ctx,
    const agentproto::v1::RegisterNodeRequest* r,
    agentproto::v1::RegisterNodeResponse* out) {
  return Answered(ctx, Register(*ctx, *r), out);
}

absl::StatusOr<agentproto::v1::RegisterNodeResponse>
AgentServiceImpl::Register(const grpc::ServerContextBase& ctx,
                           const agentproto::v1::RegisterNodeRequest& r) {
  RETURN_IF_ERROR(BoundToNode(ctx, r.node()));
  if (!absl::StartsWith(r.control_address(), ":")) {
    return manager_->RegisterNode(r);
  }
  // ":PORT": the agent listens on every address; it is reached at the
  // address its connection comes from.
  std::string host = PeerHost(ctx.peer());
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control_address: \"", r.control_address(),
        "\" has no host and the connection's peer (",
        ctx.peer().substr(0, 64),
        ") has none to use; start the agent with --advertise"));
  }
  agentproto::v1::RegisterNodeRequest completed = r;
  completed.set_control_address(absl::StrCat(host, r.control_address()));
  return manager_->RegisterNode(completed);
}

grpc::ServerUnaryReactor* AgentServiceImpl::ReportStatus(
    grpc::CallbackServerContext* ctx,
    const agentproto::v1::ReportStatusRequest* r,
    agentproto::v1::ReportStatusResponse* out) {
  absl::Status bound = BoundToNode(*ctx, r->node());
  if (!bound.ok()) return Refused(ctx, bound);
  return Answered(ctx, manager_->ReportStatus(*r), out);
}

grpc::ServerWriteReactor<agentproto::v1::DesiredConfig>*
AgentServiceImpl::StreamConfig(grpc::CallbackServerContext* ctx,
                               const agentproto::v1::StreamConfigRequest* r) {
  absl::Status bound = BoundToNode(*ctx, r->node());
  if (!bound.ok()) return FailedStream<agentproto::v1::DesiredConfig>(bound);
  if (absl::Status opened =
          manager_->ConfigStreamOpened(r->node(), r->session());
      !opened.ok()) {
    return FailedStream<agentproto::v1::DesiredConfig>(opened);
  }
  auto* stream = new ConfigStream(manager_, r->node(), r->session());
  stream->Start(ctx);
  return stream;
}

}  // namespace fabric::service
