// fabric-stream-bench: what open streams cost the manager process.
//
// One process runs an in-memory store, the FabricManager and the gRPC server
// on 127.0.0.1:0, and opens --streams streams against it through gRPC's
// callback client API (no client thread per stream). Once every stream is
// open, it reads the process's thread count and resident memory
// (/proc/self/status: Threads, VmRSS). Kinds (--kinds):
//   watch:  Watch streams with initial_state; a stream is open once it has
//           read its SYNCED marker.
//   config: StreamConfig streams of as many registered agents (nodes in no
//           fabric, one session each); a stream is open once it has read
//           its first configuration.
// Then, for each kind, one change (a new fabric: an event; for config, a
// fabric of every agent's node, which changes each one's configuration)
// and how long until every stream has read it ("fan-out"), and
// every client cancels and how long until every stream has ended on both
// sides ("close").
//
// Then, for config (--load-clients), allocate+release by a few clients on
// pairs of the agents' nodes, with the streams open and again after they
// closed: what connected agents cost a commit. A commit changes two nodes;
// only their streams should wake.
//
// The figures are for the whole process: the clients' side of every stream
// is in them too. The baseline is the server started and one call served;
// the increments (+) are from just before the streams of that kind opened.
// With --connect and --pid, the streams go to a running fabric-manager
// (started with a fresh --db) and the figures are that process's alone.
//
// Exits 1 if a stream fails or a deadline passes; 2 on bad flags or setup
// failure.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/mutex_mode.h"
#include "common/status_macros.h"
#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "server/service/manager.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::bench {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(60);

// The process's thread count and resident set, from /proc/self/status.
struct Usage {
  int64_t threads = 0;
  int64_t rss_kib = 0;
};

// The process measured: "self" or a pid.
std::string g_measured = "self";

Usage ReadUsage() {
  Usage u;
  std::ifstream in("/proc/" + g_measured + "/status");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t:"), absl::SkipEmpty());
    if (f.size() < 2) continue;
    if (f[0] == "Threads") (void)absl::SimpleAtoi(f[1], &u.threads);
    if (f[0] == "VmRSS") (void)absl::SimpleAtoi(f[1], &u.rss_kib);
  }
  return u;
}

// How far the streams of one kind got. Thread-safe.
class Tally {
 public:
  // A stream read its n-th message.
  void Read(int n) {
    absl::MutexLock l(&mu_);
    if (n <= kLevels) ++reached_[n - 1];
  }
  void Ended(const grpc::Status& s) {
    absl::MutexLock l(&mu_);
    ++ended_;
    if (s.error_code() != grpc::StatusCode::CANCELLED && first_error_.ok()) {
      first_error_ = s;
    }
  }
  // Waits until `count` streams have read `n` messages each (n <= 2).
  bool AwaitRead(int n, int count) {
    absl::MutexLock l(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return reached_[n - 1] >= count || ended_ > 0;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), kDeadline) &&
           reached_[n - 1] >= count;
  }
  bool AwaitEnded(int count) {
    absl::MutexLock l(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ended_ >= count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), kDeadline);
  }
  grpc::Status first_error() const {
    absl::MutexLock l(&mu_);
    return first_error_;
  }

 private:
  static constexpr int kLevels = 2;
  mutable absl::Mutex mu_;
  int reached_[kLevels] ABSL_GUARDED_BY(mu_) = {0, 0};
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status first_error_ ABSL_GUARDED_BY(mu_);
};

// The client side of one server stream: reads until the stream ends.
template <typename Response>
class Reader final : public grpc::ClientReadReactor<Response> {
 public:
  explicit Reader(Tally* tally) : tally_(tally) {}
  grpc::ClientContext* context() { return &ctx_; }
  void Start() {
    this->StartRead(&message_);
    this->StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    tally_->Read(++read_);
    this->StartRead(&message_);
  }
  void OnDone(const grpc::Status& s) override { tally_->Ended(s); }

 private:
  Tally* const tally_;
  grpc::ClientContext ctx_;
  Response message_;
  int read_ = 0;  // only OnReadDone touches it, one at a time
};

// Allocate+release throughput of a load (RunAllocLoad).
struct LoadResult {
  double rps = 0;  // each allocate and each release counts
  int64_t rpcs = 0;
};

// Allocate+release of 1 MiB by `clients` threads for `duration`, client i
// lending from node a{2i+1} to a{2i} (a pair of neighbours of the "cfan"
// ring, one per client). Errors: the first failed call.
absl::StatusOr<LoadResult> RunAllocLoad(v1::FabricService::Stub* stub,
                                        int clients, absl::Duration duration) {
  std::atomic<int64_t> rpcs{0};
  absl::Mutex mu;
  absl::Status first_error;
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      while (absl::Now() < end) {
        v1::CreateAllocationRequest create;
        create.mutable_allocation()->set_borrower(absl::StrCat("a", 2 * i));
        create.mutable_allocation()->set_target(absl::StrCat("a", 2 * i + 1));
        create.mutable_allocation()->set_size(uint64_t{1} << 20);
        v1::Allocation created;
        grpc::ClientContext ctx;
        grpc::Status s = stub->CreateAllocation(&ctx, create, &created);
        if (s.ok()) {
          v1::DeleteAllocationRequest del;
          del.set_name(created.name());
          v1::Allocation released;
          grpc::ClientContext dctx;
          s = stub->DeleteAllocation(&dctx, del, &released);
        }
        if (!s.ok()) {
          absl::MutexLock l(&mu);
          if (first_error.ok()) {
            first_error = absl::InternalError("allocate+release: " +
                                              s.error_message());
          }
          return;
        }
        rpcs += 2;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (!first_error.ok()) return first_error;
  LoadResult r;
  r.rpcs = rpcs.load();
  r.rps = r.rpcs / absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

struct KindResult {
  std::string kind;
  Usage before;  // when its streams start opening
  Usage open;
  double open_s = 0;
  double fanout_ms = 0;
  double close_ms = 0;
  Usage closed;
  // config, with --load-clients: allocate+release with the streams open,
  // and again once they are closed (the baseline).
  std::optional<LoadResult> load_open;
  std::optional<LoadResult> load_closed;
};

double MillisSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

absl::Status CreateFabric(v1::FabricService::Stub* stub,
                          const std::string& name,
                          const std::vector<std::string>& nodes) {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name(name);
  req.mutable_spec()->set_topology(v1::RING);
  // Memory to lend, for the allocations of the load (--load-clients).
  req.mutable_spec()->set_default_profile("sim");
  req.mutable_spec()->set_default_export_size(uint64_t{1} << 30);
  for (const auto& n : nodes) req.mutable_spec()->add_nodes()->set_name(n);
  grpc::ClientContext ctx;
  v1::Fabric out;
  grpc::Status s = stub->CreateFabric(&ctx, req, &out);
  if (!s.ok()) return absl::InternalError("CreateFabric: " + s.error_message());
  return absl::OkStatus();
}

// Opens `count` streams with `open(i, reader)`, waits for each to read its
// first message, publishes a change with `change`, waits for each to read
// it, runs `load` (when set) with the streams open, then cancels them all
// and runs `load` again.
template <typename Response, typename OpenFn, typename ChangeFn>
absl::StatusOr<KindResult> Measure(
    const std::string& kind, int count, OpenFn open, ChangeFn change,
    const std::function<absl::StatusOr<LoadResult>()>& load = nullptr) {
  KindResult r;
  r.kind = kind;
  r.before = ReadUsage();
  Tally tally;
  std::vector<std::unique_ptr<Reader<Response>>> readers;
  readers.reserve(count);
  const absl::Time start = absl::Now();
  for (int i = 0; i < count; ++i) {
    readers.push_back(std::make_unique<Reader<Response>>(&tally));
    open(i, readers.back().get());
    readers.back()->Start();
  }
  if (!tally.AwaitRead(1, count)) {
    return absl::DeadlineExceededError(absl::StrCat(
        kind, ": streams did not open: ", tally.first_error().error_message()));
  }
  r.open_s = MillisSince(start) / 1000;
  r.open = ReadUsage();
  const absl::Time changed = absl::Now();
  if (absl::Status s = change(); !s.ok()) return s;
  if (!tally.AwaitRead(2, count)) {
    return absl::DeadlineExceededError(absl::StrCat(
        kind, ": the change did not reach every stream: ",
        tally.first_error().error_message()));
  }
  r.fanout_ms = MillisSince(changed);
  if (load) {
    ASSIGN_OR_RETURN(LoadResult open_load, load());
    r.load_open = open_load;
  }
  const absl::Time closing = absl::Now();
  for (auto& reader : readers) reader->context()->TryCancel();
  if (!tally.AwaitEnded(count)) {
    return absl::DeadlineExceededError(kind + ": streams did not end");
  }
  r.close_ms = MillisSince(closing);
  if (!tally.first_error().ok()) {
    return absl::InternalError(absl::StrCat(
        kind, ": a stream failed: ", tally.first_error().error_message()));
  }
  r.closed = ReadUsage();
  if (load) {
    ASSIGN_OR_RETURN(LoadResult closed_load, load());
    r.load_closed = closed_load;
  }
  return r;
}

int Main(int argc, char** argv) {
  CLI::App app{"What open Watch and agent config streams cost the manager."};
  int streams = 1000;
  std::vector<std::string> kinds = {"watch", "config"};
  app.add_option("--streams", streams, "streams open at once, per kind")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--kinds", kinds, "watch, config or both")
      ->check(CLI::IsMember({"watch", "config"}))
      ->delimiter(',')
      ->capture_default_str();
  int load_clients = 8;
  app.add_option("--load-clients", load_clients,
                 "config: allocate+release by this many clients, with the "
                 "streams open and again after they closed (0: none); each "
                 "commit changes two nodes, whose streams alone need waking")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  std::string load_duration = "2s";
  app.add_option("--load-duration", load_duration,
                 "how long each allocate+release load runs")
      ->capture_default_str();
  std::string connect;
  int pid = 0;
  app.add_option("--connect", connect,
                 "HOST:PORT of a running fabric-manager (fresh database) to "
                 "open the streams to, instead of one in this process");
  app.add_option("--pid", pid, "with --connect: the manager's process id")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  absl::Duration load_time;
  if (!absl::ParseDuration(load_duration, &load_time) ||
      load_time <= absl::ZeroDuration()) {
    std::fprintf(stderr, "--load-duration: not a positive duration: %s\n",
                 load_duration.c_str());
    return 2;
  }
  if (2 * load_clients > std::max(streams, 3)) {
    std::fprintf(stderr,
                 "--load-clients: %d clients need %d nodes; --streams gives "
                 "%d\n",
                 load_clients, 2 * load_clients, std::max(streams, 3));
    return 2;
  }
  if (connect.empty() != (pid == 0)) {
    std::fprintf(stderr, "--connect and --pid go together\n");
    return 2;
  }

  std::unique_ptr<store::Store> store;
  std::unique_ptr<service::FabricManager> manager;
  std::unique_ptr<service::GrpcServer> server;
  if (connect.empty()) {
    auto opened = store::OpenSqliteStore({.path = ":memory:"});
    if (!opened.ok()) {
      std::fprintf(stderr, "store: %s\n", opened.status().ToString().c_str());
      return 2;
    }
    store = *std::move(opened);
    service::ManagerOptions options;
    // Agents here never report; keep them READY (and known) throughout.
    options.heartbeat_timeout = absl::Hours(1);
    options.stream_grace = absl::Hours(1);
    auto m = service::FabricManager::Open(store.get(), Clock::Real(), options);
    if (!m.ok()) {
      std::fprintf(stderr, "manager: %s\n", m.status().ToString().c_str());
      return 2;
    }
    manager = *std::move(m);
    auto started = service::GrpcServer::Start(manager.get(), "127.0.0.1:0");
    if (!started.ok()) {
      std::fprintf(stderr, "server: %s\n",
                   started.status().ToString().c_str());
      return 2;
    }
    server = *std::move(started);
    connect = absl::StrCat("127.0.0.1:", server->port());
  } else {
    g_measured = std::to_string(pid);
  }
  auto channel =
      grpc::CreateChannel(connect, grpc::InsecureChannelCredentials());
  auto fabric = v1::FabricService::NewStub(channel);
  auto agent = agentproto::v1::AgentService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::PingResponse out;
    if (!fabric->Ping(&ctx, v1::PingRequest(), &out).ok()) {
      std::fprintf(stderr, "ping failed\n");
      return 2;
    }
  }
  const Usage baseline = ReadUsage();
  std::vector<KindResult> results;
  int exit_code = 0;
  for (const std::string& kind : kinds) {
    absl::StatusOr<KindResult> r;
    if (kind == "watch") {
      v1::WatchRequest req;
      req.set_initial_state(true);
      r = Measure<v1::WatchEvent>(
          kind, streams,
          [&](int, Reader<v1::WatchEvent>* reader) {
            fabric->async()->Watch(reader->context(), &req, reader);
          },
          [&] { return CreateFabric(fabric.get(), "wfan", {"w0", "w1", "w2"}); });
    } else {
      std::vector<agentproto::v1::StreamConfigRequest> reqs(streams);
      for (int i = 0; i < streams; ++i) {
        agentproto::v1::RegisterNodeRequest reg;
        reg.set_node(absl::StrCat("a", i));
        reg.set_backend("bench");
        reg.set_control_address(absl::StrCat("127.0.0.1:", 20000 + i));
        grpc::ClientContext ctx;
        agentproto::v1::RegisterNodeResponse resp;
        grpc::Status s = agent->RegisterNode(&ctx, reg, &resp);
        if (!s.ok()) {
          std::fprintf(stderr, "RegisterNode: %s\n", s.error_message().c_str());
          return 2;
        }
        reqs[i].set_node(reg.node());
        reqs[i].set_session(resp.session());
      }
      r = Measure<agentproto::v1::DesiredConfig>(
          kind, streams,
          [&](int i, Reader<agentproto::v1::DesiredConfig>* reader) {
            agent->async()->StreamConfig(reader->context(), &reqs[i], reader);
          },
          // A fabric of every agent's node: each one's configuration
          // changes, so every agent is sent it (a stream sends nothing for
          // a generation that changes nothing for its node).
          [&] {
            std::vector<std::string> nodes;
            for (int i = 0; i < std::max(streams, 3); ++i) {
              nodes.push_back(absl::StrCat("a", i));
            }
            return CreateFabric(fabric.get(), "cfan", nodes);
          },
          load_clients == 0
              ? std::function<absl::StatusOr<LoadResult>()>()
              : [&]() -> absl::StatusOr<LoadResult> {
                  return RunAllocLoad(fabric.get(), load_clients, load_time);
                });
    }
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      exit_code = 1;
      break;
    }
    results.push_back(*r);
  }
  if (server != nullptr) {
    server->Shutdown();
    manager->Shutdown();
  }

  std::printf("process %s; baseline: threads %lld, rss %.1f MiB\n",
              g_measured.c_str(),
              static_cast<long long>(baseline.threads),
              baseline.rss_kib / 1024.0);
  for (const KindResult& r : results) {
    std::printf(
        "%-6s %d open: threads %lld (+%lld), rss %.1f MiB (+%.1f MiB, %.1f "
        "KiB/stream); opened in %.2f s; fan-out %.1f ms; close %.1f ms; "
        "after close: threads %lld, rss %.1f MiB\n",
        r.kind.c_str(), streams, static_cast<long long>(r.open.threads),
        static_cast<long long>(r.open.threads - r.before.threads),
        r.open.rss_kib / 1024.0, (r.open.rss_kib - r.before.rss_kib) / 1024.0,
        static_cast<double>(r.open.rss_kib - r.before.rss_kib) / streams,
        r.open_s, r.fanout_ms, r.close_ms,
        static_cast<long long>(r.closed.threads), r.closed.rss_kib / 1024.0);
    if (r.load_open && r.load_closed) {
      std::printf(
          "%-6s allocate+release by %d clients: %.0f rpc/s with the %d "
          "streams open, %.0f rpc/s after they closed (%.2f of it)\n",
          r.kind.c_str(), load_clients, r.load_open->rps, streams,
          r.load_closed->rps, r.load_open->rps / r.load_closed->rps);
    }
  }
  return exit_code;
}

}  // namespace
}  // namespace fabric::bench

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();  // as the programs measured
  return fabric::bench::Main(argc, argv);
}
