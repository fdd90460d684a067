// fabric-rest-bench: the REST gateway against gRPC on the same manager, in
// one run (issue 16, section 4).
//
// One fabric-manager process from --bin-dir, with mutual TLS (a CA and
// certificates made by deploy/pki.sh in a temporary directory, TestPki),
// its gRPC listener on 127.0.0.1:0 and its REST listener on
// `--http-listen 127.0.0.1:0`. The clients run in this process as one admin
// user (a `user` certificate), each client thread with its own connection:
// a gRPC channel of its own (no shared subchannel), or a keep-alive
// httplib::SSLClient. Every connection is established (handshake included)
// before anything is measured.
//
// For each level C of --clients (default 1,8,32), --rounds times, each
// transport in turn (the order alternates between rounds, so drift on a
// shared machine hits both alike):
//   - ping: C clients call Ping (gRPC) or GET /v1/ping (REST): the no-op
//     baseline, what the transport alone costs;
//   - alloc: C clients loop CreateAllocation + DeleteAllocation (gRPC) or
//     POST /v1/allocations {borrower,target,size} + DELETE /v1/allocations/..
//     (REST), each mutation with a fresh request id (as fabricctl does).
//     Client i borrows on node n(2i) from n(2i+1), so clients never compete
//     for windows. Every OK is durable in the manager's SQLite store.
// A run lasts --duration after a 0.3 s warm-up whose calls are not counted;
// with --ops N instead, each client makes ceil(N / C) rounds and all of
// them count (no warm-up): the CI smoke run.
//
// Throughput counts calls per second (an allocate and a release are two);
// latencies are per call, in microseconds. Each row shows, per transport,
// the medians over rounds of throughput, p50 and p99, and the REST/gRPC
// p50 ratio. The goal: REST p50 at most 1.5 x gRPC p50.
//
// Exits 1 if any call failed or an allocation was left behind, 2 on bad
// flags or setup failure. Missing the goal is reported, not an error.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/mutex_mode.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "common/status_macros.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "tests/bench/bench_util.h"
#include "tests/process/process_util.h"

namespace fabric::bench {
namespace {

using json = nlohmann::json;

constexpr absl::Duration kWarmup = absl::Milliseconds(300);
constexpr uint64_t kAllocationSize = 1ull << 20;  // 1 MiB
constexpr double kGoalP50Ratio = 1.5;             // REST / gRPC
constexpr int kMinNodes = 16;
constexpr int kCallTimeoutSeconds = 30;
// The cost of metrics: the allocate+release load with and without a
// Prometheus-like scraper reading /metrics at kScrapeInterval.
constexpr absl::Duration kScrapeInterval = absl::Seconds(1);
constexpr double kGoalMetricsCost = 0.03;  // throughput lost to scraping

struct Flags {
  std::vector<int> clients = {1, 8, 32};
  absl::Duration duration = absl::Seconds(1);
  int rounds = 3;
  int ops = 0;  // > 0: a fixed number of rounds instead of --duration
  std::string bin_dir;
  // The metrics-cost runs: their length and concurrency (0: skipped).
  absl::Duration metrics_duration = absl::Seconds(5);
  int metrics_clients = 8;
};

enum class Phase { kPing, kAlloc };
const char* PhaseName(Phase p) { return p == Phase::kPing ? "ping" : "alloc"; }

enum class Transport { kGrpc, kRest };

std::string NodeName(int i) { return absl::StrCat("n", i); }

// One client's connections: a gRPC channel and an HTTPS client, each its
// own connection, and the pair of nodes it allocates between. Used by one
// thread at a time.
struct BenchClient {
  std::unique_ptr<v1::FabricService::Stub> stub;
  std::unique_ptr<httplib::SSLClient> http;
  std::string borrower;  // "nodes/n.."
  std::string target;
};

// Where the manager listens and who the clients are.
struct Endpoint {
  std::string grpc_address;
  int rest_port = 0;
  security::TlsConfig user;
};

std::unique_ptr<grpc::ClientContext> NewContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(kCallTimeoutSeconds));
  return ctx;
}

std::unique_ptr<httplib::SSLClient> NewHttpClient(const Endpoint& e) {
  auto c = std::make_unique<httplib::SSLClient>(
      "127.0.0.1", e.rest_port, e.user.cert_file, e.user.key_file);
  c->set_ca_cert_path(e.user.ca_file.c_str());
  c->enable_server_certificate_verification(true);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_read_timeout(kCallTimeoutSeconds, 0);
  c->set_write_timeout(kCallTimeoutSeconds, 0);
  return c;
}

// A REST call's outcome: the status and body, or a transport error.
absl::StatusOr<json> Call(httplib::SSLClient& c, const std::string& method,
                          const std::string& path, const json& body = {}) {
  httplib::Result res =
      method == "GET"    ? c.Get(path.c_str())
      : method == "POST" ? c.Post(path.c_str(), body.dump(), "application/json")
                         : c.Delete(path.c_str());
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat(method, " ", path, ": ", httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    return absl::UnknownError(absl::StrCat(method, " ", path, ": HTTP ",
                                           res->status, ": ", res->body));
  }
  json out = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    return absl::DataLossError(
        absl::StrCat(method, " ", path, ": not JSON: ", res->body));
  }
  return out;
}

// Connects `n` clients to `e`: gRPC channels connected, and each HTTPS
// client past its handshake (one GET /v1/ping).
absl::StatusOr<std::vector<BenchClient>> ConnectClients(const Endpoint& e,
                                                        int n) {
  auto credentials = security::ChannelCredentials(
      e.user, security::PeerRequirement::AnyManager());
  std::vector<BenchClient> clients(n);
  for (int i = 0; i < n; ++i) {
    BenchClient& c = clients[i];
    // The local subchannel pool keeps equal channels off one connection.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("fabric_rest_bench.client", i);
    auto channel = grpc::CreateCustomChannel(e.grpc_address, credentials, args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(10))) {
      return absl::UnavailableError(
          absl::StrCat("client ", i, ": cannot connect to ", e.grpc_address));
    }
    c.stub = v1::FabricService::NewStub(channel);
    c.http = NewHttpClient(e);
    if (absl::StatusOr<json> pong = Call(*c.http, "GET", "/v1/ping");
        !pong.ok()) {
      return absl::UnavailableError(
          absl::StrCat("client ", i, ": ", pong.status().message()));
    }
    c.borrower = absl::StrCat("nodes/", NodeName(2 * i));
    c.target = absl::StrCat("nodes/", NodeName(2 * i + 1));
  }
  return clients;
}

// One run's result.
struct RunResult {
  double ops_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Runs `round(client, record)` on the first `n` clients, one thread each:
// for flags.duration after the warm-up, or flags.ops rounds in all.
// `record(t0, t1)` counts one call that started at t0 and ended at t1.
RunResult RunClients(
    std::vector<BenchClient>& clients, int n, const Flags& flags,
    const std::function<
        void(BenchClient&,
             const std::function<void(Clock::time_point, Clock::time_point)>&)>&
        round) {
  const bool by_ops = flags.ops > 0;
  const int rounds_each = by_ops ? (flags.ops + n - 1) / n : 0;
  const auto start = Clock::now();
  const auto begin =
      by_ops ? start : start + absl::ToChronoNanoseconds(kWarmup);
  const auto end = begin + absl::ToChronoNanoseconds(flags.duration);
  std::vector<std::vector<double>> samples(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::vector<double>& mine = samples[i];
      const std::function<void(Clock::time_point, Clock::time_point)> record =
          [&](Clock::time_point t0, Clock::time_point t1) {
            if (by_ops || (t1 >= begin && t1 < end))
              mine.push_back(Micros(t1 - t0));
          };
      for (int r = 0; by_ops ? r < rounds_each : Clock::now() < end; ++r) {
        round(clients[i], record);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const auto finish = Clock::now();
  std::vector<double> all;
  for (const std::vector<double>& s : samples) {
    all.insert(all.end(), s.begin(), s.end());
  }
  const double seconds = by_ops ? Micros(finish - start) / 1e6
                                : absl::ToDoubleSeconds(flags.duration);
  return {.ops_per_s = seconds > 0 ? all.size() / seconds : 0,
          .p50_us = Percentile(all, 50),
          .p99_us = Percentile(all, 99)};
}

// Mutation request ids, unique over the run.
std::string NextRequestId() {
  static std::atomic<uint64_t> seq{0};
  return absl::StrCat("rest-bench-", seq.fetch_add(1));
}

RunResult RunGrpc(Phase phase, std::vector<BenchClient>& clients, int n,
                  const Flags& flags, ErrorLog& errors) {
  return RunClients(clients, n, flags, [&](BenchClient& c, const auto& record) {
    if (phase == Phase::kPing) {
      v1::PingResponse pong;
      auto ctx = NewContext();
      const auto t0 = Clock::now();
      grpc::Status s = c.stub->Ping(ctx.get(), v1::PingRequest(), &pong);
      const auto t1 = Clock::now();
      if (!s.ok()) return errors.AddMessage(absl::StrCat("Ping: ", s.error_message()));
      return record(t0, t1);
    }
    v1::CreateAllocationRequest create;
    create.mutable_allocation()->set_borrower(c.borrower);
    create.mutable_allocation()->set_target(c.target);
    create.mutable_allocation()->set_size(kAllocationSize);
    create.set_request_id(NextRequestId());
    v1::Allocation created;
    auto ctx = NewContext();
    auto t0 = Clock::now();
    grpc::Status s = c.stub->CreateAllocation(ctx.get(), create, &created);
    auto t1 = Clock::now();
    if (!s.ok()) {
      return errors.AddMessage(absl::StrCat("CreateAllocation: ", s.error_message()));
    }
    record(t0, t1);
    v1::DeleteAllocationRequest del;
    del.set_name(created.name());
    del.set_request_id(NextRequestId());
    v1::Allocation released;
    ctx = NewContext();
    t0 = Clock::now();
    s = c.stub->DeleteAllocation(ctx.get(), del, &released);
    t1 = Clock::now();
    if (!s.ok()) {
      return errors.AddMessage(absl::StrCat("DeleteAllocation ", created.name(), ": ",
                                     s.error_message()));
    }
    record(t0, t1);
  });
}

RunResult RunRest(Phase phase, std::vector<BenchClient>& clients, int n,
                  const Flags& flags, ErrorLog& errors) {
  // The server closes a connection idle for 5 s (httplib's keep-alive
  // timeout), and httplib's client does not notice before it sends: open
  // each one afresh, handshake included, before the run.
  for (int i = 0; i < n; ++i) {
    clients[i].http->stop();
    if (absl::StatusOr<json> pong = Call(*clients[i].http, "GET", "/v1/ping");
        !pong.ok()) {
      errors.AddMessage(absl::StrCat("reconnect: ", pong.status().message()));
    }
  }
  return RunClients(clients, n, flags, [&](BenchClient& c, const auto& record) {
    if (phase == Phase::kPing) {
      const auto t0 = Clock::now();
      absl::StatusOr<json> pong = Call(*c.http, "GET", "/v1/ping");
      const auto t1 = Clock::now();
      if (!pong.ok()) return errors.AddMessage(std::string(pong.status().message()));
      return record(t0, t1);
    }
    const json spec = {{"borrower", c.borrower},
                       {"target", c.target},
                       {"size", absl::StrCat(kAllocationSize)}};
    auto t0 = Clock::now();
    absl::StatusOr<json> created = Call(
        *c.http, "POST",
        absl::StrCat("/v1/allocations?request_id=", NextRequestId()), spec);
    auto t1 = Clock::now();
    if (!created.ok())
      return errors.AddMessage(std::string(created.status().message()));
    record(t0, t1);
    const std::string name = created->value("name", "");
    t0 = Clock::now();
    absl::StatusOr<json> released =
        Call(*c.http, "DELETE",
             absl::StrCat("/v1/", name, "?request_id=", NextRequestId()));
    t1 = Clock::now();
    if (!released.ok()) {
      return errors.AddMessage(std::string(released.status().message()));
    }
    record(t0, t1);
  });
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One table row: one phase at one level, the medians over rounds.
struct Row {
  Phase phase = Phase::kPing;
  int clients = 0;
  RunResult grpc, rest;
  double P50Ratio() const {
    return grpc.p50_us > 0 ? rest.p50_us / grpc.p50_us : 0;
  }
};

RunResult MedianOf(const std::vector<RunResult>& runs) {
  std::vector<double> ops, p50, p99;
  for (const RunResult& r : runs) {
    ops.push_back(r.ops_per_s);
    p50.push_back(r.p50_us);
    p99.push_back(r.p99_us);
  }
  return {Median(ops), Median(p50), Median(p99)};
}

// Declares a ring of `nodes` nodes over REST (POST /v1/fabrics).
absl::Status CreateFabric(httplib::SSLClient& admin, int nodes) {
  json spec = {{"name", "bench"},
               {"topology", "RING"},
               {"defaultProfile", "sim"},
               {"nodes", json::array()}};
  for (int i = 0; i < nodes; ++i) {
    spec["nodes"].push_back({{"name", NodeName(i)}});
  }
  return Call(admin, "POST", "/v1/fabrics?request_id=rest-bench-fabric", spec)
      .status();
}

// The allocations the manager still lists, over REST (following pages).
absl::StatusOr<int> CountAllocations(httplib::SSLClient& admin) {
  int n = 0;
  std::string token;
  do {
    ASSIGN_OR_RETURN(
        json page,
        Call(admin, "GET",
             absl::StrCat("/v1/allocations?pageSize=1000&pageToken=", token)));
    n += page.value("allocations", json::array()).size();
    token = page.value("nextPageToken", "");
  } while (!token.empty());
  return n;
}

// Starts the manager (mTLS, REST on port 0) and fills in `e`'s addresses.
absl::StatusOr<proctest::Manager> StartManager(const Flags& flags,
                                               security::TestPki& pki,
                                               const std::string& dir,
                                               Endpoint& e) {
  const security::TlsConfig tls = pki.Issue("manager", "m1");
  const std::string log = dir + "/manager.log";
  proctest::Manager m = proctest::StartManagerAt(
      flags.bin_dir + "/fabric-manager", 0, dir + "/manager.db", log,
      {"--tls-cert", tls.cert_file, "--tls-key", tls.key_file, "--tls-ca",
       tls.ca_file, "--http-listen", "127.0.0.1:0"});
  // "fabric-manager: REST on 127.0.0.1:PORT"
  const std::string kRestOn = "fabric-manager: REST on 127.0.0.1:";
  proctest::WaitFor(
      [&] {
        const std::string text = proctest::ReadFile(log);
        const size_t at = text.find(kRestOn);
        if (at == std::string::npos) return false;
        const std::string rest = text.substr(at + kRestOn.size());
        return absl::SimpleAtoi(rest.substr(0, rest.find('\n')), &e.rest_port);
      },
      absl::Seconds(10));
  if (m.port <= 0 || e.rest_port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("fabric-manager did not start; its log ", log, ":\n",
                     proctest::ReadFile(log)));
  }
  e.grpc_address = absl::StrCat("127.0.0.1:", m.port);
  return m;
}

// The metrics-cost comparison (medians over rounds).
struct MetricsRow {
  RunResult quiet;    // nobody scrapes
  RunResult scraped;  // /metrics read every kScrapeInterval
  int scrapes = 0;    // over every scraped run
  double Cost() const {
    return quiet.ops_per_s > 0 ? 1 - scraped.ops_per_s / quiet.ops_per_s : 0;
  }
};

// Reads /metrics every kScrapeInterval until stopped, from the start; each
// read must be 200 with the manager's families. Counts the reads.
class Scraper {
 public:
  Scraper(const Endpoint& e, ErrorLog& errors)
      : client_(NewHttpClient(e)), errors_(errors) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Scraper() { Stop(); }
  int Stop() {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
    return scrapes_;
  }

 private:
  void Loop() {
    absl::MutexLock l(&mu_);
    while (!stop_) {
      mu_.Unlock();
      httplib::Result res = client_->Get("/metrics");
      if (!res || res->status != 200 ||
          res->body.find("fabric_manager_rpcs_total") == std::string::npos) {
        errors_.AddMessage(absl::StrCat("GET /metrics: ",
                                 res ? absl::StrCat("HTTP ", res->status)
                                     : httplib::to_string(res.error())));
      } else {
        ++scrapes_;
      }
      mu_.Lock();
      mu_.AwaitWithTimeout(absl::Condition(&stop_), kScrapeInterval);
    }
  }

  std::unique_ptr<httplib::SSLClient> client_;
  ErrorLog& errors_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int scrapes_ = 0;  // the scraper thread's, read after join
  std::thread thread_;
};

struct Report {
  std::vector<Row> rows;
  uint64_t errors = 0;
  std::vector<std::string> error_samples;
  int allocations_left = 0;
  MetricsRow metrics;
  int metrics_clients = 0;  // 0: not measured
};

absl::Status Run(const Flags& flags, Report& report) {
  ASSIGN_OR_RETURN(std::unique_ptr<security::TestPki> pki,
                   security::TestPki::Create());
  proctest::TempDir dir;
  Endpoint e;
  e.user = pki->Issue("user", "bench", "admin");
  ASSIGN_OR_RETURN(proctest::Manager manager,
                   StartManager(flags, *pki, dir.path(), e));
  const int max_clients = *absl::c_max_element(flags.clients);
  std::unique_ptr<httplib::SSLClient> admin = NewHttpClient(e);
  RETURN_IF_ERROR(CreateFabric(*admin, std::max(kMinNodes, 2 * max_clients)));
  ASSIGN_OR_RETURN(std::vector<BenchClient> clients,
                   ConnectClients(e, max_clients));

  ErrorLog errors;
  for (int n : flags.clients) {
    for (Phase phase : {Phase::kPing, Phase::kAlloc}) {
      std::vector<RunResult> grpc_runs, rest_runs;
      for (int round = 0; round < flags.rounds; ++round) {
        for (int k = 0; k < 2; ++k) {
          // Alternate who goes first.
          if ((round + k) % 2 == 0) {
            grpc_runs.push_back(RunGrpc(phase, clients, n, flags, errors));
          } else {
            rest_runs.push_back(RunRest(phase, clients, n, flags, errors));
          }
        }
      }
      report.rows.push_back({.phase = phase,
                             .clients = n,
                             .grpc = MedianOf(grpc_runs),
                             .rest = MedianOf(rest_runs)});
    }
  }
  if (flags.metrics_clients > 0) {
    Flags m = flags;
    m.duration = flags.metrics_duration;
    const int n = std::min(flags.metrics_clients, max_clients);
    std::vector<RunResult> quiet, scraped;
    for (int round = 0; round < flags.rounds; ++round) {
      for (int k = 0; k < 2; ++k) {
        if ((round + k) % 2 == 0) {
          quiet.push_back(RunGrpc(Phase::kAlloc, clients, n, m, errors));
        } else {
          Scraper scraper(e, errors);
          scraped.push_back(RunGrpc(Phase::kAlloc, clients, n, m, errors));
          report.metrics.scrapes += scraper.Stop();
        }
      }
    }
    report.metrics.quiet = MedianOf(quiet);
    report.metrics.scraped = MedianOf(scraped);
    report.metrics_clients = n;
  }
  report.errors = errors.count();
  report.error_samples = errors.shown();
  // A fresh connection: the server has closed the idle one by now.
  ASSIGN_OR_RETURN(report.allocations_left,
                   CountAllocations(*NewHttpClient(e)));
  return absl::OkStatus();
}

void PrintReport(const Flags& flags, const Report& r) {
  absl::PrintF(
      "fabric-rest-bench: REST against gRPC on one fabric-manager (mutual "
      "TLS), %s, %d round(s), medians over rounds\n",
      flags.ops > 0
          ? absl::StrCat(flags.ops, " calls per run")
          : absl::StrCat(absl::FormatDuration(flags.duration), " per run"),
      flags.rounds);
  absl::PrintF("%-6s %7s | %10s %9s %9s | %10s %9s %9s | %9s\n", "op",
               "clients", "gRPC op/s", "p50 us", "p99 us", "REST op/s",
               "p50 us", "p99 us", "p50 REST/gRPC");
  bool goal_met = true;
  for (const Row& row : r.rows) {
    absl::PrintF("%-6s %7d | %10.0f %9.0f %9.0f | %10.0f %9.0f %9.0f | %9.2f\n",
                 PhaseName(row.phase), row.clients, row.grpc.ops_per_s,
                 row.grpc.p50_us, row.grpc.p99_us, row.rest.ops_per_s,
                 row.rest.p50_us, row.rest.p99_us, row.P50Ratio());
    goal_met = goal_met && row.P50Ratio() <= kGoalP50Ratio;
  }
  absl::PrintF("goal met (REST p50 <= %.1fx gRPC p50 on every row): %s\n",
               kGoalP50Ratio, goal_met ? "yes" : "no");
  if (r.metrics_clients > 0) {
    absl::PrintF(
        "metrics cost: gRPC allocate+release at %d clients, %s per run: "
        "%.0f op/s quiet, %.0f op/s with /metrics read every %s (%d reads): "
        "%.1f%% lost (goal < %.0f%%)\n",
        r.metrics_clients,
        flags.ops > 0 ? absl::StrCat(flags.ops, " calls")
                      : absl::FormatDuration(flags.metrics_duration),
        r.metrics.quiet.ops_per_s, r.metrics.scraped.ops_per_s,
        absl::FormatDuration(kScrapeInterval), r.metrics.scrapes,
        100 * r.metrics.Cost(), 100 * kGoalMetricsCost);
  }
  absl::PrintF("errors: %d; allocations left: %d\n", r.errors,
               r.allocations_left);
  for (const std::string& s : r.error_samples) absl::PrintF("  %s\n", s);
}

int Main(int argc, char** argv) {
  Flags flags;
  flags.bin_dir = proctest::ExecutableDir();
  std::string clients = "1,8,32";
  double duration_s = absl::ToDoubleSeconds(flags.duration);
  bool smoke = false;
  CLI::App app{
      "REST against gRPC on one fabric-manager: Ping and "
      "allocate+release, throughput, p50 and p99."};
  app.add_option("--clients", clients,
                 "Comma-separated concurrency levels (default 1,8,32)");
  app.add_option("--duration", duration_s, "Seconds per run (default 1)");
  app.add_option("--rounds", flags.rounds,
                 "Runs per transport, phase and level (default 3)");
  app.add_option("--ops", flags.ops,
                 "Instead of --duration: calls' rounds per run, all counted");
  app.add_flag("--smoke", smoke,
               "A short run for CI: --ops 32 --rounds 1 (a few hundred calls)");
  double metrics_s = absl::ToDoubleSeconds(flags.metrics_duration);
  app.add_option("--metrics-duration", metrics_s,
                 "Seconds per metrics-cost run (default 5)");
  app.add_option("--metrics-clients", flags.metrics_clients,
                 "Clients of the metrics-cost runs (default 8; 0 skips them)");
  app.add_option("--bin-dir", flags.bin_dir,
                 "The directory of fabric-manager (default: this binary's)");
  CLI11_PARSE(app, argc, argv);
  if (smoke) {
    flags.ops = 32;
    flags.rounds = 1;
  }
  flags.clients.clear();
  for (absl::string_view c : absl::StrSplit(clients, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1 || n > 256) {
      absl::FPrintF(stderr,
                    "fabric-rest-bench: --clients: \"%s\" is not a count in "
                    "1..256\n",
                    c);
      return 2;
    }
    flags.clients.push_back(n);
  }
  if (duration_s <= 0 || flags.rounds < 1 || flags.ops < 0) {
    absl::FPrintF(stderr,
                  "fabric-rest-bench: --duration must be > 0, --rounds >= 1 "
                  "and --ops >= 0\n");
    return 2;
  }
  flags.duration = absl::Seconds(duration_s);
  flags.metrics_duration = absl::Seconds(metrics_s);
  if (metrics_s <= 0 || flags.metrics_clients < 0) {
    absl::FPrintF(stderr,
                  "fabric-rest-bench: --metrics-duration must be > 0 and "
                  "--metrics-clients >= 0\n");
    return 2;
  }

  // An HTTPS client writing to a keep-alive connection the server has just
  // closed gets EPIPE (and retries), not a signal.
  signal(SIGPIPE, SIG_IGN);
  Report report;
  if (absl::Status s = Run(flags, report); !s.ok()) {
    absl::FPrintF(stderr, "fabric-rest-bench: %s\n", s.ToString());
    return 2;
  }
  PrintReport(flags, report);
  return report.errors > 0 || report.allocations_left > 0 ? 1 : 0;
}

}  // namespace
}  // namespace fabric::bench

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();  // as the programs measured
  return fabric::bench::Main(argc, argv);
}
