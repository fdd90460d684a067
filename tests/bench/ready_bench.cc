// fabric-ready-bench: time from CreateAllocation to READY on an 8-node ring
// whose agents run as separate processes over the simulator, next to the
// latency of a no-op Ping on the same manager in the same run.
//
// READY means every agent on the allocation's path applied the generation
// holding it (each a durable write of its simulated bridge state) and
// reported it back; the allocation's READY event is observed on a Watch
// stream. --breakdown also traces the manager and the agents
// (common/latency_trace.h) and prints the median and p99 of each phase.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/latency_trace.h"
#include "common/mutex_mode.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/latency_breakdown.h"
#include "tests/bench/ready_watcher.h"
#include "tests/process/process_util.h"

namespace fabric::bench {
namespace {

// Issue 12: time to READY, p99 of 5 ms or less.
constexpr double kGoalP99Us = 5000;

// One allocation timed: when it was asked for, committed (the RPC
// returned) and seen READY (steady clock, ns), its generation and path.
struct Sample {
  int64_t asked_ns, created_ns, ready_ns, generation;
  std::vector<std::string> path;
};

// Where each allocation's time to READY went, along its slowest path agent
// (the last whose report the manager received), from the trace the manager
// and the agents wrote.
void PrintBreakdown(const std::string& trace,
                    const std::vector<Sample>& samples) {
  const TraceIndex index(LatencyTrace::Parse(trace));
  PhaseTable table(
      {"CreateAllocation: plan + commit (fsync)",
       "generation -> config write (manager)",
       "config stream transit -> agent reader", "agent reader -> apply loop",
       "apply to the simulated bridge", "status report out -> manager",
       "report handling + readiness (manager)", "READY event -> watcher"});
  std::vector<double> rpc_us, skew_us;
  for (const Sample& s : samples) {
    const int64_t g = s.generation;
    const int64_t gen = index.First("manager.generation", "-", g, s.asked_ns);
    // The path agent heard from last. A node whose configuration the
    // allocation left as it was (one that only forwards) is sent nothing
    // and reports nothing for it: a report of a later generation, after
    // READY, is not this allocation's.
    std::string last;
    int64_t last_in = -1, first_in = -1;
    for (const std::string& n : s.path) {
      // "bridges/n3": the bridge of node n3.
      const std::string node = n.substr(n.rfind('/') + 1);
      int64_t in = index.First("manager.report_in", node, g, gen);
      if (in > s.ready_ns) in = -1;
      if (in > last_in) last_in = in, last = node;
      if (in >= 0 && (first_in < 0 || in < first_in)) first_in = in;
    }
    const int64_t sent = index.First("manager.config_sent", last, g, gen);
    const int64_t got = index.First("agent.config_in", last, g, sent);
    const int64_t start = index.First("agent.apply_start", last, g, got);
    const int64_t applied = index.First("agent.applied", last, g, start);
    const int64_t in = index.First("manager.report_in", last, g, applied);
    const int64_t done = index.First("manager.report_done", last, g, in);
    table.Add(
        {s.asked_ns, gen, sent, got, start, applied, in, done, s.ready_ns});
    rpc_us.push_back((s.created_ns - s.asked_ns) / 1e3);
    if (first_in >= 0) skew_us.push_back((last_in - first_in) / 1e3);
  }
  std::cout << table.Format()
            << absl::StrFormat(
                   "  (CreateAllocation RPC as the client saw it: p50 %.0f "
                   "us, p99 %.0f us; first to last path agent's report: "
                   "p50 %.0f us, p99 %.0f us)\n",
                   Percentile(rpc_us, 50), Percentile(rpc_us, 99),
                   Percentile(skew_us, 50), Percentile(skew_us, 99));
}

int Main(int argc, char** argv) {
  CLI::App app{
      "fabric-ready-bench: allocation time to READY with agents as "
      "processes, against a no-op RPC"};
  int count = 200;
  int nodes = 8;
  std::string output = "table";
  app.add_option("--count", count, "allocations to time")
      ->capture_default_str();
  app.add_option("--nodes", nodes, "ring size (one agent each)")
      ->check(CLI::Range(2, 64))
      ->capture_default_str();
  app.add_option("-o,--output", output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  bool breakdown = false;
  app.add_flag("--breakdown", breakdown,
               "trace the manager and the agents (FABRIC_LATENCY_TRACE) and "
               "print where the time to READY goes, phase by phase");
  CLI11_PARSE(app, argc, argv);

  proctest::TempDir dir;
  const std::string trace_path = dir.path() + "/latency.trace";
  // Inherited by the manager and the agents.
  if (breakdown) setenv(LatencyTrace::kEnv, trace_path.c_str(), 1);
  // Plaintext on loopback, for the manager, the agents and this client.
  proctest::Manager manager = proctest::StartManager(
      dir.path() + "/fabric.db", dir.path() + "/manager.log", {"--insecure"});
  if (manager.port < 0) {
    std::cerr << "fabric-manager did not start:\n"
              << proctest::ReadFile(dir.path() + "/manager.log");
    return 1;
  }
  const std::string address = absl::StrCat("127.0.0.1:", manager.port);
  auto stub = v1::FabricService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::CreateFabricRequest fabric;
  fabric.mutable_spec()->set_name("bench");
  fabric.mutable_spec()->set_topology(v1::RING);
  fabric.mutable_spec()->set_default_export_size(256 << 20);
  for (int i = 0; i < nodes; ++i)
    fabric.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
  {
    grpc::ClientContext ctx;
    v1::Fabric out;
    grpc::Status s = stub->CreateFabric(&ctx, fabric, &out);
    if (!s.ok()) {
      std::cerr << "create fabric: " << s.error_message() << "\n";
      return 1;
    }
  }
  std::vector<std::unique_ptr<proctest::Child>> agents;
  for (int i = 0; i < nodes; ++i) {
    agents.push_back(std::make_unique<proctest::Child>(
        std::vector<std::string>{
            proctest::BinDir() + "/fabric-agent", "--manager", address,
            "--node", absl::StrCat("n", i), "--backend", "sim", "--sim-dir",
            dir.path() + "/sim", "--insecure"},
        absl::StrCat(dir.path(), "/agent-", i, ".log")));
  }
  // Every agent registered and applied.
  const bool up =
      proctest::WaitFor([&] { return ReadyAppliedNodes(stub.get()) == nodes; },
                        absl::Seconds(10), absl::Milliseconds(10));
  if (!up) {
    std::cerr << "agents did not come up\n";
    return 1;
  }

  // The no-op baseline.
  std::vector<double> ping_us;
  for (int i = 0; i < count; ++i) {
    grpc::ClientContext ctx;
    v1::PingResponse resp;
    const auto t0 = Clock::now();
    if (!stub->Ping(&ctx, v1::PingRequest(), &resp).ok()) return 1;
    ping_us.push_back(Micros(Clock::now() - t0));
  }

  ReadyWatcher watcher(stub.get(), "allocations");
  std::mt19937 rng(7);
  std::vector<double> ready_us;
  std::vector<Sample> samples;  // with --breakdown
  int failures = 0;
  for (int i = 0; i < count; ++i) {
    const int from = static_cast<int>(rng() % nodes);
    int to = static_cast<int>(rng() % (nodes - 1));
    if (to >= from) ++to;
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower(absl::StrCat("n", from));
    req.mutable_allocation()->set_target(absl::StrCat("n", to));
    req.mutable_allocation()->set_size(1 << 20);
    req.set_request_id(absl::StrCat("ready-", i));
    v1::Allocation a;
    const auto t0 = Clock::now();
    grpc::ClientContext ctx;
    grpc::Status s = stub->CreateAllocation(&ctx, req, &a);
    const auto created = Clock::now();
    Clock::time_point at;
    if (!s.ok() || !watcher.Wait(a.name(), &at, std::chrono::seconds(10))) {
      ++failures;
      std::cerr << "allocation " << i
                << " did not turn READY: " << s.error_message() << "\n";
      continue;
    }
    ready_us.push_back(Micros(at - t0));
    auto ns = [](Clock::time_point t) {
      return static_cast<int64_t>(
          std::chrono::nanoseconds(t.time_since_epoch()).count());
    };
    if (breakdown) {
      // The generation and path READY waited for (the create response
      // does not carry them).
      grpc::ClientContext gctx;
      v1::GetAllocationRequest get;
      get.set_name(a.name());
      v1::Allocation got;
      if (stub->GetAllocation(&gctx, get, &got).ok()) {
        samples.push_back({ns(t0),
                           ns(created),
                           ns(at),
                           got.required_generation(),
                           {got.path().begin(), got.path().end()}});
      }
    }
    grpc::ClientContext dctx;
    v1::DeleteAllocationRequest del;
    del.set_name(a.name());
    v1::Allocation released;
    if (!stub->DeleteAllocation(&dctx, del, &released).ok()) ++failures;
  }
  const double p50 = Percentile(ready_us, 50), p99 = Percentile(ready_us, 99);
  const double ping50 = Percentile(ping_us, 50);
  if (output == "json") {
    std::cout << absl::StrFormat(
        "{\"nodes\":%d,\"allocations\":%d,\"failures\":%d,"
        "\"ready_p50_us\":%.1f,\"ready_p99_us\":%.1f,\"ping_p50_us\":%.1f,"
        "\"ping_p99_us\":%.1f,\"ready_over_ping_p50\":%.2f,"
        "\"target_met\":%s}\n",
        nodes, count, failures, p50, p99, ping50, Percentile(ping_us, 99),
        p50 / ping50, p99 <= kGoalP99Us ? "true" : "false");
  } else {
    std::cout << absl::StrFormat(
        "fabric-ready-bench: %d-node ring, agents as processes on the "
        "simulator, %d allocations of 1 MiB\n"
        "time to READY: p50 %.0f us, p99 %.0f us (issue 12 goal p99 <= 5 ms: %s)\n"
        "no-op Ping on the same manager: p50 %.0f us, p99 %.0f us "
        "(READY p50 = %.1fx Ping)\nfailures: %d\n",
        nodes, count, p50, p99, p99 <= kGoalP99Us ? "met" : "not met", ping50,
        Percentile(ping_us, 99), p50 / ping50, failures);
  }
  if (breakdown) {
    PrintBreakdown(proctest::ReadFile(trace_path), samples);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace fabric::bench

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();  // as the programs measured
  return fabric::bench::Main(argc, argv);
}
