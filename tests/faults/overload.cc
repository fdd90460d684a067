#include "tests/faults/overload.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/faults/fault_harness.h"
#include "tests/process/process_util.h"

namespace fabric::faults {
namespace {

enum class Outcome { kOk, kShed, kCapacity, kDeadline, kOther };

Outcome Classify(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return Outcome::kOk;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // The fabric is full (PlanGrant): a real answer, not load shedding.
      if (absl::StrContains(s.error_message(), "no free")) {
        return Outcome::kCapacity;
      }
      return Outcome::kShed;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Outcome::kDeadline;
    default:
      return Outcome::kOther;
  }
}

enum Op { kCreate, kDelete, kPing, kList, kOps };
constexpr const char* kOpNames[kOps] = {"create", "delete", "ping", "list"};

// One call's record; kept per client thread, merged at the end.
struct Sample {
  Op op;
  Outcome outcome;
  float ms;
};

struct ClientLog {
  std::vector<Sample> samples;
  std::vector<std::string> other;  // examples, at most a few
  std::vector<std::string> shed;
};

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

void Note(ClientLog* log, Op op, const grpc::Status& s,
          std::chrono::steady_clock::time_point start) {
  const float ms = std::chrono::duration<float, std::milli>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  const Outcome outcome = Classify(s);
  log->samples.push_back({op, outcome, ms});
  const std::string text = absl::StrCat(
      kOpNames[op], ": ", static_cast<int>(s.error_code()), " ",
      s.error_message());
  if (outcome == Outcome::kOther && log->other.size() < 3) {
    log->other.push_back(text);
  }
  if (outcome == Outcome::kShed && log->shed.size() < 3) {
    log->shed.push_back(text);
  }
}

double Percentile(std::vector<float>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = static_cast<size_t>(p * (v.size() - 1));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

// Backoff before attempt `attempt` (1-based) of a retry: 10 ms doubling to
// 320 ms, full jitter. A real sleep on purpose: the load generator's clients
// back off as real clients do.
void Backoff(int attempt, std::mt19937* rng) {
  const int cap_ms = 10 << std::min(attempt - 1, 5);
  std::uniform_int_distribution<int> d(cap_ms / 2, cap_ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(d(*rng)));
}

}  // namespace

absl::StatusOr<OverloadReport> RunOverload(const OverloadOptions& o) {
  if (o.clients <= 0 || o.nodes < 2 || o.channels <= 0 ||
      o.create_weight + o.ping_weight + o.list_weight <= 0) {
    return absl::InvalidArgumentError("clients, nodes, channels and weights");
  }
  proctest::TempDir dir;
  const std::string log_path = dir.path() + "/manager.log";
  // Plaintext on loopback: the subject is load shedding, not transport.
  std::vector<std::string> flags = {"--insecure"};
  flags.insert(flags.end(), o.manager_flags.begin(), o.manager_flags.end());
  proctest::Manager manager =
      proctest::StartManager(dir.path() + "/fabric.db", log_path, flags);
  if (manager.port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "fabric-manager did not start: ", proctest::ReadFile(log_path)));
  }
  const int pid = manager.child.pid();
  const std::string address = absl::StrCat("127.0.0.1:", manager.port);
  std::vector<std::unique_ptr<v1::FabricService::Stub>> stubs;
  for (int c = 0; c < o.channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("fabric.overload.connection", c);  // one connection each
    auto channel = grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args);
    // Every connection is up before the load starts: a connect that fails
    // while the machine is busy (seen under a parallel ctest) would leave a
    // channel in reconnect backoff, and its calls failing at once, for most
    // of a short run; that measures the client, not the manager.
    if (!channel->WaitForConnected(DeadlineIn(absl::Seconds(30)))) {
      return absl::UnavailableError(absl::StrCat(
          "connection ", c, " to fabric-manager at ", address,
          " did not come up within 30 s"));
    }
    stubs.push_back(v1::FabricService::NewStub(channel));
  }
  {
    v1::CreateFabricRequest req;
    req.mutable_spec()->set_name("load");
    req.mutable_spec()->set_topology(v1::RING);
    req.mutable_spec()->set_default_export_size(1ull << 30);
    for (int i = 0; i < o.nodes; ++i)
      req.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    v1::Fabric f;
    grpc::Status s = stubs[0]->CreateFabric(&ctx, req, &f);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("CreateFabric: ", s.error_message()));
    }
  }

  OverloadReport report;
  report.clients = o.clients;
  report.rss_before_kib = ProcessMemory(pid).rss_kib;

  std::atomic<bool> done{false};
  std::atomic<long> rss_peak{report.rss_before_kib};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<double, long>> timeline;  // the sampler's own
  std::thread sampler([&] {
    while (!done.load()) {
      const long rss = ProcessMemory(pid).rss_kib;
      timeline.emplace_back(std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - start)
                                .count(),
                            rss);
      long seen = rss_peak.load();
      while (rss > seen && !rss_peak.compare_exchange_weak(seen, rss)) {
      }
      // Samples RSS every 20 ms of real time: the timeline is the point.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::vector<ClientLog> logs(o.clients);
  const auto end =
      start + std::chrono::microseconds(absl::ToInt64Microseconds(o.duration));
  std::vector<std::thread> clients;
  clients.reserve(o.clients);
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      ClientLog& log = logs[c];
      log.samples.reserve(4096);
      v1::FabricService::Stub* stub = stubs[c % stubs.size()].get();
      std::mt19937 rng(1000 + c);
      const int total = o.create_weight + o.ping_weight + o.list_weight;
      int seq = 0;
      while (std::chrono::steady_clock::now() < end) {
        const int pick = static_cast<int>(rng() % total);
        if (pick < o.create_weight) {
          v1::CreateAllocationRequest req;
          const int from = static_cast<int>(rng() % o.nodes);
          const int to = (from + 1 + static_cast<int>(rng() % (o.nodes - 1))) %
                         o.nodes;
          req.mutable_allocation()->set_borrower(absl::StrCat("n", from));
          req.mutable_allocation()->set_target(absl::StrCat("n", to));
          req.mutable_allocation()->set_size(1 << 20);
          req.mutable_allocation()->set_owner("overload");
          if (o.request_ids) req.set_request_id(absl::StrCat("c", c, "-", seq++));
          v1::Allocation created;
          bool ok = false;
          // A shed or timed-out create is retried with the same id: the
          // manager answers a retry of one that did land with its result.
          for (int attempt = 1; attempt <= 6; ++attempt) {
            grpc::ClientContext ctx;
            ctx.set_deadline(DeadlineIn(o.deadline));
            const auto t = std::chrono::steady_clock::now();
            grpc::Status s = stub->CreateAllocation(&ctx, req, &created);
            Note(&log, kCreate, s, t);
            const Outcome out = Classify(s);
            if (out == Outcome::kOk) ok = true;
            if (out != Outcome::kShed && out != Outcome::kDeadline) break;
            Backoff(attempt, &rng);
          }
          if (!ok) continue;  // anything left over is found by the cleanup
          v1::DeleteAllocationRequest del;
          del.set_name(created.name());
          if (o.request_ids) del.set_request_id(absl::StrCat("c", c, "-", seq++));
          for (int attempt = 1; attempt <= 10; ++attempt) {
            grpc::ClientContext ctx;
            ctx.set_deadline(DeadlineIn(o.deadline));
            v1::Allocation released;
            const auto t = std::chrono::steady_clock::now();
            grpc::Status s = stub->DeleteAllocation(&ctx, del, &released);
            Note(&log, kDelete, s, t);
            const Outcome out = Classify(s);
            if (out != Outcome::kShed && out != Outcome::kDeadline) break;
            Backoff(attempt, &rng);
          }
        } else if (pick < o.create_weight + o.ping_weight) {
          grpc::ClientContext ctx;
          ctx.set_deadline(DeadlineIn(o.deadline));
          v1::PingResponse resp;
          const auto t = std::chrono::steady_clock::now();
          grpc::Status s = stub->Ping(&ctx, v1::PingRequest(), &resp);
          Note(&log, kPing, s, t);
        } else {
          grpc::ClientContext ctx;
          ctx.set_deadline(DeadlineIn(o.deadline));
          v1::ListAllocationsRequest req;
          req.set_page_size(100);
          v1::ListAllocationsResponse resp;
          const auto t = std::chrono::steady_clock::now();
          grpc::Status s = stub->ListAllocations(&ctx, req, &resp);
          Note(&log, kList, s, t);
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  report.seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  done = true;
  sampler.join();
  report.rss_peak_kib = rss_peak.load();
  report.rss_timeline = std::move(timeline);
  {
    // Slope over the second half of the load (least squares).
    const double half = absl::ToDoubleSeconds(o.duration) / 2;
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& [t, kib] : report.rss_timeline) {
      if (t < half || kib < 0) continue;
      n += 1;
      sx += t;
      sy += kib;
      sxx += t * t;
      sxy += t * kib;
    }
    const double den = n * sxx - sx * sx;
    if (n >= 2 && den > 0) {
      report.rss_growth_kib_per_s = (n * sxy - sx * sy) / den;
    }
  }

  // What is left (a create whose every retry timed out may still have
  // landed) is released now, with patience.
  int code = 0;
  report.manager_alive = !manager.child.TryWait(&code);
  if (report.manager_alive) {
    for (int round = 0;; ++round) {
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(absl::Seconds(30)));
      v1::ListAllocationsRequest req;
      req.set_page_size(1000);
      v1::ListAllocationsResponse resp;
      const bool listed = stubs[0]->ListAllocations(&ctx, req, &resp).ok();
      if (listed) report.leftover_allocations = resp.allocations_size();
      if ((listed && resp.allocations_size() == 0) || round == 5) break;
      for (const auto& a : resp.allocations()) {
        grpc::ClientContext dctx;
        dctx.set_deadline(DeadlineIn(absl::Seconds(10)));
        v1::DeleteAllocationRequest del;
        del.set_name(a.name());
        v1::Allocation out;
        (void)stubs[0]->DeleteAllocation(&dctx, del, &out);
      }
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
    v1::PingResponse resp;
    report.ping_after_ok = stubs[0]->Ping(&ctx, v1::PingRequest(), &resp).ok();
    const Memory after = ProcessMemory(pid);
    report.rss_after_kib = after.rss_kib;
    report.hwm_kib = after.hwm_kib;
    report.manager_alive = !manager.child.TryWait(&code);
  }

  std::vector<std::vector<float>> latencies(kOps + 1);
  std::vector<OpReport> ops(kOps + 1);
  std::set<std::string> shed_seen;
  for (const ClientLog& log : logs) {
    for (const Sample& s : log.samples) {
      for (int k : {static_cast<int>(s.op), static_cast<int>(kOps)}) {
        OpReport& r = ops[k];
        ++r.requests;
        switch (s.outcome) {
          case Outcome::kOk: ++r.ok; break;
          case Outcome::kShed: ++r.shed; break;
          case Outcome::kCapacity: ++r.capacity; break;
          case Outcome::kDeadline: ++r.deadline; break;
          case Outcome::kOther: ++r.other; break;
        }
        latencies[k].push_back(s.ms);
      }
    }
    for (const auto& e : log.other) {
      if (report.other_examples.size() < 10) report.other_examples.push_back(e);
    }
    for (const auto& e : log.shed) {
      // One example per distinct message (request ids differ by nothing).
      if (shed_seen.insert(e.substr(0, 60)).second) {
        report.shed_examples.push_back(e);
      }
    }
  }
  for (int k = 0; k <= kOps; ++k) {
    ops[k].p50_ms = Percentile(latencies[k], 0.50);
    ops[k].p99_ms = Percentile(latencies[k], 0.99);
    ops[k].max_ms = latencies[k].empty()
                        ? 0
                        : *std::max_element(latencies[k].begin(),
                                            latencies[k].end());
    report.ops[k == kOps ? "all" : kOpNames[k]] = ops[k];
  }
  return report;
}

std::string FormatTable(const OverloadReport& r) {
  std::string out = absl::StrFormat(
      "%d clients for %.1f s\n"
      "%-7s %9s %9s %9s %9s %9s %6s %9s %9s %9s\n",
      r.clients, r.seconds, "op", "requests", "OK", "EXHAUST", "(full)",
      "DEADLINE", "other", "p50 ms", "p99 ms", "max ms");
  for (const char* op : {"create", "delete", "ping", "list", "all"}) {
    auto it = r.ops.find(op);
    if (it == r.ops.end()) continue;
    const OpReport& o = it->second;
    absl::StrAppendFormat(&out, "%-7s %9d %9d %9d %9d %9d %6d %9.1f %9.1f %9.1f\n",
                          op, o.requests, o.ok, o.shed, o.capacity, o.deadline,
                          o.other, o.p50_ms, o.p99_ms, o.max_ms);
  }
  absl::StrAppendFormat(
      &out,
      "manager VmRSS: before %.1f MiB, peak sampled %.1f MiB, after %.1f "
      "MiB; VmHWM %.1f MiB\n"
      "manager alive: %s, Ping after: %s, allocations left after cleanup: "
      "%d\n",
      r.rss_before_kib / 1024.0, r.rss_peak_kib / 1024.0,
      r.rss_after_kib / 1024.0, r.hwm_kib / 1024.0,
      r.manager_alive ? "yes" : "NO", r.ping_after_ok ? "OK" : "FAILED",
      r.leftover_allocations);
  if (!r.rss_timeline.empty()) {
    // VmRSS at each tenth of the load, and its trend in the second half.
    std::vector<std::string> points;
    const double span = r.rss_timeline.back().first;
    size_t i = 0;
    for (int k = 1; k <= 10; ++k) {
      while (i + 1 < r.rss_timeline.size() &&
             r.rss_timeline[i].first < span * k / 10) {
        ++i;
      }
      points.push_back(absl::StrFormat("%.0fs %.1f", r.rss_timeline[i].first,
                                       r.rss_timeline[i].second / 1024.0));
    }
    absl::StrAppendFormat(&out,
                          "manager VmRSS (MiB) over the load: %s\n"
                          "manager VmRSS growth in the second half: %.1f "
                          "KiB/s (%.2f MiB/s)\n",
                          absl::StrJoin(points, ", "), r.rss_growth_kib_per_s,
                          r.rss_growth_kib_per_s / 1024.0);
  }
  for (const auto& e : r.shed_examples) absl::StrAppend(&out, "shed: ", e, "\n");
  for (const auto& e : r.other_examples) {
    absl::StrAppend(&out, "UNEXPECTED: ", e, "\n");
  }
  return out;
}

std::string FormatJson(const OverloadReport& r) {
  std::vector<std::string> ops;
  for (const auto& [name, o] : r.ops) {
    ops.push_back(absl::StrFormat(
        "\"%s\": {\"requests\": %d, \"ok\": %d, \"resource_exhausted\": %d, "
        "\"capacity\": %d, \"deadline_exceeded\": %d, \"other\": %d, "
        "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f}",
        name, o.requests, o.ok, o.shed, o.capacity, o.deadline, o.other,
        o.p50_ms, o.p99_ms, o.max_ms));
  }
  return absl::StrFormat(
      "{\"clients\": %d, \"seconds\": %.2f, \"ops\": {%s}, "
      "\"rss_before_kib\": %d, \"rss_peak_kib\": %d, \"hwm_kib\": %d, "
      "\"rss_after_kib\": %d, \"rss_growth_kib_per_s\": %.1f, "
      "\"manager_alive\": %s, \"ping_after_ok\": %s, "
      "\"leftover_allocations\": %d}\n",
      r.clients, r.seconds, absl::StrJoin(ops, ", "), r.rss_before_kib,
      r.rss_peak_kib, r.hwm_kib, r.rss_after_kib, r.rss_growth_kib_per_s,
      r.manager_alive ? "true" : "false", r.ping_after_ok ? "true" : "false",
      r.leftover_allocations);
}

}  // namespace fabric::faults
