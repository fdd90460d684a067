// Fuzzes FabricManager's public entry points in-process (the request
// validation lives inside them): the input is a serialized ManagerSession
// (manager_fuzz.proto), a sequence of requests run against a fresh manager
// on an in-memory SQLite store with a manual clock.
//
// Properties, besides no crash and no sanitizer finding (leaks included):
//  - A mutation that fails (INVALID_ARGUMENT or any other error), a
//    CreateFabric with validate_only, and every read leave the manager's
//    visible state (every List, all pages) and its store unchanged
//    (manager.h: "a rejected or failed mutation leaves the store and the
//    visible state unchanged").
//  - A successful mutation with a request id, sent again, returns the same
//    response and changes nothing.
//  - The invariant checker accepts the committed state after every step.
//  - A restart on the same store keeps every fabric, link state and
//    allocation (all but what derives from agents and the epoch).

#include <algorithm>
#include <cstddef>
#include <cstdint>
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
#include "absl/time/time.h"
#include "common/clock.h"
#include "fabric/v1/fabric.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager_fuzz.pb.h"
#include "server/service/manager.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"
#include "tests/fuzz/fuzz_check.h"

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
  ~Session() { manager_.reset(); }

  void Run(const ManagerSession& session) {
    int steps = 0;
    for (const ManagerStep& step : session.steps()) {
      if (++steps > kMaxSteps) break;
      RunStep(step);
      absl::Status inv = manager_->CheckInvariants();
      FUZZ_CHECK(inv.ok(), "after ", step.ShortDebugString(), ": ",
                 inv.ToString());
    }
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
    return out;
  }

  // "#k" -> the k-th allocation created in this session.
  std::string AllocationName(const std::string& name) const {
    if (!absl::StartsWith(name, "#") || created_.empty()) return name;
    uint32_t k = 0;
    if (!absl::SimpleAtoi(name.substr(1), &k)) return name;
    return created_[k % created_.size()];
  }

  // Runs a mutation. On success with a request id, sends it again and
  // expects the same response and no change; on failure, expects no change.
  template <typename Req, typename Resp>
  void Mutation(absl::string_view what, const Req& req,
                const std::function<absl::StatusOr<Resp>(const Req&)>& call,
                bool changes_nothing = false) {
    const std::string before = VisibleState();
    absl::StatusOr<Resp> r = call(req);
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
    if constexpr (std::is_same_v<Req, v1::RegisterNodeRequest> ||
                  std::is_same_v<Req, v1::ReportStatusRequest>) {
      return "";
    } else {
      return req.request_id();
    }
  }

  // A read must not change anything, whatever it returns.
  void Read(absl::string_view what, const std::function<void()>& call) {
    const std::string before = VisibleState();
    call();
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
            [this, m](const v1::CreateAllocationRequest& r) {
              absl::StatusOr<v1::Allocation> a = m->CreateAllocation(r);
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
        Mutation<v1::DeleteAllocationRequest, v1::Allocation>(
            "DeleteAllocation", req,
            [m](const auto& r) { return m->DeleteAllocation(r); });
        break;
      }
      case ManagerStep::kRegisterNode:
        Mutation<v1::RegisterNodeRequest, v1::RegisterNodeResponse>(
            "RegisterNode", step.register_node(),
            [m](const auto& r) { return m->RegisterNode(r); });
        break;
      case ManagerStep::kReportStatus: {
        v1::ReportStatusRequest req = step.report_status();
        if (req.applied_generation() == -1) {
          auto cfg = m->DesiredConfigFor(req.node());
          if (cfg.ok()) req.set_applied_generation(cfg->generation());
        }
        for (v1::ApplyError& e : *req.mutable_errors()) {
          e.set_allocation(AllocationName(e.allocation()));
        }
        Mutation<v1::ReportStatusRequest, v1::ReportStatusResponse>(
            "ReportStatus", req,
            [m](const auto& r) { return m->ReportStatus(r); });
        break;
      }
      case ManagerStep::kGetFabric:
        Read("GetFabric",
             [&] { (void)m->GetFabric(step.get_fabric().name()); });
        break;
      case ManagerStep::kListFabrics:
        Read("ListFabrics", [&] { (void)m->ListFabrics(step.list_fabrics()); });
        break;
      case ManagerStep::kGetNode:
        Read("GetNode", [&] { (void)m->GetNode(step.get_node().name()); });
        break;
      case ManagerStep::kListNodes:
        Read("ListNodes", [&] { (void)m->ListNodes(step.list_nodes()); });
        break;
      case ManagerStep::kGetBridge:
        Read("GetBridge",
             [&] { (void)m->GetBridge(step.get_bridge().name()); });
        break;
      case ManagerStep::kListBridges:
        Read("ListBridges", [&] { (void)m->ListBridges(step.list_bridges()); });
        break;
      case ManagerStep::kGetLink:
        Read("GetLink", [&] { (void)m->GetLink(step.get_link().name()); });
        break;
      case ManagerStep::kListLinks:
        Read("ListLinks", [&] { (void)m->ListLinks(step.list_links()); });
        break;
      case ManagerStep::kGetAddressMap:
        Read("GetAddressMap",
             [&] { (void)m->GetAddressMap(step.get_address_map().name()); });
        break;
      case ManagerStep::kListAddressMaps:
        Read("ListAddressMaps",
             [&] { (void)m->ListAddressMaps(step.list_address_maps()); });
        break;
      case ManagerStep::kGetAllocation:
        Read("GetAllocation", [&] {
          (void)m->GetAllocation(AllocationName(step.get_allocation().name()));
        });
        break;
      case ManagerStep::kListAllocations:
        Read("ListAllocations",
             [&] { (void)m->ListAllocations(step.list_allocations()); });
        break;
      case ManagerStep::kDesiredConfigFor:
        Read("DesiredConfigFor",
             [&] { (void)m->DesiredConfigFor(step.desired_config_for()); });
        break;
      case ManagerStep::kPrepareVerify:
        Read("PrepareVerify", [&] {
          (void)m->PrepareVerify(AllocationName(step.prepare_verify()));
        });
        break;
      case ManagerStep::kAdvanceClockMs:
        clock_.Advance(absl::Milliseconds(step.advance_clock_ms()));
        m->Sweep();
        break;
      case ManagerStep::kRestart: {
        const std::string before = DurableState();
        manager_.reset();
        Open();
        const std::string after = DurableState();
        FUZZ_CHECK(before == after, "a restart lost or changed state.\n",
                   "before:\n", before, "\nafter:\n", after);
        break;
      }
      // Add the VF-attach calls (manager_fuzz.proto fields 50-99) here.
      case ManagerStep::STEP_NOT_SET:
        break;
    }
  }

  ManualClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FabricManager> manager_;
  std::vector<std::string> created_;  // allocation names, in order
};

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Mutated inputs are mostly not valid protobuf (e.g. strings that are
  // not UTF-8); the parser's complaints are expected, not news.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fabric::fuzz::ManagerSession session;
  if (!session.ParseFromArray(data, static_cast<int>(size))) return 0;
  fabric::fuzz::Session s;
  s.Run(session);
  return 0;
}
