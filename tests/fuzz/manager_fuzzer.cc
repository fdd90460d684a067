// Fuzzes FabricManager's public entry points in-process (the request
// validation lives inside them): the input is a serialized ManagerSession
// (manager_fuzz.proto), a sequence of requests run against a fresh manager
// on an in-memory SQLite store with a manual clock.
//
// The calls whose reach depends on who calls go through the manager's real
// gRPC server over mutual TLS (secure_front.h), as an identity, so that the
// choke point and the handlers' scope checks are fuzzed with them, not
// around them: allocations and attachments (create, delete, get, list) as
// user/alice or user/bob (schedulers: OWN) or user/admin, in turn by step;
// RegisterNode and ReportStatus as the node they name, or (every fifth
// step, or when that node has no certificate) as node/intruder. The other
// calls (fabrics, links, reads of the topology, the clock, restarts) are
// made on the FabricManager directly.
//
// Properties, besides no crash and no sanitizer finding (leaks included):
//  - A mutation that fails (INVALID_ARGUMENT or any other error), a
//    CreateFabric with validate_only, and every read leave the manager's
//    visible state (every List, all pages, VFs and attachments included)
//    and its store unchanged (manager.h: "a rejected or failed mutation
//    leaves the store and the visible state unchanged").
//  - Every error, of a mutation or a read, has a canonical code a client
//    can act on (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//    FAILED_PRECONDITION, UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED,
//    OUT_OF_RANGE; never INTERNAL, UNKNOWN, DATA_LOSS, ...) and a message.
//  - A successful mutation with a request id, sent again, returns the same
//    response and changes nothing.
//  - The invariant checker accepts the committed state after every step
//    (attachment windows are grants like allocations).
//  - Every listed VF and attachment can be fetched by its name, and is the
//    same; a created attachment can be fetched and holds its VF (LENT); a
//    deleted one is gone (NOT_FOUND) and its response is DETACHED.
//  - Identities: whatever a caller creates is owned by it ("user/alice"),
//    and naming another owner is PERMISSION_DENIED; a scheduler that
//    deletes or reads another's allocation or attachment, or lists with
//    another's owner filter, gets PERMISSION_DENIED and changes nothing;
//    its lists and reads show only its own; a node that registers or
//    reports for another node gets PERMISSION_DENIED and changes nothing.
//    PERMISSION_DENIED in any other case is a finding.
//  - A restart on the same store keeps every fabric, link state,
//    allocation and attachment (all but what derives from agents and the
//    epoch).
//
// Found by it and fixed: an inventory address that is empty or holds a '-'
// listed a VF under a name that did not resolve; the manager now refuses
// inventories whose addresses are not DDDD:BB:DD.F
// (corpus/manager_fuzzer/regress-vf-unnamable-address).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/testing/manual_clock.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/v1/fabric_service.pb.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager_fuzz.pb.h"
#include "server/service/manager.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/secure_front.h"

namespace fabric::fuzz {
namespace {

using google::protobuf::Message;
using service::FabricManager;

constexpr int kMaxSteps = 48;
// Every table the manager writes (server/service/manager.cc), so that a
// rejected request is seen to leave no row behind.
constexpr const char* kTables[] = {"meta",        "fabrics",  "links",
                                   "allocations", "requests", "attachments"};

std::string Text(const Message& m) {
  std::string out;
  google::protobuf::TextFormat::Printer printer;
  printer.PrintToString(m, &out);  // sorts map entries: deterministic
  return out;
}

// MANAGER_FUZZ_TRACE=1 prints each call and its outcome.
void Trace(absl::string_view what, const absl::Status& s) {
  static const CallTracer tracer("MANAGER_FUZZ_TRACE");
  tracer(what, s);
}

// An error a client can act on: a canonical code, and a message saying why.
void CheckError(absl::string_view what, const absl::Status& s,
                absl::string_view request) {
  FUZZ_CHECK(!absl::IsPermissionDenied(s), what,
             " was refused though the caller may make it: ", s.ToString(),
             "\nrequest: ", request);
  CheckActionableError(
      what, s, request,
      {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
       absl::StatusCode::kAlreadyExists, absl::StatusCode::kFailedPrecondition,
       absl::StatusCode::kUnavailable, absl::StatusCode::kResourceExhausted,
       absl::StatusCode::kAborted, absl::StatusCode::kOutOfRange});
}

// Appends every page of a List call.
template <typename Req, typename Resp>
void AppendAll(std::string* out, absl::string_view what,
               const std::function<absl::StatusOr<Resp>(const Req&)>& list) {
  Req req;
  for (int page = 0; page < 10000; ++page) {
    absl::StatusOr<Resp> r = list(req);
    FUZZ_CHECK(r.ok(), what, ": ", r.status().ToString());
    absl::StrAppend(out, what, " {\n", Text(*r), "}\n");
    if (r->next_page_token().empty()) return;
    req.set_page_token(r->next_page_token());
  }
  FUZZ_CHECK(false, what, ": pages never end");
}

class Session {
 public:
  Session() {
    absl::StatusOr<std::unique_ptr<store::Store>> s =
        store::OpenSqliteStore({.path = ":memory:"});
    FUZZ_CHECK(s.ok(), s.status().ToString());
    store_ = *std::move(s);
    Open();
  }
  ~Session() { Close(); }

  void Run(const ManagerSession& session) {
    int steps = 0;
    for (const ManagerStep& step : session.steps()) {
      if (++steps > kMaxSteps) break;
      step_ = steps;
      RunStep(step);
      absl::Status inv = manager_->CheckInvariants();
      FUZZ_CHECK(inv.ok(), "after ", step.ShortDebugString(), ": ",
                 inv.ToString());
      CheckLookups();
    }
    // Whatever the steps did, the store loads again as a restarted manager
    // would load it, to the same state: no sequence of operations may leave
    // a store that does not load (e.g. overlapping grants).
    const std::string before = DurableState();
    Close();
    Open();
    FUZZ_CHECK(before == DurableState(),
               "the state after a restart differs from before it");
  }

 private:
  void Open() {
    service::ManagerOptions opts;
    opts.sweep_interval = absl::ZeroDuration();  // Sweep() is a step
    absl::StatusOr<std::unique_ptr<FabricManager>> m =
        FabricManager::Open(store_.get(), &clock_, opts);
    FUZZ_CHECK(m.ok(), "Open: ", m.status().ToString());
    manager_ = *std::move(m);
  }
  // The server in front of manager_, started on first use: an input with
  // no caller-scoped step costs no server.
  SecureFront* Front() {
    if (front_ == nullptr)
      front_ = std::make_unique<SecureFront>(manager_.get());
    return front_.get();
  }
  void Close() {
    front_.reset();
    manager_.reset();
  }

  // Who makes a user call at this step: alice, bob (schedulers) or admin,
  // in turn.
  std::string UserCaller() const {
    static const char* const kCallers[] = {"alice", "bob", "admin"};
    return kCallers[step_ % 3];
  }
  static bool IsScheduler(const std::string& user) {
    return FuzzUsers().at(user) == "scheduler";
  }
  // Who makes an agent call naming `node` ("n1" or "nodes/n1"): that node,
  // or node/intruder every fifth step and for nodes without a certificate.
  std::string NodeCaller(absl::string_view node) const {
    const std::string name(absl::StripPrefix(node, "nodes/"));
    if (step_ % 5 == 4 || !FuzzNodes().count(name)) return "intruder";
    return name;
  }
  static bool NamesNode(absl::string_view node, const std::string& caller) {
    return absl::StripPrefix(node, "nodes/") == caller;
  }

  // Runs `call` as `what` expecting PERMISSION_DENIED when `denied`; a
  // refusal must change nothing (Mutation and Read check that too).
  template <typename Resp>
  absl::StatusOr<Resp> Scoped(absl::string_view what, bool denied,
                              const std::string& caller, absl::StatusOr<Resp> r,
                              const Message& req) {
    if (denied) {
      FUZZ_CHECK(absl::IsPermissionDenied(r.status()), what, " as ", caller,
                 " must be refused, got ", r.status().ToString(),
                 "\nrequest: ", req.ShortDebugString());
      // Refused as expected: report it as a canonical refusal the state
      // checks of the caller treat like any failure.
      return absl::FailedPreconditionError(
          absl::StrCat("refused: ", r.status().message()));
    }
    return r;
  }

  // The owner of allocation or attachment `name` now ("" if none).
  std::string OwnerOf(const std::string& name, bool attachment) {
    if (attachment) {
      auto a = manager_->GetAttachment(name);
      return a.ok() ? a->owner() : "";
    }
    auto a = manager_->GetAllocation(name);
    return a.ok() ? a->owner() : "";
  }
  // Whether a scheduler `user` is refused resource `name` (OWN).
  bool NotOwn(const std::string& user, const std::string& name,
              bool attachment) {
    if (!IsScheduler(user)) return false;
    const std::string owner = OwnerOf(name, attachment);
    return !owner.empty() && owner != "user/" + user;
  }
  // Whether a create naming `owner` is refused to `user`.
  static bool ForeignOwner(const std::string& user, const std::string& owner) {
    return !owner.empty() && owner != "user/" + user;
  }
  // Whether a list filtered by `owner` is refused to `user`.
  static bool ForeignFilter(const std::string& user, const std::string& owner) {
    return IsScheduler(user) && ForeignOwner(user, owner);
  }

  // Everything a client can see, and every row of the store.
  std::string VisibleState() {
    std::string out;
    FabricManager* m = manager_.get();
    AppendAll<v1::ListFabricsRequest, v1::ListFabricsResponse>(
        &out, "fabrics", [m](const auto& r) { return m->ListFabrics(r); });
    AppendAll<v1::ListNodesRequest, v1::ListNodesResponse>(
        &out, "nodes", [m](const auto& r) { return m->ListNodes(r); });
    AppendAll<v1::ListBridgesRequest, v1::ListBridgesResponse>(
        &out, "bridges", [m](const auto& r) { return m->ListBridges(r); });
    AppendAll<v1::ListLinksRequest, v1::ListLinksResponse>(
        &out, "links", [m](const auto& r) { return m->ListLinks(r); });
    AppendAll<v1::ListAddressMapsRequest, v1::ListAddressMapsResponse>(
        &out, "maps", [m](const auto& r) { return m->ListAddressMaps(r); });
    AppendAll<v1::ListAllocationsRequest, v1::ListAllocationsResponse>(
        &out, "allocations",
        [m](const auto& r) { return m->ListAllocations(r); });
    AppendAll<v1::ListAttachmentsRequest, v1::ListAttachmentsResponse>(
        &out, "attachments",
        [m](const auto& r) { return m->ListAttachments(r); });
    AppendAll<v1::ListVirtualFunctionsRequest,
              v1::ListVirtualFunctionsResponse>(
        &out, "vfs", [m](const auto& r) { return m->ListVirtualFunctions(r); });
    for (const char* table : kTables) {
      auto rows = store_->Scan(table);
      FUZZ_CHECK(rows.ok(), rows.status().ToString());
      for (const auto& [key, value] : *rows) {
        absl::StrAppend(&out, "store ", table, "/", absl::CEscape(key), " = ",
                        absl::CEscape(value), "\n");
      }
    }
    return out;
  }

  // What must survive a restart: the state without what derives from
  // agents (node and allocation states) or from the epoch (generations).
  std::string DurableState() {
    std::string out;
    FabricManager* m = manager_.get();
    AppendAll<v1::ListFabricsRequest, v1::ListFabricsResponse>(
        &out, "fabrics", [m](const v1::ListFabricsRequest& r) {
          auto resp = m->ListFabrics(r);
          if (resp.ok()) {
            for (auto& f : *resp->mutable_fabrics()) f.clear_generation();
          }
          return resp;
        });
    AppendAll<v1::ListLinksRequest, v1::ListLinksResponse>(
        &out, "links", [m](const auto& r) { return m->ListLinks(r); });
    AppendAll<v1::ListAddressMapsRequest, v1::ListAddressMapsResponse>(
        &out, "maps", [m](const v1::ListAddressMapsRequest& r) {
          auto resp = m->ListAddressMaps(r);
          if (resp.ok()) {
            for (auto& a : *resp->mutable_address_maps()) a.clear_generation();
          }
          return resp;
        });
    AppendAll<v1::ListAllocationsRequest, v1::ListAllocationsResponse>(
        &out, "allocations", [m](const v1::ListAllocationsRequest& r) {
          auto resp = m->ListAllocations(r);
          if (resp.ok()) {
            for (auto& a : *resp->mutable_allocations()) {
              a.clear_state();
              a.clear_state_reason();
              a.clear_required_generation();
            }
          }
          return resp;
        });
    AppendAll<v1::ListAttachmentsRequest, v1::ListAttachmentsResponse>(
        &out, "attachments", [m](const v1::ListAttachmentsRequest& r) {
          auto resp = m->ListAttachments(r);
          if (resp.ok()) {
            for (auto& a : *resp->mutable_attachments()) {
              a.clear_state();
              a.clear_state_reason();
              a.clear_required_generation();
              a.clear_vf_health();
              a.clear_vf_health_reason();
              a.clear_counters();
            }
          }
          return resp;
        });
    return out;
  }

  // Every VF and attachment the Lists show is what Get returns by its name.
  void CheckLookups() {
    FabricManager* m = manager_.get();
    v1::ListVirtualFunctionsRequest vreq;
    for (int page = 0; page < 10000; ++page) {
      auto vfs = m->ListVirtualFunctions(vreq);
      FUZZ_CHECK(vfs.ok(), vfs.status().ToString());
      for (const v1::VirtualFunction& v : vfs->virtual_functions()) {
        auto got = m->GetVirtualFunction(v.name());
        FUZZ_CHECK(got.ok(), "listed VF ", v.ShortDebugString(),
                   " cannot be fetched by its name: ", got.status().ToString());
        FUZZ_CHECK(Text(*got) == Text(v), "VF ", v.name(), " lists as\n",
                   Text(v), "but reads as\n", Text(*got));
      }
      if (vfs->next_page_token().empty()) break;
      vreq.set_page_token(vfs->next_page_token());
    }
    v1::ListAttachmentsRequest areq;
    for (int page = 0; page < 10000; ++page) {
      auto atts = m->ListAttachments(areq);
      FUZZ_CHECK(atts.ok(), atts.status().ToString());
      for (const v1::Attachment& a : atts->attachments()) {
        auto got = m->GetAttachment(a.name());
        FUZZ_CHECK(got.ok(), "listed attachment ", a.name(),
                   " cannot be fetched: ", got.status().ToString());
        FUZZ_CHECK(Text(*got) == Text(a), "attachment ", a.name(),
                   " lists as\n", Text(a), "but reads as\n", Text(*got));
        auto vf = m->GetVirtualFunction(a.vf());
        FUZZ_CHECK(
            vf.ok() && vf->state() == v1::VirtualFunction::LENT &&
                vf->attachment() == a.name() && vf->borrower() == a.borrower(),
            "attachment ", a.name(), " holds VF ", a.vf(), ", which reads as ",
            vf.ok() ? vf->ShortDebugString() : vf.status().ToString());
      }
      if (atts->next_page_token().empty()) break;
      areq.set_page_token(atts->next_page_token());
    }
  }

  // "#k" -> the k-th allocation created in this session.
  std::string AllocationName(const std::string& name) const {
    return Created(created_, name);
  }
  // "#k" or "attachments/#k" -> the k-th attachment created in this
  // session.
  std::string AttachmentName(const std::string& name) const {
    return Created(attached_,
                   std::string(absl::StripPrefix(name, "attachments/")), name);
  }
  // ApplyError.allocation names an allocation or an attachment.
  std::string GrantOwnerName(const std::string& name) const {
    if (absl::StartsWith(name, "attachments/#")) return AttachmentName(name);
    return AllocationName(name);
  }
  static std::string Created(const std::vector<std::string>& names,
                             const std::string& ref,
                             const std::string& otherwise = "") {
    const std::string& fallback = otherwise.empty() ? ref : otherwise;
    if (!absl::StartsWith(ref, "#") || names.empty()) return fallback;
    uint32_t k = 0;
    if (!absl::SimpleAtoi(ref.substr(1), &k)) return fallback;
    return names[k % names.size()];
  }

  // Runs a mutation. On success with a request id, sends it again and
  // expects the same response and no change; on failure, expects no change.
  template <typename Req, typename Resp>
  void Mutation(absl::string_view what, const Req& req,
                const std::function<absl::StatusOr<Resp>(const Req&)>& call,
                bool changes_nothing = false) {
    const std::string before = VisibleState();
    absl::StatusOr<Resp> r = call(req);
    Trace(what, r.status());
    CheckError(what, r.status(), req.ShortDebugString());
    if (!r.ok() || changes_nothing) {
      const std::string after = VisibleState();
      FUZZ_CHECK(before == after, what, " (", r.status().ToString(),
                 ") changed the state.\nrequest: ", req.ShortDebugString(),
                 "\nbefore:\n", before, "\nafter:\n", after);
      return;
    }
    const std::string request_id = RequestId(req);
    if (request_id.empty()) return;
    const std::string after = VisibleState();
    absl::StatusOr<Resp> again = call(req);
    FUZZ_CHECK(again.ok(), what, " retried with request id ", request_id, ": ",
               again.status().ToString());
    FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*r, *again),
               what, " retried returned\n", again->ShortDebugString(),
               "\ninstead of\n", r->ShortDebugString());
    FUZZ_CHECK(VisibleState() == after, what, " retried changed the state");
  }

  template <typename Req>
  static std::string RequestId(const Req& req) {
    if constexpr (std::is_same_v<Req, agentproto::v1::RegisterNodeRequest> ||
                  std::is_same_v<Req, agentproto::v1::ReportStatusRequest>) {
      return "";
    } else {
      return req.request_id();
    }
  }

  // A read must not change anything, whatever it returns; its error, if
  // any, is canonical.
  void Read(absl::string_view what, const Message& req,
            const std::function<absl::Status()>& call) {
    const std::string before = VisibleState();
    const absl::Status s = call();
    Trace(what, s);
    CheckError(what, s, req.ShortDebugString());
    FUZZ_CHECK(VisibleState() == before, what, " changed the state");
  }

  void RunStep(const ManagerStep& step) {
    FabricManager* m = manager_.get();
    switch (step.step_case()) {
      case ManagerStep::kCreateFabric:
        Mutation<v1::CreateFabricRequest, v1::Fabric>(
            "CreateFabric", step.create_fabric(),
            [m](const auto& r) { return m->CreateFabric(r); },
            step.create_fabric().validate_only());
        break;
      case ManagerStep::kDeleteFabric:
        Mutation<v1::DeleteFabricRequest, v1::Fabric>(
            "DeleteFabric", step.delete_fabric(),
            [m](const auto& r) { return m->DeleteFabric(r); });
        break;
      case ManagerStep::kSetLinkState:
        Mutation<v1::SetLinkStateRequest, v1::Link>(
            "SetLinkState", step.set_link_state(),
            [m](const auto& r) { return m->SetLinkState(r); });
        break;
      case ManagerStep::kCreateAllocation: {
        Mutation<v1::CreateAllocationRequest, v1::Allocation>(
            "CreateAllocation", step.create_allocation(),
            [this, user = UserCaller()](const v1::CreateAllocationRequest& r) {
              absl::StatusOr<v1::Allocation> a =
                  Scoped("CreateAllocation",
                         ForeignOwner(user, r.allocation().owner()), user,
                         SecureFront::Call<v1::Allocation>(
                             [&](grpc::ClientContext* ctx, auto* out) {
                               return Front()->Fabric(user)->CreateAllocation(
                                   ctx, r, out);
                             }),
                         r);
              // Also a replay of a request id: what it returns is the
              // caller's own.
              FUZZ_CHECK(!a.ok() || a->owner() == "user/" + user, "user/", user,
                         " created ", a->ShortDebugString());
              if (a.ok() && std::find(created_.begin(), created_.end(),
                                      a->name()) == created_.end()) {
                created_.push_back(a->name());
              }
              return a;
            });
        break;
      }
      case ManagerStep::kDeleteAllocation: {
        v1::DeleteAllocationRequest req = step.delete_allocation();
        req.set_name(AllocationName(req.name()));
        const std::string user = UserCaller();
        const bool denied = NotOwn(user, req.name(), false);
        Mutation<v1::DeleteAllocationRequest, v1::Allocation>(
            "DeleteAllocation", req,
            [this, user, denied](const v1::DeleteAllocationRequest& r) {
              return Scoped(
                  "DeleteAllocation", denied, user,
                  SecureFront::Call<v1::Allocation>(
                      [&](grpc::ClientContext* ctx, auto* out) {
                        return Front()->Fabric(user)->DeleteAllocation(ctx, r,
                                                                       out);
                      }),
                  r);
            });
        break;
      }
      case ManagerStep::kRegisterNode:
        Mutation<agentproto::v1::RegisterNodeRequest,
                 agentproto::v1::RegisterNodeResponse>(
            "RegisterNode", step.register_node(),
            [this](const agentproto::v1::RegisterNodeRequest& r) {
              const std::string node = NodeCaller(r.node());
              return Scoped(
                  "RegisterNode", !NamesNode(r.node(), node), "node/" + node,
                  SecureFront::Call<agentproto::v1::RegisterNodeResponse>(
                      [&](grpc::ClientContext* ctx, auto* out) {
                        return Front()->Agent(node)->RegisterNode(ctx, r, out);
                      }),
                  r);
            });
        break;
      case ManagerStep::kReportStatus: {
        agentproto::v1::ReportStatusRequest req = step.report_status();
        if (req.applied_generation() == -1) {
          auto cfg = m->DesiredConfigFor(req.node());
          if (cfg.ok()) req.set_applied_generation(cfg->generation());
        }
        for (v1::ApplyError& e : *req.mutable_errors()) {
          e.set_allocation(GrantOwnerName(e.allocation()));
        }
        for (agentproto::v1::ShadowStatus& sh : *req.mutable_shadows()) {
          sh.set_attachment(AttachmentName(sh.attachment()));
        }
        Mutation<agentproto::v1::ReportStatusRequest,
                 agentproto::v1::ReportStatusResponse>(
            "ReportStatus", req,
            [this](const agentproto::v1::ReportStatusRequest& r) {
              const std::string node = NodeCaller(r.node());
              return Scoped(
                  "ReportStatus", !NamesNode(r.node(), node), "node/" + node,
                  SecureFront::Call<agentproto::v1::ReportStatusResponse>(
                      [&](grpc::ClientContext* ctx, auto* out) {
                        return Front()->Agent(node)->ReportStatus(ctx, r, out);
                      }),
                  r);
            });
        break;
      }
      case ManagerStep::kGetFabric:
        Read("GetFabric", step,
             [&] { return m->GetFabric(step.get_fabric().name()).status(); });
        break;
      case ManagerStep::kListFabrics:
        Read("ListFabrics", step,
             [&] { return m->ListFabrics(step.list_fabrics()).status(); });
        break;
      case ManagerStep::kGetNode:
        Read("GetNode", step,
             [&] { return m->GetNode(step.get_node().name()).status(); });
        break;
      case ManagerStep::kListNodes:
        Read("ListNodes", step,
             [&] { return m->ListNodes(step.list_nodes()).status(); });
        break;
      case ManagerStep::kGetBridge:
        Read("GetBridge", step,
             [&] { return m->GetBridge(step.get_bridge().name()).status(); });
        break;
      case ManagerStep::kListBridges:
        Read("ListBridges", step,
             [&] { return m->ListBridges(step.list_bridges()).status(); });
        break;
      case ManagerStep::kGetLink:
        Read("GetLink", step,
             [&] { return m->GetLink(step.get_link().name()).status(); });
        break;
      case ManagerStep::kListLinks:
        Read("ListLinks", step,
             [&] { return m->ListLinks(step.list_links()).status(); });
        break;
      case ManagerStep::kGetAddressMap:
        Read("GetAddressMap", step, [&] {
          return m->GetAddressMap(step.get_address_map().name()).status();
        });
        break;
      case ManagerStep::kListAddressMaps:
        Read("ListAddressMaps", step, [&] {
          return m->ListAddressMaps(step.list_address_maps()).status();
        });
        break;
      case ManagerStep::kGetAllocation:
        Read("GetAllocation", step, [&] {
          const std::string user = UserCaller();
          v1::GetAllocationRequest req;
          req.set_name(AllocationName(step.get_allocation().name()));
          const bool denied = NotOwn(user, req.name(), false);
          absl::StatusOr<v1::Allocation> a = Scoped(
              "GetAllocation", denied, user,
              SecureFront::Call<v1::Allocation>(
                  [&](grpc::ClientContext* ctx, auto* out) {
                    return Front()->Fabric(user)->GetAllocation(ctx, req, out);
                  }),
              req);
          FUZZ_CHECK(
              !a.ok() || !IsScheduler(user) || a->owner() == "user/" + user,
              "user/", user, " read ", a->ShortDebugString());
          return a.status();
        });
        break;
      case ManagerStep::kListAllocations:
        Read("ListAllocations", step, [&] {
          const std::string user = UserCaller();
          const v1::ListAllocationsRequest& req = step.list_allocations();
          absl::StatusOr<v1::ListAllocationsResponse> list =
              Scoped("ListAllocations", ForeignFilter(user, req.owner()), user,
                     SecureFront::Call<v1::ListAllocationsResponse>(
                         [&](grpc::ClientContext* ctx, auto* out) {
                           return Front()->Fabric(user)->ListAllocations(
                               ctx, req, out);
                         }),
                     req);
          // (Not a ?: over a temporary response: the loop would read it
          // after it is gone.)
          if (list.ok()) {
            for (const v1::Allocation& a : list->allocations()) {
              FUZZ_CHECK(!IsScheduler(user) || a.owner() == "user/" + user,
                         "user/", user, " listed ", a.ShortDebugString());
            }
          }
          return list.status();
        });
        break;
      case ManagerStep::kDesiredConfigFor:
        Read("DesiredConfigFor", step, [&] {
          return m->DesiredConfigFor(step.desired_config_for()).status();
        });
        break;
      case ManagerStep::kPrepareVerify:
        Read("PrepareVerify", step, [&] {
          return m->PrepareVerify(AllocationName(step.prepare_verify()))
              .status();
        });
        break;
      case ManagerStep::kAdvanceClockMs:
        clock_.Advance(absl::Milliseconds(step.advance_clock_ms()));
        m->Sweep();
        break;
      case ManagerStep::kRestart: {
        const std::string before = DurableState();
        Close();
        Open();
        const std::string after = DurableState();
        FUZZ_CHECK(before == after, "a restart lost or changed state.\n",
                   "before:\n", before, "\nafter:\n", after);
        break;
      }
      case ManagerStep::kCreateAttachment:
        Mutation<v1::CreateAttachmentRequest, v1::Attachment>(
            "CreateAttachment", step.create_attachment(),
            [this, m,
             user = UserCaller()](const v1::CreateAttachmentRequest& r) {
              absl::StatusOr<v1::Attachment> a =
                  Scoped("CreateAttachment",
                         ForeignOwner(user, r.attachment().owner()), user,
                         SecureFront::Call<v1::Attachment>(
                             [&](grpc::ClientContext* ctx, auto* out) {
                               return Front()->Fabric(user)->CreateAttachment(
                                   ctx, r, out);
                             }),
                         r);
              if (!a.ok()) return a;
              // Also a replay of a request id: what it returns is the
              // caller's own.
              FUZZ_CHECK(a->owner() == "user/" + user, "user/", user,
                         " created ", a->ShortDebugString());
              if (std::find(attached_.begin(), attached_.end(), a->name()) !=
                  attached_.end()) {
                // A replay of an earlier request id: the original response,
                // whatever became of that attachment since.
                return a;
              }
              attached_.push_back(a->name());
              // Recorded, and its VF is taken.
              auto got = m->GetAttachment(a->name());
              FUZZ_CHECK(got.ok(), "created ", a->name(),
                         " cannot be fetched: ", got.status().ToString());
              FUZZ_CHECK(got->vf() == a->vf() &&
                             got->borrower() == a->borrower() &&
                             got->windows_size() == a->windows_size(),
                         "created ", a->ShortDebugString(), "\nreads as ",
                         got->ShortDebugString());
              auto vf = m->GetVirtualFunction(a->vf());
              FUZZ_CHECK(
                  vf.ok() && vf->state() == v1::VirtualFunction::LENT &&
                      vf->attachment() == a->name(),
                  a->name(), " got VF ", a->vf(), ", which reads as ",
                  vf.ok() ? vf->ShortDebugString() : vf.status().ToString());
              return a;
            });
        break;
      case ManagerStep::kDeleteAttachment: {
        v1::DeleteAttachmentRequest req = step.delete_attachment();
        req.set_name(AttachmentName(req.name()));
        const std::string user = UserCaller();
        const bool denied = NotOwn(user, req.name(), true);
        Mutation<v1::DeleteAttachmentRequest, v1::Attachment>(
            "DeleteAttachment", req,
            [this, m, user, denied](const v1::DeleteAttachmentRequest& r) {
              absl::StatusOr<v1::Attachment> a =
                  Scoped("DeleteAttachment", denied, user,
                         SecureFront::Call<v1::Attachment>(
                             [&](grpc::ClientContext* ctx, auto* out) {
                               return Front()->Fabric(user)->DeleteAttachment(
                                   ctx, r, out);
                             }),
                         r);
              if (!a.ok()) return a;
              FUZZ_CHECK(a->state() == v1::Attachment::DETACHED,
                         "DeleteAttachment returned ", a->ShortDebugString());
              auto got = m->GetAttachment(a->name());
              FUZZ_CHECK(absl::IsNotFound(got.status()), "deleted ", a->name(),
                         " still reads as ", got.status().ToString());
              return a;
            });
        break;
      }
      case ManagerStep::kGetAttachment:
        Read("GetAttachment", step, [&] {
          const std::string user = UserCaller();
          v1::GetAttachmentRequest req;
          req.set_name(AttachmentName(step.get_attachment().name()));
          const bool denied = NotOwn(user, req.name(), true);
          absl::StatusOr<v1::Attachment> a = Scoped(
              "GetAttachment", denied, user,
              SecureFront::Call<v1::Attachment>(
                  [&](grpc::ClientContext* ctx, auto* out) {
                    return Front()->Fabric(user)->GetAttachment(ctx, req, out);
                  }),
              req);
          FUZZ_CHECK(
              !a.ok() || !IsScheduler(user) || a->owner() == "user/" + user,
              "user/", user, " read ", a->ShortDebugString());
          return a.status();
        });
        break;
      case ManagerStep::kListAttachments:
        Read("ListAttachments", step, [&] {
          const std::string user = UserCaller();
          const v1::ListAttachmentsRequest& req = step.list_attachments();
          absl::StatusOr<v1::ListAttachmentsResponse> list =
              Scoped("ListAttachments", ForeignFilter(user, req.owner()), user,
                     SecureFront::Call<v1::ListAttachmentsResponse>(
                         [&](grpc::ClientContext* ctx, auto* out) {
                           return Front()->Fabric(user)->ListAttachments(
                               ctx, req, out);
                         }),
                     req);
          // (Not a ?: over a temporary response: the loop would read it
          // after it is gone.)
          if (list.ok()) {
            for (const v1::Attachment& a : list->attachments()) {
              FUZZ_CHECK(!IsScheduler(user) || a.owner() == "user/" + user,
                         "user/", user, " listed ", a.ShortDebugString());
            }
          }
          return list.status();
        });
        break;
      case ManagerStep::kGetVirtualFunction:
        Read("GetVirtualFunction", step, [&] {
          return m->GetVirtualFunction(step.get_virtual_function().name())
              .status();
        });
        break;
      case ManagerStep::kListVirtualFunctions:
        Read("ListVirtualFunctions", step, [&] {
          return m->ListVirtualFunctions(step.list_virtual_functions())
              .status();
        });
        break;
      case ManagerStep::kPrepareAttachmentOp:
        Read("PrepareAttachmentOp", step, [&] {
          const AttachmentOp& op = step.prepare_attachment_op();
          auto t = m->PrepareAttachmentOp(AttachmentName(op.name()),
                                          op.need_ready());
          if (t.ok()) {
            FUZZ_CHECK(!t->lender_agent.empty() && !t->borrower_agent.empty(),
                       "PrepareAttachmentOp gave no agent address");
            FUZZ_CHECK(!op.need_ready() ||
                           t->attachment.state() == v1::Attachment::READY,
                       "PrepareAttachmentOp(need_ready) on ",
                       t->attachment.ShortDebugString());
          }
          return t.status();
        });
        break;
      case ManagerStep::kAgentAddress:
        Read("AgentAddress", step, [&] {
          auto a = m->AgentAddress(step.agent_address());
          FUZZ_CHECK(!a.ok() || !a->empty(), "AgentAddress gave \"\"");
          return a.status();
        });
        break;
      case ManagerStep::STEP_NOT_SET:
        break;
    }
  }

  ManualClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FabricManager> manager_;
  std::unique_ptr<SecureFront> front_;  // serves manager_; see Front()
  int step_ = 0;                        // 1-based, of the step running
  std::vector<std::string> created_;    // allocation names, in order
  std::vector<std::string> attached_;   // attachment names, in order
};

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Mutated inputs are mostly not valid protobuf (e.g. strings that are
  // not UTF-8); the parser's complaints are expected, not news.
  google::protobuf::SetLogHandler(nullptr);
  // The certificates, made once (deploy/pki.sh), before any input.
  fabric::fuzz::FuzzPki::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fabric::fuzz::ManagerSession session;
  if (!session.ParseFromArray(data, static_cast<int>(size))) return 0;
  fabric::fuzz::Session s;
  s.Run(session);
  return 0;
}
