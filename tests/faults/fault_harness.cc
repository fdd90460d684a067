#include "tests/faults/fault_harness.h"

#include <grpcpp/create_channel.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/bridge_state.h"
#include "agent/hw/sim/state_file.h"
#include "common/grpc_status.h"
#include "common/units.h"
#include "tests/process/test_transport.h"

namespace fabric::faults {
namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

void Sleep(absl::Duration d) {
  std::this_thread::sleep_for(
      std::chrono::microseconds(absl::ToInt64Microseconds(d)));
}

std::string WindowText(const agent::hw::Window& w) {
  return absl::StrCat(w.kind == agent::hw::SlotKind::kLut ? "lut slot "
                                                          : "window ",
                      w.slot, " [", FormatAddr(w.local_base), " +",
                      FormatSize(w.size), " -> ", FormatAddr(w.xlat), "]");
}

std::string MapText(const agent::hw::MapEntry& e) {
  return absl::StrCat(
      e.kind == agent::hw::MapEntry::Kind::kClaim ? "claim " : "forward ",
      FormatAddr(e.base), " +", FormatSize(e.size), " port ", e.port,
      " local ", FormatAddr(e.local_base));
}

// Multiset difference of two lists of rendered entries.
void DiffLists(const std::string& what, const std::vector<std::string>& have,
               const std::vector<std::string>& want,
               std::vector<std::string>* out) {
  std::map<std::string, int> count;
  for (const auto& h : have) ++count[h];
  for (const auto& w : want) --count[w];
  for (const auto& [entry, n] : count) {
    if (n > 0) {
      out->push_back(absl::StrCat(what, " extra", n > 1 ? " (x" : "",
                                  n > 1 ? absl::StrCat(n, ")") : "", ": ",
                                  entry));
    } else if (n < 0) {
      out->push_back(absl::StrCat(what, " missing: ", entry));
    }
  }
}

}  // namespace

agent::hw::BridgeState WantedState(const agentproto::v1::DesiredConfig& config,
                                   const agent::hw::BridgeState& have) {
  agent::hw::BridgeState want = agent::DesiredState(config);
  want.scratchpads = have.scratchpads;
  want.doorbell = have.doorbell;
  return want;
}

Memory ProcessMemory(int pid) {
  Memory m;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    long v = 0;
    if (sscanf(line.c_str(), "VmRSS: %ld kB", &v) == 1) m.rss_kib = v;
    if (sscanf(line.c_str(), "VmHWM: %ld kB", &v) == 1) m.hwm_kib = v;
  }
  return m;
}

FabricHarness::~FabricHarness() {
  // Agents first, so that none logs a lost manager while it dies.
  agents_.clear();
  manager_.reset();
}

std::string FabricHarness::Node(int i) { return absl::StrCat("n", i); }

std::string FabricHarness::AgentLog(int i) const {
  return absl::StrCat(dir_.path(), "/agent-", i, ".log");
}

absl::Status FabricHarness::Start(const HarnessOptions& options) {
  options_ = options;
  std::vector<std::string> flags = tls_.ManagerFlags();
  flags.insert(flags.end(), options.manager_flags.begin(),
               options.manager_flags.end());
  manager_ = std::make_unique<proctest::Manager>(
      proctest::StartManager(dir_.path() + "/fabric.db", ManagerLog(), flags));
  if (manager_->port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "fabric-manager did not start: ", proctest::ReadFile(ManagerLog())));
  }
  address_ = absl::StrCat("127.0.0.1:", manager_->port);
  stub_ = v1::FabricService::NewStub(tls_.DialManager(address_));
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name("lab");
  req.mutable_spec()->set_topology(v1::RING);
  req.mutable_spec()->set_default_export_size(options.export_size);
  for (int i = 0; i < options.nodes; ++i)
    req.mutable_spec()->add_nodes()->set_name(Node(i));
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::Fabric f;
  if (auto s = FromGrpc(stub_->CreateFabric(&ctx, req, &f), "CreateFabric");
      !s.ok()) {
    return s;
  }
  agents_.resize(options.nodes);
  for (int i = 0; i < options.nodes; ++i) StartAgent(i);
  return absl::OkStatus();
}

void FabricHarness::StartAgent(int i, const std::vector<std::string>& extra) {
  agents_[i].reset();  // kills a running one
  std::vector<std::string> argv = {proctest::BinDir() + "/fabric-agent",
                                   "--manager",
                                   address_,
                                   "--node",
                                   Node(i),
                                   "--backend",
                                   "sim",
                                   "--sim-dir",
                                   sim_dir(),
                                   "--drift-check-interval",
                                   options_.drift_check_interval};
  for (std::string& flag : tls_.AgentFlags(Node(i))) argv.push_back(flag);
  argv.insert(argv.end(), options_.agent_flags.begin(),
              options_.agent_flags.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  agent_log_offsets_.resize(options_.nodes, 0);
  agent_log_offsets_[i] = proctest::ReadFile(AgentLog(i)).size();
  agents_[i] = std::make_unique<proctest::Child>(argv, AgentLog(i));
}

absl::Status FabricHarness::WaitRegistered(int i, absl::Duration timeout) {
  static const std::regex kServing(
      "serving its data path on (127\\.0\\.0\\.1:[0-9]+)");
  std::string address;
  const bool registered = proctest::WaitFor(
      [&] {
        if (address.empty()) {
          const std::string log = proctest::ReadFile(AgentLog(i));
          const std::string tail =
              log.substr(std::min(agent_log_offsets_[i], log.size()));
          std::smatch match;
          if (std::regex_search(tail, match, kServing)) address = match[1];
        }
        if (address.empty()) return false;
        auto n = GetNode(Node(i));
        return n.ok() && n->agent_address() == address;
      },
      timeout);
  if (registered) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(
      "agent of ", Node(i), " did not register within ",
      absl::FormatDuration(timeout), ": ", proctest::ReadFile(AgentLog(i))));
}

void FabricHarness::KillAgent(int i) {
  if (agents_[i] == nullptr) return;
  agents_[i]->Signal(SIGKILL);
  agents_[i]->Wait();
  agents_[i].reset();
}

int FabricHarness::WaitAgentExit(int i, absl::Duration timeout) {
  if (agents_[i] == nullptr) return -1;
  int code = -1;
  if (!proctest::WaitFor([&] { return agents_[i]->TryWait(&code); }, timeout)) {
    return -1;
  }
  agents_[i].reset();
  return code;
}

absl::StatusOr<v1::Allocation> FabricHarness::Create(
    int from, int to, uint64_t size, const std::string& request_id) {
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(Node(from));
  req.mutable_allocation()->set_target(Node(to));
  req.mutable_allocation()->set_size(size);
  req.set_request_id(request_id);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::Allocation a;
  auto s = FromGrpc(stub_->CreateAllocation(&ctx, req, &a),
                    absl::StrCat("CreateAllocation ", Node(from), " -> ",
                                 Node(to)));
  if (!s.ok()) return s;
  return a;
}

absl::Status FabricHarness::Delete(const std::string& name) {
  v1::DeleteAllocationRequest req;
  req.set_name(name);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::Allocation a;
  return FromGrpc(stub_->DeleteAllocation(&ctx, req, &a),
                  absl::StrCat("DeleteAllocation ", name));
}

absl::StatusOr<v1::Allocation> FabricHarness::Get(const std::string& name) {
  v1::GetAllocationRequest req;
  req.set_name(name);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::Allocation a;
  auto s = FromGrpc(stub_->GetAllocation(&ctx, req, &a), "GetAllocation");
  if (!s.ok()) return s;
  return a;
}

absl::StatusOr<std::vector<v1::Allocation>> FabricHarness::List() {
  std::vector<v1::Allocation> out;
  v1::ListAllocationsRequest req;
  req.set_page_size(1000);
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    v1::ListAllocationsResponse resp;
    auto s =
        FromGrpc(stub_->ListAllocations(&ctx, req, &resp), "ListAllocations");
    if (!s.ok()) return s;
    out.insert(out.end(), resp.allocations().begin(),
               resp.allocations().end());
    if (resp.next_page_token().empty()) return out;
    req.set_page_token(resp.next_page_token());
  }
}

absl::StatusOr<std::vector<v1::Node>> FabricHarness::Nodes() {
  v1::ListNodesRequest req;
  req.set_page_size(1000);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::ListNodesResponse resp;
  auto s = FromGrpc(stub_->ListNodes(&ctx, req, &resp), "ListNodes");
  if (!s.ok()) return s;
  return std::vector<v1::Node>(resp.nodes().begin(), resp.nodes().end());
}

absl::StatusOr<v1::Node> FabricHarness::GetNode(const std::string& name) {
  v1::GetNodeRequest req;
  req.set_name(name);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::Node n;
  auto s = FromGrpc(stub_->GetNode(&ctx, req, &n), "GetNode");
  if (!s.ok()) return s;
  return n;
}

absl::Status FabricHarness::SetLink(const std::string& link, bool up) {
  v1::SetLinkStateRequest req;
  req.set_name(link);
  req.set_up(up);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::Link out;
  return FromGrpc(stub_->SetLinkState(&ctx, req, &out),
                  absl::StrCat("SetLinkState ", link, up ? " up" : " down"));
}

absl::StatusOr<v1::VerifyResult> FabricHarness::Verify(
    const std::string& name) {
  v1::VerifyAllocationRequest req;
  req.set_name(name);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  v1::VerifyResult r;
  auto s = FromGrpc(stub_->VerifyAllocation(&ctx, req, &r),
                    absl::StrCat("VerifyAllocation ", name));
  if (!s.ok()) return s;
  return r;
}

bool FabricHarness::WaitState(const std::string& name,
                              v1::Allocation::State state,
                              absl::Duration timeout) {
  return proctest::WaitFor(
      [&] {
        auto a = Get(name);
        return a.ok() && a->state() == state;
      },
      timeout);
}

absl::StatusOr<absl::Duration> FabricHarness::WaitSettled(
    absl::Duration timeout, std::string* first_unsettled) {
  const absl::Time start = absl::Now();
  std::string unsettled = "nothing read";
  while (absl::Now() - start < timeout) {
    unsettled.clear();
    auto nodes = Nodes();
    auto allocs = List();
    if (!nodes.ok() || !allocs.ok()) {
      unsettled = !nodes.ok() ? nodes.status().ToString()
                              : allocs.status().ToString();
    } else {
      int64_t generation = -1;
      for (const v1::Node& n : *nodes) {
        if (generation < 0) generation = n.desired_generation();
        if (n.agent_state() != v1::Node::READY ||
            n.applied_generation() != n.desired_generation() ||
            n.desired_generation() != generation) {
          unsettled = absl::StrCat(
              n.name(), " is ", v1::Node::AgentState_Name(n.agent_state()),
              " at generation ", n.applied_generation(), " of ",
              n.desired_generation());
          break;
        }
      }
      if (unsettled.empty()) {
        for (const v1::Allocation& a : *allocs) {
          if (a.state() == v1::Allocation::PENDING) {
            unsettled = absl::StrCat(a.name(), " PENDING: ", a.state_reason());
            break;
          }
        }
      }
      if (first_unsettled != nullptr) {
        *first_unsettled = unsettled;
        first_unsettled = nullptr;
      }
      if (unsettled.empty()) return absl::Now() - start;
    }
    // A poll, not proctest::WaitFor: the settle time returned is measured
    // at this resolution, and `timeout` is not scaled.
    Sleep(absl::Milliseconds(2));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("not settled after ", absl::FormatDuration(timeout), ": ",
                   unsettled));
}

absl::StatusOr<agentproto::v1::DesiredConfig> FabricHarness::Desired(
    const std::string& node) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(10)));
  agentproto::v1::StreamConfigRequest req;
  req.set_node(node);
  // As the node itself: the manager streams a node's configuration to that
  // node only.
  auto agent_stub = agentproto::v1::AgentService::NewStub(tls_.DialAs(
      address_, tls_.Node(node), security::PeerRequirement::AnyManager()));
  auto reader = agent_stub->StreamConfig(&ctx, req);
  agentproto::v1::DesiredConfig config;
  const bool got = reader->Read(&config);
  ctx.TryCancel();
  grpc::Status end = reader->Finish();
  if (!got) return FromGrpc(end, absl::StrCat("StreamConfig ", node));
  return config;
}

absl::StatusOr<agent::hw::BridgeState> FabricHarness::Hardware(
    const std::string& node) {
  auto record = agent::hw::sim_internal::LoadRecord(sim_dir(), node, nullptr);
  if (!record.ok()) return record.status();
  return record->state;
}

std::vector<std::string> FabricHarness::HardwareVsDesired(
    const std::string& node) {
  std::vector<std::string> out;
  auto config = Desired(node);
  if (!config.ok()) return {config.status().ToString()};
  auto have = Hardware(node);
  if (!have.ok()) return {have.status().ToString()};
  const agent::hw::BridgeState want = WantedState(*config, *have);
  if (!(have->memory == want.memory)) out.push_back("host memory differs");
  std::vector<std::string> h, w;
  for (const auto& e : have->map) h.push_back(MapText(e));
  for (const auto& e : want.map) w.push_back(MapText(e));
  DiffLists("map entry", h, w, &out);
  h.clear();
  w.clear();
  for (const auto& e : have->windows) {
    h.push_back(absl::StrCat(WindowText(e), " for ", e.tag));
  }
  for (const auto& e : want.windows) {
    w.push_back(absl::StrCat(WindowText(e), " for ", e.tag));
  }
  DiffLists("window", h, w, &out);
  // A slot programmed twice would be two entries above with one slot.
  std::map<std::pair<agent::hw::SlotKind, int>, int> slots;
  for (const auto& e : have->windows) {
    if (++slots[{e.kind, e.slot}] == 2) {
      out.push_back(absl::StrCat("slot programmed twice: ", WindowText(e)));
    }
  }
  h.clear();
  w.clear();
  for (const auto& e : have->inbound) {
    h.push_back(absl::StrCat(FormatAddr(e.local_base), " +",
                             FormatSize(e.size), " for ", e.tag));
  }
  for (const auto& e : want.inbound) {
    w.push_back(absl::StrCat(FormatAddr(e.local_base), " +",
                             FormatSize(e.size), " for ", e.tag));
  }
  DiffLists("inbound", h, w, &out);
  h.clear();
  w.clear();
  for (const auto& p : have->ports) {
    h.push_back(absl::StrCat(p.number, " -> ", p.peer_bridge, ":",
                             p.peer_port, p.up ? " up" : " down"));
  }
  for (const auto& p : want.ports) {
    w.push_back(absl::StrCat(p.number, " -> ", p.peer_bridge, ":",
                             p.peer_port, p.up ? " up" : " down"));
  }
  DiffLists("port", h, w, &out);
  return out;
}

std::vector<std::string> FabricHarness::AllHardwareVsDesired() {
  std::vector<std::string> out;
  for (int i = 0; i < options_.nodes; ++i) {
    for (const std::string& d : HardwareVsDesired(Node(i))) {
      out.push_back(absl::StrCat(Node(i), ": ", d));
    }
  }
  return out;
}

std::vector<std::string> FabricHarness::VerifyAll(
    const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& name : names) {
    if (!WaitState(name, v1::Allocation::READY)) {
      auto a = Get(name);
      out.push_back(absl::StrCat(
          name, " not READY: ",
          a.ok() ? absl::StrCat(v1::Allocation::State_Name(a->state()), " ",
                                a->state_reason())
                 : a.status().ToString()));
      continue;
    }
    auto r = Verify(name);
    if (!r.ok()) {
      out.push_back(r.status().ToString());
    } else if (!r->ok()) {
      out.push_back(absl::StrCat(name, ": ", r->summary()));
    }
  }
  return out;
}

}  // namespace fabric::faults
