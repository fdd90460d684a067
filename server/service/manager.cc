#include "server/service/manager.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/latency_trace.h"
#include "common/status_macros.h"
#include "google/protobuf/empty.pb.h"
#include "server/core/invariants.h"
#include "server/service/attachment_planner.h"
#include "server/service/convert.h"
#include "server/service/fabric_ops.h"
#include "server/service/leases.h"
#include "server/service/node_holdings.h"
#include "server/service/paginate.h"
#include "server/service/records.h"
#include "server/service/recovery.h"
#include "server/service/validate.h"
#include "server/service/views.h"

namespace fabric::service {
namespace {

// Old request ids one sweep may forget.
constexpr size_t kForgetPerSweep = 4096;
// Silent agents handled per hold of the lock. A batch costs one pass over
// the leases of its nodes' fabrics however many nodes it has, so a rack
// that goes silent at once costs a few passes, not one per node.
constexpr size_t kSilentPerLock = 256;

}  // namespace

FabricManager::FabricManager(store::Store* store, Clock* clock,
                             ManagerOptions options)
    : store_(store),
      clock_(clock),
      options_(options),
      state_(&hub_),
      agents_(&state_, clock, options_),
      commits_(store, clock, &mu_, options_) {}

FabricManager::~FabricManager() { Shutdown(); }

absl::StatusOr<std::unique_ptr<FabricManager>> FabricManager::Open(
    store::Store* store, Clock* clock, ManagerOptions options) {
  RETURN_IF_ERROR(ValidateManagerOptions(options));
  std::unique_ptr<FabricManager> m(new FabricManager(store, clock, options));
  {
    absl::MutexLock l(&m->mu_);
    m->commits_.AssertHeld();
    RETURN_IF_ERROR(Recover(store, &m->state_, &m->commits_.requests()));
    // What the agents held as the last leader heard it: their nodes' leases
    // stay READY until the agents reconnect to this manager.
    ASSIGN_OR_RETURN(auto holdings, LoadHoldings(store));
    m->agents_.Presume(holdings);
    // Recovery commits every lease PENDING, waiting for no node; derive
    // each once from what was loaded and presumed, so that the indexes,
    // the metrics and the first answers start from the states they serve.
    for (const auto& [fid, f] : m->state_.fabrics) {
      RefreshFabricLeases(m->state_, fid);
    }
  }
  if (options.sweep_interval > absl::ZeroDuration()) {
    FabricManager* raw = m.get();
    m->sweeper_ = std::thread([raw] { raw->SweeperLoop(); });
  }
  return m;
}

void FabricManager::Shutdown() {
  // Refuses new mutations and lets a leader finish what was planned.
  if (!commits_.Close()) return;
  stop_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
  hub_.Close();
}

void FabricManager::SweeperLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.sweep_interval)) {
    Sweep();
  }
}

absl::StatusOr<std::string> FabricManager::OnlyFabric(
    absl::string_view fabric) const {
  if (fabric.empty()) return std::string();
  ASSIGN_OR_RETURN(FabricEntry * f, state_.FindFabric("fabric", fabric));
  return f->id();
}

absl::StatusOr<std::vector<const FabricEntry*>> FabricManager::ListedFabrics(
    absl::string_view fabric) const {
  std::vector<const FabricEntry*> out;
  if (!fabric.empty()) {
    ASSIGN_OR_RETURN(FabricEntry * f, state_.FindFabric("fabric", fabric));
    out.push_back(f);
    return out;
  }
  for (const auto& [id, f] : state_.fabrics) out.push_back(f.get());
  return out;
}

// --- Fabrics -----------------------------------------------------------------

absl::StatusOr<v1::Fabric> FabricManager::CreateFabric(
    const v1::CreateFabricRequest& req) {
  return AwaitResult<v1::Fabric>(
      [&](Done<v1::Fabric> done) { CreateFabricAsync(req, std::move(done)); });
}

void FabricManager::CreateFabricAsync(const v1::CreateFabricRequest& req,
                                      Done<v1::Fabric> done) {
  absl::StatusOr<FabricDraft> draft = FabricDraft::FromSpec(req.spec());
  if (!draft.ok()) {
    done(draft.status());
    return;
  }
  AdminMutateAsync<v1::Fabric>(
      "CreateFabric", req,
      [this, draft = *std::move(draft)](const v1::CreateFabricRequest& r)
          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return PlanCreateFabric(state_, r, draft, clock_->Now());
          },
      std::move(done));
}

template <typename Response, typename Request, typename PlanFn>
void FabricManager::AdminMutateAsync(absl::string_view method,
                                     const Request& req, PlanFn plan,
                                     Done<Response> done) {
  auto r = std::make_shared<const Request>(req);
  admin_.Run([this, method = std::string(method), r, plan = std::move(plan),
              done = ParseInto<Response>(std::move(done))](
                 Sequencer::Finished finished) {
    commits_.MutateAsync(
        method, r->request_id(), *r,
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return plan(*r); },
        [finished = std::move(finished),
         done](absl::StatusOr<std::string> result) {
          // The outcome is known: the next one may be planned.
          finished();
          done(std::move(result));
        });
  });
}

absl::StatusOr<v1::Fabric> FabricManager::GetFabric(absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(FabricEntry * f, state_.FindFabric("name", name));
  return FabricView(state_, *f);
}

absl::StatusOr<v1::ListFabricsResponse> FabricManager::ListFabrics(
    const v1::ListFabricsRequest& req) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(Pager pager, Pager::Start(req.page_size(), req.page_token()));
  v1::ListFabricsResponse out;
  const auto& fabrics = state_.fabrics;
  for (auto it = pager.after() ? fabrics.upper_bound(*pager.after())
                               : fabrics.begin();
       it != fabrics.end() && pager.Offer(it->first); ++it) {
    *out.add_fabrics() = FabricView(state_, *it->second);
  }
  out.set_next_page_token(std::move(pager).next_token());
  return out;
}

absl::StatusOr<v1::Fabric> FabricManager::DeleteFabric(
    const v1::DeleteFabricRequest& req) {
  return AwaitResult<v1::Fabric>(
      [&](Done<v1::Fabric> done) { DeleteFabricAsync(req, std::move(done)); });
}

void FabricManager::DeleteFabricAsync(const v1::DeleteFabricRequest& req,
                                      Done<v1::Fabric> done) {
  AdminMutateAsync<v1::Fabric>(
      "DeleteFabric", req,
      [this](const v1::DeleteFabricRequest& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
          mu_) { return PlanDeleteFabric(state_, r); },
      std::move(done));
}

// --- Nodes, bridges, links, maps ---------------------------------------------

absl::StatusOr<v1::Node> FabricManager::GetNode(absl::string_view name) {
  absl::MutexLock l(&mu_);
  auto fn = state_.FindNode("name", name);
  if (!fn.ok()) {
    // A node in no fabric whose agent is connected: its (empty) state.
    const AgentEntry* agent = state_.UnassignedAgent(name);
    if (agent != nullptr) {
      return UnassignedNodeView(state_, *ParseName("name", name, "nodes"),
                                *agent);
    }
    return fn.status();
  }
  return NodeView(state_, *fn->first, fn->second);
}

#define FABRIC_LIST_IMPL(Method, Resp, adder, order, key_expr, view)       \
  absl::StatusOr<v1::Resp> FabricManager::Method(                         \
      const v1::Method##Request& req) {                                   \
    absl::MutexLock l(&mu_);                                              \
    /* The views run in lambdas, where the analysis cannot see mu_. */    \
    const ManagerState* state = &state_;                                  \
    (void)state;                                                          \
    auto listed = ListedFabrics(req.fabric());                            \
    if (!listed.ok()) return listed.status();                             \
    const std::vector<const FabricEntry*>& fabrics = *listed;             \
    std::vector<size_t> sizes;                                            \
    for (const FabricEntry* f : fabrics) sizes.push_back(f->order.size()); \
    v1::Resp out;                                                         \
    auto next = PageMerged(                                               \
            sizes, req.page_size(), req.page_token(),                     \
            [&](size_t k, size_t j) -> const std::string& {               \
              const FabricEntry& f = *fabrics[k];                         \
              const int i = f.order[j];                                   \
              return key_expr;                                            \
            },                                                            \
            [&](size_t k, size_t j) {                                     \
              const FabricEntry& f = *fabrics[k];                         \
              const int i = f.order[j];                                   \
              *out.adder() = view;                                        \
            });                                                           \
    if (!next.ok()) return next.status();                                 \
    out.set_next_page_token(*std::move(next));                            \
    return out;                                                           \
  }

FABRIC_LIST_IMPL(ListNodes, ListNodesResponse, add_nodes, nodes_by_name,
                 f.state.topology().node(i).name, NodeView(*state, f, i))
FABRIC_LIST_IMPL(ListBridges, ListBridgesResponse, add_bridges, nodes_by_name,
                 f.state.topology().node(i).name, BridgeView(*state, f, i))
FABRIC_LIST_IMPL(ListLinks, ListLinksResponse, add_links, links_by_name,
                 f.state.topology().links()[i].name, LinkView(f, i))
FABRIC_LIST_IMPL(ListAddressMaps, ListAddressMapsResponse, add_address_maps,
                 nodes_by_name, f.state.topology().node(i).name,
                 MapView(*state, f, i))
#undef FABRIC_LIST_IMPL

absl::StatusOr<v1::Bridge> FabricManager::GetBridge(absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(std::string id, ParseName("name", name, "bridges"));
  ASSIGN_OR_RETURN(auto fn, state_.FindNode("name", id));
  return BridgeView(state_, *fn.first, fn.second);
}

absl::StatusOr<v1::Link> FabricManager::GetLink(absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto fl, state_.FindLink("name", name));
  return LinkView(*fl.first, fl.second);
}

absl::StatusOr<v1::AddressMap> FabricManager::GetAddressMap(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  absl::string_view bridge = absl::StripSuffix(name, "/addressMap");
  ASSIGN_OR_RETURN(std::string id, ParseName("name", bridge, "bridges"));
  ASSIGN_OR_RETURN(auto fn, state_.FindNode("name", id));
  return MapView(state_, *fn.first, fn.second);
}

absl::StatusOr<v1::Link> FabricManager::SetLinkState(
    const v1::SetLinkStateRequest& req) {
  return AwaitResult<v1::Link>(
      [&](Done<v1::Link> done) { SetLinkStateAsync(req, std::move(done)); });
}

void FabricManager::SetLinkStateAsync(const v1::SetLinkStateRequest& req,
                                      Done<v1::Link> done) {
  AdminMutateAsync<v1::Link>(
      "SetLinkState", req,
      [this](const v1::SetLinkStateRequest& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
          mu_) { return PlanSetLinkState(state_, r); },
      std::move(done));
}

// --- Allocations -------------------------------------------------------------

absl::StatusOr<v1::Allocation> FabricManager::CreateAllocation(
    const v1::CreateAllocationRequest& req) {
  return AwaitResult<v1::Allocation>(
      [&](Done<v1::Allocation> done) { CreateAllocationAsync(req, done); });
}

absl::StatusOr<Plan> FabricManager::PlanAllocation(const v1::Allocation& in,
                                                   absl::Duration ttl) {
  ASSIGN_OR_RETURN(auto from,
                   state_.FindNode("allocation.borrower", in.borrower()));
  ASSIGN_OR_RETURN(auto to, state_.FindNode("allocation.target", in.target()));
  FabricEntry* f = from.first;
  if (to.first != f) {
    return absl::InvalidArgumentError(absl::StrCat(
        "allocation.target: node ", in.target(), " is in fabric ",
        to.first->id(), ", but the borrower is in fabric ", f->id()));
  }
  if (f->deleting) {
    return absl::FailedPreconditionError(
        absl::StrCat("allocation: fabric ", f->id(), " is being deleted"));
  }
  auto grant = f->state.PlanGrant(from.second, to.second, in.size());
  if (!grant.ok()) {
    return absl::Status(grant.status().code(),
                        absl::StrCat("allocation.", grant.status().message()));
  }
  const std::string id = NewLeaseId<v1::Allocation>(state_);
  grant->id = id;
  absl::Status added = f->state.AddGrant(*grant);
  if (!added.ok()) {
    return absl::InternalError(
        absl::StrCat("planned grant was refused (a bug): ", added.message()));
  }
  const core::Topology& topo = f->state.topology();
  auto entry = std::make_unique<AllocationEntry>();
  v1::Allocation& r = entry->record;
  r.set_name(AllocationName(id));
  r.set_fabric(FabricName(f->id()));
  SetPlacement(*grant, topo, &r);
  r.set_owner(in.owner());
  *r.mutable_labels() = in.labels();
  const absl::Time now = clock_->Now();
  *r.mutable_create_time() = ToProtoTime(now);
  if (in.has_ttl()) {
    *r.mutable_ttl() = in.ttl();
    *r.mutable_expire_time() = ToProtoTime(now + ttl);
  }
  Plan plan;
  plan.batch.Put(kTableAllocations, id, r.SerializeAsString());
  v1::Allocation response = r;
  response.set_state(v1::Allocation::PENDING);
  response.set_state_reason("recorded; waiting for the agents on its path");
  if (auto path = f->state.GrantPath(*grant)) {
    for (int n : *path) response.add_path(BridgeName(topo.node(n).name));
  }
  plan.response = response.SerializeAsString();
  PlanNewLease<v1::Allocation>(state_, id, std::move(entry), &plan);
  return plan;
}

void FabricManager::CreateAllocationAsync(
    const v1::CreateAllocationRequest& req, Done<v1::Allocation> done) {
  absl::Duration ttl;
  if (absl::Status valid = ValidateNewAllocation(req.allocation(), &ttl);
      !valid.ok()) {
    done(valid);
    return;
  }
  commits_.MutateAsync(
      "CreateAllocation", req.request_id(), req,
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return PlanAllocation(req.allocation(), ttl);
      },
      ParseInto<v1::Allocation>(std::move(done)));
}

absl::StatusOr<v1::Allocation> FabricManager::GetAllocation(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AllocationEntry * a,
                   FindLease<v1::Allocation>(state_, "name", name));
  return LeaseView(state_, *a);
}

absl::StatusOr<v1::ListAllocationsResponse> FabricManager::ListAllocations(
    const v1::ListAllocationsRequest& req) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(const std::string only_fabric, OnlyFabric(req.fabric()));
  LeaseScope scope;
  if (!only_fabric.empty()) scope.fabric = state_.fabrics.at(only_fabric).get();
  v1::ListAllocationsResponse out;
  if (!req.node().empty()) {
    ASSIGN_OR_RETURN(const std::string node,
                     ParseName("node", req.node(), "nodes"));
    auto fn = state_.FindNode("node", node);
    if (!fn.ok()) {
      return absl::NotFoundError(
          absl::StrCat("node: node \"", node, "\" not found"));
    }
    // A node of another fabric than the one asked for is an end of none.
    if (scope.fabric != nullptr && scope.fabric != fn->first) return out;
    scope = LeaseScope{fn->first, fn->second};
  }
  RETURN_IF_ERROR(ListLeases<v1::Allocation>(
      state_, scope,
      [&](const AllocationEntry& a) {
        return req.owner().empty() || a.record.owner() == req.owner();
      },
      req.page_size(), req.page_token(), out.mutable_allocations(),
      out.mutable_next_page_token()));
  return out;
}

absl::StatusOr<v1::Allocation> FabricManager::DeleteAllocation(
    const v1::DeleteAllocationRequest& req) {
  return AwaitResult<v1::Allocation>(
      [&](Done<v1::Allocation> done) { DeleteAllocationAsync(req, done); });
}

void FabricManager::DeleteAllocationAsync(
    const v1::DeleteAllocationRequest& req, Done<v1::Allocation> done) {
  ReleaseAsync<v1::Allocation>("DeleteAllocation", req.name(), "released",
                               req.request_id(), req, std::move(done));
}

template <typename Record>
void FabricManager::ReleaseAsync(absl::string_view method,
                                 absl::string_view name,
                                 absl::string_view reason,
                                 absl::string_view request_id,
                                 const google::protobuf::Message& request,
                                 Done<Record> done) {
  commits_.MutateAsync(
      method, request_id, request,
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return PlanRelease<Record>(state_, name, reason);
      },
      ParseInto<Record>(std::move(done)));
}

// --- Virtual functions and attachments ---------------------------------------

absl::StatusOr<v1::ListVirtualFunctionsResponse>
FabricManager::ListVirtualFunctions(const v1::ListVirtualFunctionsRequest& req) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(const std::string only_fabric, OnlyFabric(req.fabric()));
  std::string only_node;
  if (!req.node().empty()) {
    ASSIGN_OR_RETURN(auto fn, state_.FindNode("node", req.node()));
    only_node = fn.first->state.topology().node(fn.second).name;
  }
  std::map<std::string, v1::VirtualFunction> all;
  for (const auto& [fid, f] : state_.fabrics) {
    if (!only_fabric.empty() && fid != only_fabric) continue;
    const core::Topology& topo = f->state.topology();
    for (int n = 0; n < topo.node_count(); ++n) {
      if (!only_node.empty() && topo.node(n).name != only_node) continue;
      for (v1::VirtualFunction& v : VfViews(state_, *f, n)) {
        std::string key = v.name();
        all.emplace(std::move(key), std::move(v));
      }
    }
  }
  std::vector<std::string> keys;
  for (const auto& [k, v] : all) keys.push_back(k);
  ASSIGN_OR_RETURN(Page p, Paginate(keys, req.page_size(), req.page_token()));
  v1::ListVirtualFunctionsResponse out;
  for (size_t i = p.begin; i < p.end; ++i) {
    *out.add_virtual_functions() = std::move(all[keys[i]]);
  }
  out.set_next_page_token(p.next_token);
  return out;
}

absl::StatusOr<v1::VirtualFunction> FabricManager::GetVirtualFunction(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(VfRef ref, state_.FindVf("name", name));
  for (v1::VirtualFunction& v : VfViews(state_, *ref.fabric, ref.node)) {
    if (v.address() == ref.address) return std::move(v);
  }
  return absl::NotFoundError(absl::StrCat("name: node ", ref.node_name,
                                          " reports no VF ", ref.address));
}

absl::StatusOr<v1::Attachment> FabricManager::CreateAttachment(
    const v1::CreateAttachmentRequest& req) {
  return AwaitResult<v1::Attachment>(
      [&](Done<v1::Attachment> done) { CreateAttachmentAsync(req, done); });
}

void FabricManager::CreateAttachmentAsync(
    const v1::CreateAttachmentRequest& req, Done<v1::Attachment> done) {
  uint64_t dma_size = 0;
  if (absl::Status valid = ValidateNewAttachment(req.attachment(), &dma_size);
      !valid.ok()) {
    done(valid);
    return;
  }
  commits_.MutateAsync(
      "CreateAttachment", req.request_id(), req,
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return PlanAttachment(state_, req.attachment(), dma_size,
                              clock_->Now());
      },
      ParseInto<v1::Attachment>(std::move(done)));
}

absl::StatusOr<v1::Attachment> FabricManager::GetAttachment(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AttachmentEntry * a,
                   FindLease<v1::Attachment>(state_, "name", name));
  return LeaseView(state_, *a);
}

absl::StatusOr<v1::ListAttachmentsResponse> FabricManager::ListAttachments(
    const v1::ListAttachmentsRequest& req) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(const std::string only_fabric, OnlyFabric(req.fabric()));
  LeaseScope scope;
  if (!only_fabric.empty()) scope.fabric = state_.fabrics.at(only_fabric).get();
  v1::ListAttachmentsResponse out;
  if (!req.node().empty()) {
    ASSIGN_OR_RETURN(auto fn, state_.FindNode("node", req.node()));
    if (scope.fabric != nullptr && scope.fabric != fn.first) return out;
    scope = LeaseScope{fn.first, fn.second};
  }
  RETURN_IF_ERROR(ListLeases<v1::Attachment>(
      state_, scope,
      [&](const AttachmentEntry& a) {
        return req.owner().empty() || a.record.owner() == req.owner();
      },
      req.page_size(), req.page_token(), out.mutable_attachments(),
      out.mutable_next_page_token()));
  return out;
}

absl::StatusOr<v1::Attachment> FabricManager::DeleteAttachment(
    const v1::DeleteAttachmentRequest& req) {
  return AwaitResult<v1::Attachment>(
      [&](Done<v1::Attachment> done) { DeleteAttachmentAsync(req, done); });
}

void FabricManager::DeleteAttachmentAsync(
    const v1::DeleteAttachmentRequest& req, Done<v1::Attachment> done) {
  ReleaseAsync<v1::Attachment>("DeleteAttachment", req.name(), "detached",
                               req.request_id(), req, std::move(done));
}

absl::StatusOr<FabricManager::AttachmentTarget>
FabricManager::PrepareAttachmentOp(absl::string_view name, bool need_ready) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AttachmentEntry * a,
                   FindLease<v1::Attachment>(state_, "name", name));
  AttachmentTarget out;
  out.attachment = LeaseView(state_, *a);
  if (need_ready && out.attachment.state() != v1::Attachment::READY) {
    return absl::FailedPreconditionError(
        absl::StrCat("name: ", a->record.name(), " is ",
                     v1::Attachment::State_Name(out.attachment.state()),
                     ", not READY: ", out.attachment.state_reason()));
  }
  ASSIGN_OR_RETURN(out.lender_agent,
                   state_.ControlAddress("name", a->record.lender()));
  ASSIGN_OR_RETURN(out.borrower_agent,
                   state_.ControlAddress("name", a->record.borrower()));
  return out;
}

absl::StatusOr<std::string> FabricManager::AgentAddress(
    absl::string_view node) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(auto fn, state_.FindNode("node", node));
  return state_.ControlAddress("node",
                               fn.first->state.topology().node(fn.second).name);
}

// --- Agents ------------------------------------------------------------------

absl::StatusOr<agentproto::v1::RegisterNodeResponse>
FabricManager::RegisterNode(const agentproto::v1::RegisterNodeRequest& req) {
  RETURN_IF_ERROR(ValidateInventory(req.inventory(), "inventory"));
  ASSIGN_OR_RETURN(const std::string node,
                   ParseName("node", req.node(), "nodes"));
  absl::MutexLock l(&mu_);
  return agents_.Register(node, req);
}

absl::StatusOr<agentproto::v1::DesiredConfig> FabricManager::DesiredConfigFor(
    absl::string_view node) {
  absl::MutexLock l(&mu_);
  return agents_.DesiredConfigFor(node);
}

absl::StatusOr<agentproto::v1::ReportStatusResponse>
FabricManager::ReportStatus(const agentproto::v1::ReportStatusRequest& req) {
  if (req.has_inventory()) {
    RETURN_IF_ERROR(ValidateInventory(req.inventory(), "inventory"));
  }
  ASSIGN_OR_RETURN(const std::string node,
                   ParseName("node", req.node(), "nodes"));
  LatencyTrace::Record("manager.report_in", node, req.applied_generation());
  absl::StatusOr<agentproto::v1::ReportStatusResponse> out;
  {
    absl::MutexLock l(&mu_);
    out = agents_.Report(node, req);
  }
  LatencyTrace::Record("manager.report_done", node, req.applied_generation());
  return out;
}

absl::Status FabricManager::ConfigStreamOpened(absl::string_view node,
                                               int64_t session) {
  ASSIGN_OR_RETURN(const std::string id, ParseName("node", node, "nodes"));
  absl::MutexLock l(&mu_);
  return agents_.StreamOpened(id, session);
}

void FabricManager::ConfigStreamClosed(absl::string_view node,
                                       int64_t session) {
  auto id = ParseName("node", node, "nodes");
  if (!id.ok()) return;
  absl::MutexLock l(&mu_);
  agents_.StreamClosed(*id, session);
}

void FabricManager::ConfigUnchanged(absl::string_view node, int64_t session,
                                    int64_t sent, int64_t same_through) {
  auto id = ParseName("node", node, "nodes");
  if (!id.ok()) return;
  absl::MutexLock l(&mu_);
  agents_.ConfigUnchanged(*id, session, sent, same_through);
}

int64_t FabricManager::ConfigChangedAt(absl::string_view node) {
  auto id = ParseName("node", node, "nodes");
  if (!id.ok()) return 0;
  absl::MutexLock l(&mu_);
  return state_.ChangedAt(*id);
}

absl::StatusOr<FabricManager::VerifyTarget> FabricManager::PrepareVerify(
    absl::string_view name) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(AllocationEntry * a,
                   FindLease<v1::Allocation>(state_, "name", name));
  VerifyTarget out;
  out.allocation = LeaseView(state_, *a);
  if (out.allocation.state() != v1::Allocation::READY) {
    return absl::FailedPreconditionError(
        absl::StrCat("name: ", a->record.name(), " is ",
                     v1::Allocation::State_Name(out.allocation.state()),
                     ", not READY: ", out.allocation.state_reason()));
  }
  for (const auto& [node, field] :
       {std::pair<std::string, std::string*>{out.allocation.borrower(),
                                             &out.borrower_agent},
        {out.allocation.target(), &out.target_agent}}) {
    const AgentEntry* agent = state_.FindAgent(absl::StripPrefix(node, "nodes/"));
    if (agent == nullptr || agent->control_address.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("name: the agent of ", node,
                       " serves no data path (no control address registered)"));
    }
    *field = agent->control_address;
  }
  return out;
}

// --- Background work ---------------------------------------------------------

void FabricManager::Sweep() {
  std::vector<std::string> expired;
  absl::Time now;
  {
    absl::MutexLock l(&mu_);
    now = clock_->Now();
    expired = state_.lease_expiry.PopDue(now);
  }
  // Silent agents kSilentPerLock at a time, so that the lock is let go
  // between batches (each batch re-derives, in one pass, the leases that
  // cross its nodes).
  bool more = true;
  while (more) {
    absl::MutexLock l(&mu_);
    more = agents_.SweepSilent(now, kSilentPerLock) == kSilentPerLock;
  }
  std::vector<std::string> failed;
  for (const std::string& id : expired) {
    v1::DeleteAllocationRequest req;
    req.set_name(AllocationName(id));
    absl::StatusOr<v1::Allocation> released =
        AwaitResult<v1::Allocation>([&](Done<v1::Allocation> done) {
          ReleaseAsync<v1::Allocation>("ExpireAllocation", req.name(),
                                       "its lease expired", "", req, done);
        });
    if (!released.ok()) failed.push_back(id);
  }
  if (!failed.empty()) {
    // Not released (store down, or being released by a request that may
    // still fail): retried next sweep while the allocation lives.
    absl::MutexLock l(&mu_);
    for (const std::string& id : failed) {
      auto it = state_.allocations.find(id);
      if (it != state_.allocations.end() && it->second->committed) {
        state_.ArmExpiry(*it->second);
      }
    }
  }
  // Past retention or over max_request_ids (left over when new ids could
  // not forget them, e.g. after a failed write).
  commits_.ForgetOldRequests(now, kForgetPerSweep);
  SaveHoldings();
}

void FabricManager::SaveHoldings() {
  {
    absl::MutexLock l(&mu_);
    if (state_.unsaved_holdings.empty()) return;
  }
  // As many as fit one write; the rest wait for the next sweep.
  std::vector<std::string> nodes;
  auto saved = commits_.Mutate(
      "SaveHoldings", /*request_id=*/"", google::protobuf::Empty(),
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<Plan> {
        Plan plan;
        nodes = TakeUnsavedHoldings(state_, store_->limits(), &plan.batch);
        if (nodes.empty()) return absl::CancelledError("nothing unsaved");
        const int64_t n = static_cast<int64_t>(nodes.size());
        state_.holdings_writing += n;
        plan.commit = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          state_.holdings_writing -= n;
        };
        plan.rollback = [this, nodes, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          state_.holdings_writing -= n;
          MarkUnsaved(state_, nodes);
        };
        return plan;
      });
  (void)saved;  // a failed write is tried again at the next sweep
}

ManagerStats FabricManager::Stats() const {
  absl::MutexLock l(&mu_);
  return CollectStats(state_);
}

size_t FabricManager::RememberedRequestIds() const {
  return commits_.RememberedRequestIds();
}

absl::Status FabricManager::CheckIndexes() {
  absl::MutexLock l(&mu_);
  RETURN_IF_ERROR(state_.CheckIndexes());
  RETURN_IF_ERROR(CheckLeaseStates(state_));
  return agents_.CheckTimers();
}

absl::Status FabricManager::CheckInvariants() {
  absl::MutexLock l(&mu_);
  std::vector<std::string> problems;
  for (const auto& [id, f] : state_.fabrics) {
    absl::Status s = core::CheckInvariants(f->state);
    if (!s.ok()) problems.push_back(absl::StrCat(id, ": ", s.message()));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrJoin(problems, "; "));
}

}  // namespace fabric::service
