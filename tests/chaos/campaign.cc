#include "tests/chaos/campaign.h"

#include <grpcpp/client_context.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/hw/sim/sim_hardware.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/chaos/agents.h"
#include "tests/chaos/allocation_ops.h"
#include "tests/chaos/attachment_ops.h"
#include "tests/chaos/control_plane.h"
#include "tests/chaos/fabric_checks.h"
#include "tests/chaos/ops.h"
#include "tests/process/process_util.h"

namespace fabric::chaos {
namespace {

namespace fs = std::filesystem;

constexpr char kFabric[] = "chaos";
// Lines of detail kept per cycle; the counters count everything.
constexpr size_t kMaxProblemLines = 40;
// How long the in-flight operations may take to be answered after the storm.
constexpr absl::Duration kResolveTimeout = absl::Seconds(20);

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t CycleSeed(uint64_t seed, int cycle, uint64_t salt) {
  return SplitMix64(SplitMix64(seed ^ salt) + static_cast<uint64_t>(cycle));
}

std::string FormatMs(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
}

absl::Status FromGrpc(const std::string& what, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", ErrorText(s)));
}

// The kinds of resources the storm creates and deletes; another kind is one
// more ResourceOps here.
std::vector<std::unique_ptr<ResourceOps>> MakeResourceOps(
    const CampaignOptions& options) {
  std::vector<std::unique_ptr<ResourceOps>> ops;
  ops.push_back(std::make_unique<AllocationOps>());
  if (options.vf_lending) ops.push_back(std::make_unique<AttachmentOps>());
  return ops;
}

std::vector<ResourceOps*> Raw(
    const std::vector<std::unique_ptr<ResourceOps>>& ops) {
  std::vector<ResourceOps*> out;
  for (const auto& op : ops) out.push_back(op.get());
  return out;
}

// A ring of `nodes`; with `lender_hardware`, node n0 lends the device MMIO
// range of that simulated hardware.
absl::Status CreateRing(v1::FabricService::Stub* stub, int nodes,
                        const std::string& lender_hardware) {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name(kFabric);
  req.mutable_spec()->set_topology(v1::RING);
  req.mutable_spec()->set_default_export_size(256 << 20);
  for (int i = 0; i < nodes; ++i) {
    req.mutable_spec()->add_nodes()->set_name(NodeId(i));
  }
  if (!lender_hardware.empty()) {
    auto hw = agent::hw::LoadSimHardware(lender_hardware);
    if (!hw.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sim-hardware ", lender_hardware, ": ", hw.status().message()));
    }
    req.mutable_spec()->mutable_nodes(0)->set_mmio_base(hw->mmio_base);
    req.mutable_spec()->mutable_nodes(0)->set_mmio_size(hw->mmio_size);
  }
  req.set_request_id("chaos-fabric");
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(10));
  v1::Fabric out;
  return FromGrpc("CreateFabric", stub->CreateFabric(&ctx, req, &out));
}

absl::StatusOr<std::vector<v1::Node>> ListNodes(v1::FabricService::Stub* stub) {
  v1::ListNodesRequest req;
  req.set_page_size(1000);
  v1::ListNodesResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  grpc::Status s = stub->ListNodes(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc("ListNodes", s);
  return std::vector<v1::Node>(resp.nodes().begin(), resp.nodes().end());
}

absl::StatusOr<std::vector<v1::AddressMap>> ListMaps(
    v1::FabricService::Stub* stub) {
  v1::ListAddressMapsRequest req;
  req.set_page_size(1000);
  v1::ListAddressMapsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  grpc::Status s = stub->ListAddressMaps(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc("ListAddressMaps", s);
  return std::vector<v1::AddressMap>(resp.address_maps().begin(),
                                     resp.address_maps().end());
}

absl::StatusOr<std::vector<v1::Link>> ListLinks(v1::FabricService::Stub* stub) {
  v1::ListLinksRequest req;
  req.set_page_size(1000);
  v1::ListLinksResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  grpc::Status s = stub->ListLinks(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc("ListLinks", s);
  return std::vector<v1::Link>(resp.links().begin(), resp.links().end());
}

absl::StatusOr<v1::Fabric> GetFabric(v1::FabricService::Stub* stub) {
  v1::GetFabricRequest req;
  req.set_name(absl::StrCat("fabrics/", kFabric));
  v1::Fabric out;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  grpc::Status s = stub->GetFabric(&ctx, req, &out);
  if (!s.ok()) return FromGrpc("GetFabric", s);
  return out;
}

// Everything the ops' kinds hold now.
absl::StatusOr<std::vector<ObservedResource>> Observe(
    v1::FabricService::Stub* stub, const std::vector<ResourceOps*>& ops) {
  std::vector<ObservedResource> out;
  for (ResourceOps* op : ops) {
    auto listed = op->List(stub);
    if (!listed.ok()) return listed.status();
    out.insert(out.end(), listed->begin(), listed->end());
  }
  return out;
}

// Why the fabric has not converged yet; empty once it has: every node's
// agent READY with the desired generation applied and no apply errors, and
// every resource settled. A call that fails reconnects `conn` (to the
// leader, in HA).
std::string NotConverged(ManagerConnection* conn,
                         const std::vector<ResourceOps*>& ops, int nodes) {
  v1::FabricService::Stub* stub = conn->stub();
  auto listed = ListNodes(stub);
  if (!listed.ok()) {
    conn->Reconnect();
    return std::string(listed.status().message());
  }
  if (static_cast<int>(listed->size()) != nodes) {
    return absl::StrCat(listed->size(), " nodes listed, expected ", nodes);
  }
  for (const v1::Node& n : *listed) {
    if (n.agent_state() != v1::Node::READY) {
      return absl::StrCat(n.name(), " is ",
                          v1::Node::AgentState_Name(n.agent_state()));
    }
    if (n.applied_generation() != n.desired_generation()) {
      return absl::StrCat(n.name(), " applied generation ",
                          n.applied_generation(), " of ",
                          n.desired_generation());
    }
    if (n.apply_errors_size() > 0) {
      return absl::StrCat(n.name(), " could not apply ",
                          n.apply_errors(0).entry(), ": ",
                          n.apply_errors(0).message());
    }
  }
  for (ResourceOps* op : ops) {
    auto resources = op->List(stub);
    if (!resources.ok()) {
      conn->Reconnect();
      return std::string(resources.status().message());
    }
    for (const ObservedResource& r : *resources) {
      if (!op->Settled(r)) return absl::StrCat(r.name, " is ", r.state);
    }
  }
  return "";
}

// Waits until NotConverged says "" or `timeout` passes; returns "" or the
// last reason. `progress`, if set, is told each new reason.
std::string WaitConverged(
    ManagerConnection* conn, const std::vector<ResourceOps*>& ops,
    int nodes, absl::Duration timeout,
    const std::function<void(const std::string&)>& progress = nullptr) {
  std::string last;
  std::string why;
  proctest::WaitFor(
      [&] {
        why = NotConverged(conn, ops, nodes);
        if (progress && why != last) progress(why.empty() ? "converged" : why);
        last = why;
        return why.empty();
      },
      timeout, absl::Milliseconds(20));
  return why;
}

// Adds a problem line to the report, counting it in *counter.
void Problem(CycleReport* r, int* counter, const std::string& line) {
  ++*counter;
  if (r->problems.size() < kMaxProblemLines) {
    r->problems.push_back(line);
  } else if (r->problems.size() == kMaxProblemLines) {
    r->problems.push_back("(more problems left out)");
  }
}

void WriteLedger(const std::string& path, const Ledger& ledger) {
  std::ofstream out(path);
  for (const CreateRecord& c : ledger.creates()) {
    out << "create " << c.request_id << " " << c.kind << " [" << c.spec << "] "
        << OutcomeName(c.outcome) << " attempts=" << c.attempts
        << (c.had_unknown_attempt ? " had-unknown" : "") << " name=" << c.name
        << " error=" << c.error << "\n";
  }
  for (const DeleteRecord& d : ledger.deletes()) {
    out << "delete " << d.request_id << " " << d.kind << " " << d.name << " "
        << OutcomeName(d.outcome) << " attempts=" << d.attempts
        << (d.had_unknown_attempt ? " had-unknown" : "") << " error=" << d.error
        << "\n";
  }
}

// The checks of a converged fabric (before the release).
void CheckConverged(ManagerConnection* conn,
                    const std::vector<ResourceOps*>& ops, const Ledger& ledger,
                    ControlPlane& control, const Agents& agents,
                    const std::vector<std::string>& nodes,
                    const std::string& dir, absl::Duration converge_timeout,
                    CycleReport* r) {
  v1::FabricService::Stub* stub = conn->stub();
  // 1. The ledger against what the manager holds.
  auto observed = Observe(stub, ops);
  if (!observed.ok()) {
    Problem(
        r, &r->other_failures,
        absl::StrCat("cannot list resources: ", observed.status().message()));
    return;
  }
  r->ledger = CheckLedger(ledger.creates(), ledger.deletes(), *observed);
  for (const std::string& line : r->ledger.details) {
    if (r->problems.size() < kMaxProblemLines) r->problems.push_back(line);
  }

  // 2. The invariant checker over the simulated hardware, and the hardware
  // against the manager's desired maps.
  auto fabric = GetFabric(stub);
  auto links = ListLinks(stub);
  auto allocations = AllocationOps::ListAll(stub);
  auto attachments = AttachmentOps::ListAll(stub);
  auto maps = ListMaps(stub);
  for (const absl::Status& s :
       {fabric.status(), links.status(), allocations.status(),
        attachments.status(), maps.status()}) {
    if (!s.ok()) {
      Problem(r, &r->other_failures,
              absl::StrCat("cannot read the fabric: ", s.message()));
      return;
    }
  }
  auto hardware = ReadSimBridges(agents.sim_dir(), nodes);
  if (hardware.ok()) hardware = RelabelAsWanted(*maps, *std::move(hardware));
  auto model = ModelFromApi(*fabric, *links, *allocations, *attachments);
  if (!hardware.ok() || !model.ok()) {
    Problem(r, &r->invariant_violations,
            absl::StrCat("cannot model the fabric: ",
                         hardware.ok() ? model.status().message()
                                       : hardware.status().message()));
  } else {
    absl::Status s = CheckHardwareInvariants(*model, *hardware);
    if (!s.ok()) {
      Problem(r, &r->invariant_violations,
              absl::StrCat("invariants over the simulated hardware: ",
                           s.message()));
    }
    for (const std::string& line : DiffMapsAndHardware(*maps, *hardware)) {
      Problem(r, &r->invariant_violations,
              absl::StrCat("converged, yet ", line));
    }
  }

  // 3. The manager's durable state, loaded as a restart would load it.
  auto durable = control.LoadDurable(dir + "/snapshot.db");
  if (!durable.ok()) {
    Problem(r, &r->invariant_violations,
            absl::StrCat("the durable state does not load: ",
                         durable.status().message()));
  } else {
    if (!durable->invariants.ok()) {
      Problem(r, &r->invariant_violations,
              absl::StrCat("invariants over the durable state: ",
                           durable->invariants.message()));
    }
    std::set<std::string> live;
    for (const v1::Allocation& a : *allocations) live.insert(a.name());
    for (const v1::Attachment& a : *attachments) live.insert(a.name());
    for (const std::string& name : live) {
      if (!durable->resources.count(name)) {
        Problem(r, &r->invariant_violations,
                absl::StrCat(name, " is served but not durable"));
      }
    }
    for (const std::string& name : durable->resources) {
      if (!live.count(name)) {
        Problem(r, &r->invariant_violations,
                absl::StrCat(name, " is durable but not served"));
      }
    }
  }

  // 4. Every READY resource proven end to end (by bytes).
  for (ResourceOps* op : ops) {
    for (const ObservedResource& res : *observed) {
      if (res.kind != op->kind()) continue;
      absl::Status s = op->Verify(stub, res);
      if (absl::IsFailedPrecondition(s) && res.state == "READY") {
        // It was READY when observed and is not now: the fabric moved
        // after converging (e.g. an agent's heartbeat came late). Verify
        // what is READY once it has converged again; if it never does, the
        // first error stands.
        if (WaitConverged(conn, ops, static_cast<int>(nodes.size()),
                          converge_timeout)
                .empty()) {
          s = op->Verify(conn->stub(), res);
        }
      }
      if (s.ok()) {
        ++r->verified;
      } else if (!absl::IsFailedPrecondition(s) || res.state == "READY") {
        Problem(r, &r->verify_failures, absl::StrCat("verify: ", s.message()));
      }
    }
  }
}

// Releases everything, waits for the agents to apply it and counts what is
// left in the manager and in the simulated hardware.
void ReleaseAndCheckLeaks(ManagerConnection* conn,
                          const std::vector<ResourceOps*>& ops,
                          const CampaignOptions& options, const Agents& agents,
                          const std::vector<std::string>& nodes,
                          CycleReport* r) {
  for (ResourceOps* op : ops) {
    auto resources = op->List(conn->stub());
    if (!resources.ok()) {
      Problem(r, &r->other_failures,
              absl::StrCat("release: ", resources.status().message()));
      return;
    }
    for (const ObservedResource& res : *resources) {
      Attempt a;
      proctest::WaitFor(
          [&] {
            a = op->Delete(conn->stub(), res.name,
                           absl::StrCat("chaos-release-", res.name),
                           absl::Seconds(3));
            if (a.code == grpc::StatusCode::UNAVAILABLE) conn->Reconnect();
            return a.outcome != Outcome::kUnknown;
          },
          kResolveTimeout, absl::Milliseconds(25));
      if (a.outcome != Outcome::kAcknowledged) {
        Problem(r, &r->other_failures,
                absl::StrCat("release of ", res.name, " failed: ", a.error));
      }
    }
  }
  const std::string why =
      WaitConverged(conn, ops, options.nodes, options.converge_timeout);
  if (!why.empty()) {
    Problem(r, &r->other_failures,
            absl::StrCat("no convergence after the release: ", why));
  }
  v1::FabricService::Stub* stub = conn->stub();
  // The manager: nothing held, nothing lent, no window or inbound entry.
  auto left = Observe(stub, ops);
  if (left.ok()) {
    for (const ObservedResource& res : *left) {
      Problem(r, &r->leaked,
              absl::StrCat("leak: the manager still holds ", res.name,
                           " after releasing everything"));
    }
  }
  auto listed = ListNodes(stub);
  if (listed.ok()) {
    for (const v1::Node& n : *listed) {
      if (n.lent_bytes() != 0) {
        Problem(r, &r->leaked,
                absl::StrCat("leak: ", n.name(), " still lends ",
                             n.lent_bytes(), " bytes"));
      }
    }
  }
  auto maps = ListMaps(stub);
  if (maps.ok()) {
    for (const v1::AddressMap& m : *maps) {
      if (m.windows_size() + m.inbound_size() > 0) {
        Problem(r, &r->leaked,
                absl::StrCat("leak: the manager still maps ", m.windows_size(),
                             " windows and ", m.inbound_size(),
                             " inbound entries on ", m.bridge()));
      }
    }
  }
  // The simulated hardware.
  auto hardware = ReadSimBridges(agents.sim_dir(), nodes);
  if (!hardware.ok()) {
    Problem(r, &r->other_failures,
            absl::StrCat("cannot read the simulator: ",
                         hardware.status().message()));
    return;
  }
  for (const std::string& line : Leftovers(*hardware)) {
    Problem(r, &r->leaked, absl::StrCat("leak: simulated bridge ", line));
  }
}

// What of the control plane `kind` kills, if anything.
std::optional<Victim> VictimOf(KillKind kind) {
  switch (kind) {
    case KillKind::kManager:
    case KillKind::kBoth:
      return Victim::kLeader;
    case KillKind::kStandby:
      return Victim::kStandby;
    case KillKind::kEtcdMember:
      return Victim::kStoreMember;
    case KillKind::kAgent:
      break;
  }
  return std::nullopt;
}

// The flags besides the seed and the cycles that a replay needs.
std::string ShapeFlags(const CampaignOptions& options) {
  return absl::StrFormat(
      "--nodes %d --clients %d --storm-ms %d --max-down-ms %d%s%s",
      options.nodes, options.clients, absl::ToInt64Milliseconds(options.storm),
      absl::ToInt64Milliseconds(options.max_down),
      options.vf_lending ? "" : " --no-vf-lending",
      options.store == StoreKind::kSqlite ? "" : " --store etcd");
}

}  // namespace

const char* KillKindName(KillKind k) {
  switch (k) {
    case KillKind::kManager:
      return "manager";
    case KillKind::kAgent:
      return "agent";
    case KillKind::kBoth:
      return "both";
    case KillKind::kStandby:
      return "standby";
    case KillKind::kEtcdMember:
      return "etcd";
  }
  return "?";
}

KillPlan PlanKill(uint64_t seed, int cycle, int nodes, absl::Duration storm,
                  absl::Duration max_down, StoreKind store) {
  Rng rng(CycleSeed(seed, cycle, /*salt=*/0x6b696c6c));  // "kill"
  KillPlan p;
  p.kind = static_cast<KillKind>(rng() % (store == StoreKind::kEtcd ? 5 : 3));
  const int agent = static_cast<int>(rng() % std::max(nodes, 1));
  p.agent =
      p.kind == KillKind::kAgent || p.kind == KillKind::kBoth ? agent : -1;
  // Somewhere in the middle 80% of the storm, so that there is load both
  // before and after.
  const double at = 0.1 + 0.8 * static_cast<double>(rng() % 1000000) / 1e6;
  p.at = absl::Milliseconds(
      static_cast<int64_t>(at * absl::ToDoubleMilliseconds(storm)));
  const uint64_t max_down_ms =
      std::max<int64_t>(absl::ToInt64Milliseconds(max_down), 1);
  p.down_for = absl::Milliseconds(static_cast<int64_t>(rng() % max_down_ms));
  if (p.kind == KillKind::kEtcdMember) {
    p.member = static_cast<int>(rng() % 3);  // of EtcdControlPlane's three
  }
  return p;
}

CycleReport RunCycle(const CampaignOptions& options, int cycle) {
  CycleReport r;
  r.cycle = cycle;
  r.kill = PlanKill(options.seed, cycle, options.nodes, options.storm,
                    options.max_down, options.store);
  const std::string dir =
      (fs::path(options.work_dir) / absl::StrCat("cycle-", cycle)).string();
  r.dir = dir;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  std::ofstream log(dir + "/cycle.log");
  const absl::Time cycle_start = absl::Now();
  auto event = [&](const std::string& what) {
    log << FormatMs(absl::Now() - cycle_start) << " " << what << std::endl;
  };

  std::vector<std::string> nodes;
  for (int i = 0; i < options.nodes; ++i) nodes.push_back(NodeId(i));
  const auto owned_ops = MakeResourceOps(options);
  const std::vector<ResourceOps*> ops = Raw(owned_ops);

  // 1. The manager(s), a ring, an agent per node; converged before the
  // storm.
  const std::string lender_hardware =
      options.vf_lending ? options.sim_hardware : "";
  absl::StatusOr<std::unique_ptr<ControlPlane>> started =
      ControlPlane::Start(options.store, options.bin_dir, dir);
  if (!started.ok()) {
    Problem(&r, &r.other_failures, std::string(started.status().message()));
    return r;
  }
  ControlPlane& control = **started;
  const std::vector<std::string> managers = control.managers();
  event("managers up at " + absl::StrJoin(managers, ","));
  ManagerConnection conn(managers);
  if (absl::Status s = CreateRing(conn.stub(), options.nodes, lender_hardware);
      !s.ok()) {
    Problem(&r, &r.other_failures, std::string(s.message()));
    return r;
  }
  Agents agents(options.bin_dir, dir, options.nodes, lender_hardware,
                managers);
  for (int i = 0; i < options.nodes; ++i) agents.Start(i);
  if (std::string why =
          WaitConverged(&conn, ops, options.nodes, options.converge_timeout);
      !why.empty()) {
    Problem(&r, &r.other_failures,
            absl::StrCat("the new fabric did not converge: ", why));
    return r;
  }
  event("fabric converged; storm starts");

  // 2-4. The storm, with a kill -9 and a restart in the middle.
  Ledger ledger;
  StormOptions storm_options;
  storm_options.clients = options.clients;
  storm_options.seed = CycleSeed(options.seed, cycle, /*salt=*/0x73746f726d);
  Storm storm(ops, FabricInfo{kFabric, nodes}, managers, &ledger,
              storm_options);
  const absl::Time storm_start = absl::Now();
  storm.Start();
  // Real time is the point from here to the storm's end: the kill lands at
  // a chosen moment of a running storm and the victim stays down for a
  // chosen time, while the clients keep the manager busy.
  absl::SleepFor(r.kill.at);
  const std::optional<Victim> victim = VictimOf(r.kill.kind);
  const bool kill_agent =
      r.kill.kind == KillKind::kAgent || r.kill.kind == KillKind::kBoth;
  const absl::Time kill_time = absl::Now();
  bool restarted = true;
  if (victim.has_value()) {
    if (absl::Status s = control.Kill(*victim, r.kill.member); !s.ok()) {
      Problem(&r, &r.other_failures, absl::StrCat("kill: ", s.message()));
      restarted = false;
    }
  }
  if (kill_agent) agents.Kill(r.kill.agent);
  r.killed = true;
  event(absl::StrCat(
      "killed ", victim.has_value() ? control.killed() : "",
      kill_agent ? absl::StrCat(" agent ", NodeId(r.kill.agent)) : ""));
  absl::SleepFor(r.kill.down_for);
  if (victim.has_value() && restarted) {
    if (absl::Status s = control.RestartKilled(); !s.ok()) {
      Problem(&r, &r.other_failures,
              absl::StrCat("restart after kill -9: ", s.message()));
      restarted = false;
    }
  }
  if (kill_agent) agents.Start(r.kill.agent);
  event("restarted");
  // After a kill of the leading manager: how long until every agent has
  // registered again with the manager that leads now (which starts with
  // every node UNREGISTERED); from the restart, or with a standby that takes
  // over, from the kill.
  std::atomic<bool> stop_watching{false};
  std::thread recovery_watch;
  if (victim == Victim::kLeader && restarted) {
    const absl::Time since = control.fails_over() ? kill_time : absl::Now();
    recovery_watch = std::thread([&, since] {
      ManagerConnection watch(managers);
      while (!stop_watching) {
        auto listed = ListNodes(watch.stub());
        if (!listed.ok()) watch.Reconnect();
        if (listed.ok() && static_cast<int>(listed->size()) == options.nodes &&
            std::all_of(listed->begin(), listed->end(), [](const v1::Node& n) {
              return n.agent_state() == v1::Node::READY;
            })) {
          r.recovery_time = absl::Now() - since;
          r.recovered = true;
          return;
        }
        // A poll: it measures recovery_time at this resolution (node
        // readiness has no event a client can wait on across a restart).
        absl::SleepFor(absl::Milliseconds(10));
      }
    });
  }
  absl::SleepFor(storm_start + options.storm - absl::Now());  // see above
  storm.Stop();
  const StormStats stats = storm.stats();
  r.unknown_attempts = stats.unknown_attempts;
  event(absl::StrCat("storm stopped: ", stats.creates_acknowledged,
                     " creates and ", stats.deletes_acknowledged,
                     " deletes acknowledged, ", stats.unknown_attempts,
                     " attempts with unknown outcome"));
  if (!restarted) {
    WriteLedger(dir + "/ledger.txt", ledger);
    control.KeepLogs();
    return r;
  }

  // 5. In-flight operations resolved by their request ids; convergence.
  r.resolved = storm.Resolve(absl::Now() + kResolveTimeout);
  for (const CreateRecord& c : ledger.creates()) {
    if (c.outcome != Outcome::kAcknowledged) continue;
    ++r.acknowledged_creates;
    ++r.acknowledged_by_kind[c.kind];
  }
  for (const DeleteRecord& d : ledger.deletes()) {
    if (d.outcome != Outcome::kAcknowledged) continue;
    ++r.acknowledged_deletes;
    ++r.acknowledged_by_kind[d.kind];
  }
  const absl::Time quiet = absl::Now();
  event(absl::StrCat("resolved ", r.resolved, " in-flight operations"));
  const std::string why =
      WaitConverged(&conn, ops, options.nodes, options.converge_timeout,
                    [&](const std::string& e) { event("waiting: " + e); });
  r.converge_time = absl::Now() - quiet;
  r.converged = why.empty();
  if (!r.converged) {
    Problem(&r, &r.other_failures,
            absl::StrCat("no convergence within ",
                         FormatMs(options.converge_timeout), ": ", why));
  }
  event(absl::StrCat("converged=", r.converged, " after ",
                     FormatMs(r.converge_time)));
  stop_watching = true;
  if (recovery_watch.joinable()) recovery_watch.join();
  if (r.recovered) {
    event(absl::StrCat("every agent had registered again ",
                       FormatMs(r.recovery_time), " after the leader's ",
                       control.fails_over() ? "kill" : "restart"));
  }

  // 6. The checks, then the release and the leak check.
  CheckConverged(&conn, ops, ledger, control, agents, nodes, dir,
                 options.converge_timeout, &r);
  event("checked");
  ReleaseAndCheckLeaks(&conn, ops, options, agents, nodes, &r);
  event("released");
  for (const std::string& line : control.ReapUnexpected()) {
    Problem(&r, &r.crashes, line);
  }
  for (const std::string& line : agents.ReapUnexpected()) {
    Problem(&r, &r.crashes, line);
  }
  r.leadership_losses = control.leadership_losses();
  if (r.leadership_losses > 0) {
    event(absl::StrCat(r.leadership_losses,
                       " manager(s) lost the leadership and were restarted"));
  }
  for (const std::string& line : r.problems) event("problem: " + line);
  if (r.violations() > 0 || options.keep) {
    WriteLedger(dir + "/ledger.txt", ledger);
    control.KeepLogs();
  }
  return r;
}

std::string FormatKillPlan(const KillPlan& p) {
  std::string kill = absl::StrCat("kill ", KillKindName(p.kind));
  if (p.agent >= 0) absl::StrAppend(&kill, " ", NodeId(p.agent));
  if (p.member >= 0) absl::StrAppend(&kill, " member ", p.member);
  absl::StrAppend(&kill, " at ", FormatMs(p.at), " for ", FormatMs(p.down_for));
  return kill;
}

void PrintSchedule(const CampaignOptions& options, std::ostream& out) {
  for (int c = options.start_cycle; c < options.start_cycle + options.cycles;
       ++c) {
    out << "cycle " << c << ": "
        << FormatKillPlan(PlanKill(options.seed, c, options.nodes,
                                   options.storm, options.max_down,
                                   options.store))
        << "\n";
  }
}

std::string FormatCycleLine(const CampaignOptions& options,
                            const CycleReport& r) {
  const std::string kill = FormatKillPlan(r.kill);
  std::vector<std::string> kinds;
  for (const auto& [kind, n] : r.acknowledged_by_kind) {
    kinds.push_back(absl::StrCat(kind, " ", n));
  }
  std::string line = absl::StrFormat(
      "cycle %d: %s | acked %d (%d created, %d deleted; %s), %d retried, %d "
      "resolved | lost %d, duplicated %d, resurrected %d, leaked %d, "
      "invariants %d, verified %d/%d | converged %s",
      r.cycle, kill, r.acknowledged_creates + r.acknowledged_deletes,
      r.acknowledged_creates, r.acknowledged_deletes,
      absl::StrJoin(kinds, ", "), r.unknown_attempts, r.resolved, r.ledger.lost,
      r.ledger.duplicated, r.ledger.resurrected, r.leaked,
      r.invariant_violations, r.verified, r.verified + r.verify_failures,
      r.converged ? absl::StrCat("in ", FormatMs(r.converge_time)) : "NO");
  if (r.recovered) {
    absl::StrAppend(&line, ", agents back ", FormatMs(r.recovery_time),
                    options.store == StoreKind::kSqlite
                        ? " after the manager restart"
                        : " after the leader's kill");
  }
  if (r.leadership_losses > 0) {
    absl::StrAppend(&line, ", ", r.leadership_losses,
                    " leadership loss(es) restarted");
  }
  if (r.violations() == 0) return line + " | ok";
  return absl::StrFormat(
      "%s | FAILED (%d violations; replay: --seed %d --start-cycle %d "
      "--cycles 1 %s)",
      line, r.violations(), options.seed, r.cycle, ShapeFlags(options));
}

int RunCampaign(const CampaignOptions& in, std::ostream& out) {
  CampaignOptions options = in;
  bool made_work_dir = false;
  if (options.work_dir.empty()) {
    std::string tmpl =
        (fs::temp_directory_path() / "fabric-chaos-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      out << "error: cannot make a work directory under "
          << fs::temp_directory_path() << "\n";
      return 1;
    }
    options.work_dir = tmpl;
    made_work_dir = true;
  }
  out << absl::StrFormat(
             "fabric-chaos: seed %d, cycles %d..%d, %s, work dir %s",
             options.seed, options.start_cycle,
             options.start_cycle + options.cycles - 1, ShapeFlags(options),
             options.work_dir)
      << std::endl;

  std::map<KillKind, int> kills;
  int64_t acked_creates = 0, acked_deletes = 0, retried = 0, resolved = 0;
  std::map<std::string, int64_t> acked_by_kind;
  LedgerFindings total;
  int leaked = 0, invariants = 0, verified = 0, verify_failures = 0,
      crashes = 0, other = 0, cycles_run = 0, leadership_losses = 0;
  std::vector<double> converge_ms, recovery_ms;
  std::vector<int> failed;
  for (int c = options.start_cycle; c < options.start_cycle + options.cycles;
       ++c) {
    CycleReport r = RunCycle(options, c);
    ++cycles_run;
    if (r.killed) ++kills[r.kill.kind];
    acked_creates += r.acknowledged_creates;
    acked_deletes += r.acknowledged_deletes;
    for (const auto& [kind, n] : r.acknowledged_by_kind) {
      acked_by_kind[kind] += n;
    }
    retried += r.unknown_attempts;
    resolved += r.resolved;
    total.lost += r.ledger.lost;
    total.duplicated += r.ledger.duplicated;
    total.resurrected += r.ledger.resurrected;
    total.mismatched += r.ledger.mismatched;
    total.idempotency += r.ledger.idempotency;
    total.unresolved += r.ledger.unresolved;
    leaked += r.leaked;
    invariants += r.invariant_violations;
    verified += r.verified;
    verify_failures += r.verify_failures;
    crashes += r.crashes;
    other += r.other_failures;
    leadership_losses += r.leadership_losses;
    if (r.converged) {
      converge_ms.push_back(absl::ToDoubleMilliseconds(r.converge_time));
    }
    if (r.recovered) {
      recovery_ms.push_back(absl::ToDoubleMilliseconds(r.recovery_time));
    }
    out << FormatCycleLine(options, r) << std::endl;
    if (r.violations() > 0) {
      failed.push_back(c);
      for (const std::string& p : r.problems) out << "    " << p << "\n";
      out << "    logs, ledger and databases kept in " << r.dir << std::endl;
    } else if (!options.keep) {
      std::error_code ec;
      fs::remove_all(r.dir, ec);
    }
    if (!failed.empty() && options.stop_on_failure) break;
  }

  auto percentile = [](std::vector<double> v, double p) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  const int violations = total.violations() + leaked + invariants +
                         verify_failures + crashes + other;
  out << "\nfabric-chaos summary: seed " << options.seed << ", " << cycles_run
      << " cycles run, " << failed.size() << " failed\n";
  out << absl::StrFormat("kills: manager %d, agent %d, both %d",
                         kills[KillKind::kManager], kills[KillKind::kAgent],
                         kills[KillKind::kBoth]);
  if (options.store == StoreKind::kEtcd) {
    out << absl::StrFormat(
        ", standby %d, etcd member %d (the manager killed is the leader; "
        "managers restarted after losing the leadership: %d)",
        kills[KillKind::kStandby], kills[KillKind::kEtcdMember],
        leadership_losses);
  }
  out << "\n";
  std::vector<std::string> kinds;
  for (const auto& [kind, n] : acked_by_kind) {
    kinds.push_back(absl::StrCat(kind, " ", n));
  }
  out << absl::StrFormat(
      "acknowledged operations: %d (%d creates, %d deletes; %s); attempts "
      "retried after an unknown outcome: %d; in-flight outcomes resolved by "
      "request id: %d\n",
      acked_creates + acked_deletes, acked_creates, acked_deletes,
      absl::StrJoin(kinds, ", "), retried, resolved);
  out << absl::StrFormat(
      "lost %d, duplicated %d, resurrected %d, mismatched %d, idempotency %d, "
      "unresolved %d, leaked %d, invariant violations %d, verify failures %d "
      "(%d verified by bytes), crashes %d, other failures %d\n",
      total.lost, total.duplicated, total.resurrected, total.mismatched,
      total.idempotency, total.unresolved, leaked, invariants, verify_failures,
      verified, crashes, other);
  out << absl::StrFormat(
      "converge time (after the storm and the restart): p50 %.0fms, p99 "
      "%.0fms, max %.0fms over %d cycles\n",
      percentile(converge_ms, 50), percentile(converge_ms, 99),
      percentile(converge_ms, 100), static_cast<int>(converge_ms.size()));
  out << absl::StrFormat(
      "agents registered again after %s: p50 %.0fms, p99 %.0fms, max %.0fms "
      "over %d %s\n",
      options.store == StoreKind::kSqlite ? "a manager restart"
                                          : "the leader's kill",
      percentile(recovery_ms, 50), percentile(recovery_ms, 99),
      percentile(recovery_ms, 100), static_cast<int>(recovery_ms.size()),
      options.store == StoreKind::kSqlite ? "restarts" : "kills");
  if (violations == 0) {
    out << "result: OK (" << violations << " violations)" << std::endl;
    if (made_work_dir && !options.keep) {
      std::error_code ec;
      fs::remove_all(options.work_dir, ec);
    }
    return 0;
  }
  out << "result: FAILED, " << violations << " violations in cycles "
      << absl::StrJoin(failed, ", ") << "\n";
  const std::string common = ShapeFlags(options);
  out << absl::StrFormat(
             "reproduce: fabric-chaos --seed %d%s --cycles %d %s   (cycle %d "
             "alone: --seed %d --start-cycle %d --cycles 1 %s)",
             options.seed,
             options.start_cycle == 0
                 ? ""
                 : absl::StrCat(" --start-cycle ", options.start_cycle),
             failed.front() - options.start_cycle + 1, common, failed.front(),
             options.seed, failed.front(), common)
      << std::endl;
  return 1;
}

}  // namespace fabric::chaos
