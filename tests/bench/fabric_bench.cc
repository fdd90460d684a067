// fabric-bench: how fast the manager serves durable allocations, compared
// with a no-op RPC on the same server, and how long a full address-map
// recompute takes on a large ring.
//
// One process runs the server: a SQLite store in a fresh temporary
// directory (WAL, synchronous=FULL, group commit), the FabricManager, and
// the gRPC server on 127.0.0.1:0. Client threads each own a channel (no
// shared connection) and call the server through the generated stub. With
// --clients-in=same (the default) the client threads run in that process
// too; with --clients-in=child they run in a child process (this binary,
// re-executed, driven over a pipe), as a remote scheduler would; "both"
// measures every level both ways.
//
// For each concurrency level C (--clients, default 1,8,32):
//   1. C clients call Ping for --duration; the first 0.3 s is warm-up.
//   2. C clients loop CreateAllocation + DeleteAllocation for --duration,
//      again after a 0.3 s warm-up. Client i borrows from its own node, so
//      clients never compete for windows. Every OK is fsync-durable.
// Throughput counts RPCs per second (an allocate and a release are two).
// Latencies are per RPC, in microseconds. CPU per RPC is CPU time over the
// phase (warm-up included) divided by the RPCs completed in it: the server
// process's, less the client threads' when they share it, and the clients'
// (their threads' own CPU time, or the child process's). "other cores" is
// what the rest of the machine used meanwhile (/proc/stat), since a
// benchmark on a shared machine competes with it.
//
// Then, without gRPC: the median and p99 of core::AddressMap::Compute over
// --repeat runs on a --ring-nodes ring with every link up, and the largest
// number of forward entries on a bridge with all links up and with link 0
// down.
//
// With --tls, instead: mutual TLS against plaintext, in one run. Two
// fabric-manager processes from --bin-dir, one started with --insecure and
// one with a manager certificate (a CA made by deploy/pki.sh in a temporary
// directory, TestPki), each on its own store; the clients run in this
// process, over plaintext channels or as an admin user over mTLS, and every
// connection is established (handshake included) before anything is
// measured. For each level of --clients, --rounds times, Ping and then
// allocate+release are measured on one manager and then the other (the order
// alternates between rounds, so drift on a shared machine hits both alike);
// the table shows the medians over rounds of throughput and p99 and the
// ratio mTLS/plaintext. The target: mTLS keeps at least 0.85 of plaintext
// throughput at 32 clients.
//
// With --store etcd, instead: the etcd store against SQLite, in one run and
// the same way as --tls. A 3-member etcd on loopback (tests/etcd's
// EtcdCluster) and two fabric-manager processes, plaintext: one on a SQLite
// file, one with --store etcd://.../bench (HA mode, alone on its prefix, so
// it leads and every Txn carries its fence). The table adds the etcd
// manager's allocate and release RPCs per etcd transaction (from the
// cluster's revision), i.e. how much group commit groups, and the etcd
// members' own CPU time per RPC (they run on this machine too, so the
// "cpu r." column, the throughput ratio of a CPU-bound machine, counts it). The target: at 32
// clients etcd keeps at least half of SQLite's allocate+release throughput.
//
// Exits 1 if any RPC failed, an allocation was left behind or the manager's
// invariants do not hold; 2 on bad flags or setup failure. Missing a
// performance target is reported ("target met: no"), not an error.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <spawn.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/mutex_mode.h"
#include "common/security/testing/test_pki.h"
#include "common/security/tls.h"
#include "common/status_macros.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "server/core/address_map.h"
#include "server/core/topology.h"
#include "server/service/manager.h"
#include "server/service/server.h"
#include "server/store/etcd/etcd_client.h"
#include "server/store/sqlite_store.h"
#include "tests/bench/bench_util.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"

namespace fabric::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr absl::Duration kWarmup = absl::Milliseconds(300);
constexpr uint64_t kAllocationSize = 1ull << 20;  // 1 MiB
constexpr int kMinRingNodes = 64;
constexpr double kTargetRatio = 0.8;
constexpr double kTargetTlsRatio = 0.85;
constexpr double kTargetEtcdRatio = 0.5;
constexpr int kTargetClients = 32;
constexpr double kTargetRecomputeMs = 50.0;
constexpr long kTmpfsMagic = 0x01021994;

struct Flags {
  absl::Duration duration = absl::Seconds(2);
  std::vector<int> clients = {1, 8, 32};
  std::string output = "table";
  int ring_nodes = 1024;
  int repeat = 15;
  std::string dir;  // parent of the temporary directory
  // Where the clients run: "same", "child" or "both" (see the top).
  std::string clients_in = "same";
  // --tls: mTLS against plaintext on fabric-manager processes (see the top).
  bool tls = false;
  // --store etcd: a manager on etcd against one on SQLite (see the top).
  std::string store = "sqlite";
  // --store etcd: members of the etcd cluster (3 by default, as HA needs).
  int etcd_members = 3;
  std::string bin_dir;  // where fabric-manager is
  int rounds = 3;
  // --tls, --store etcd: more flags for every fabric-manager process.
  std::vector<std::string> manager_flags;
};

// Where one level's clients ran.
enum class ClientsIn { kSame, kChild };

const char* ClientsInName(ClientsIn where) {
  return where == ClientsIn::kSame ? "same" : "child";
}

enum class Phase { kPing, kAllocate };

// Latency samples (microseconds) and RPC count of one phase.
struct PhaseResult {
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  uint64_t rpcs = 0;      // completed inside the measured window
  uint64_t all_rpcs = 0;  // completed in the phase, warm-up included
  double client_cpu_s = 0;  // the client threads' CPU time over the phase
  // Per RPC (all_rpcs), in microseconds of CPU time; filled in by the
  // server side, which also knows its own process's CPU time.
  double server_cpu_us = 0;
  double client_cpu_us = 0;
  // Cores the rest of the machine kept busy during the phase.
  double other_cores = 0;
};

struct LevelResult {
  ClientsIn clients_in = ClientsIn::kSame;
  int clients = 0;
  PhaseResult ping;
  PhaseResult alloc;
  // Store::Apply latency during the allocate phase (group-commit wait +
  // transaction + fsync), to tell the store's share from the rest.
  double apply_p50_us = 0;
  double apply_p99_us = 0;
  uint64_t store_batches = 0;  // during the allocate phase
  uint64_t store_commits = 0;
  // CPU time of Store::Apply (SQLite, WAL writes, fsync) per allocate or
  // release RPC, microseconds; part of alloc.server_cpu_us.
  double store_cpu_us = 0;
};

struct RecomputeResult {
  int nodes = 0;
  double median_ms = 0;
  double p99_ms = 0;
  int max_forward_all_up = 0;
  int max_forward_one_down = 0;
};

// CPU time of the calling thread or of this whole process, in seconds.
double CpuSeconds(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0) return 0;
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// A Store that times every Apply (wall-clock and the calling thread's CPU
// time) and forwards everything to `base` (not owned). Thread-safe.
class TimedStore final : public store::Store {
 public:
  explicit TimedStore(store::Store* base) : base_(base) {}

  absl::Status Apply(const store::WriteBatch& batch) override {
    const double cpu0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = base_->Apply(batch);
    const auto t1 = std::chrono::steady_clock::now();
    const double cpu_s = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    absl::MutexLock l(&mu_);
    apply_us_.push_back(
        std::chrono::duration<double, std::micro>(t1 - t0).count());
    apply_cpu_s_ += cpu_s;
    return s;
  }
  absl::StatusOr<std::string> Get(absl::string_view table,
                                  absl::string_view key) override {
    return base_->Get(table, key);
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view table) override {
    return base_->Scan(table);
  }
  store::StoreStats stats() const override { return base_->stats(); }

  // The Apply latencies (microseconds) since the last call, sorted, and
  // the CPU time (seconds) the Apply calls took meanwhile.
  std::vector<double> TakeApplyLatencies(double* cpu_s) {
    std::vector<double> out;
    {
      absl::MutexLock l(&mu_);
      out.swap(apply_us_);
      *cpu_s = apply_cpu_s_;
      apply_cpu_s_ = 0;
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  store::Store* const base_;  // not owned
  absl::Mutex mu_;
  std::vector<double> apply_us_ ABSL_GUARDED_BY(mu_);
  double apply_cpu_s_ ABSL_GUARDED_BY(mu_) = 0;
};

// Nearest-rank percentile of sorted `v`; 0 when empty.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(p / 100.0 * sorted.size() + 0.999999);
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

double Micros(SteadyClock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Busy and total CPU time of the whole machine so far, in seconds
// (/proc/stat); zero where it cannot be read.
struct HostCpu {
  double busy_s = 0;
  double total_s = 0;
};

HostCpu ReadHostCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
           softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >>
        softirq >> steal) ||
      cpu != "cpu") {
    return {};
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const uint64_t busy = user + nice + system + irq + softirq + steal;
  return {.busy_s = busy / tick, .total_s = (busy + idle + iowait) / tick};
}

std::unique_ptr<grpc::ClientContext> NewContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return ctx;
}

std::string NodeName(int i) { return absl::StrCat("n", i); }

// One benchmark client: a private channel and stub, and the pair of nodes
// it allocates between.
struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::FabricService::Stub> stub;
  std::string borrower;
  std::string target;
};

// The samples one client thread collected inside the measured window, its
// RPCs in the whole phase, and its CPU time.
struct ThreadSamples {
  std::vector<double> latencies_us;
  uint64_t all_rpcs = 0;
  double cpu_s = 0;
};

// Runs one thread for each of the first `n` clients; each calls `one_round(client, record)` until
// the measured window (warm-up + duration) has passed. `record(start, end)`
// counts an RPC whose completion falls inside the window.
template <typename RoundFn>
PhaseResult RunPhase(std::vector<Client>& clients, int n,
                     absl::Duration duration, RoundFn one_round) {
  const auto start = SteadyClock::now();
  const auto window_begin = start + absl::ToChronoNanoseconds(kWarmup);
  const auto window_end = window_begin + absl::ToChronoNanoseconds(duration);
  std::vector<ThreadSamples> samples(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ThreadSamples& mine = samples[i];
      mine.latencies_us.reserve(1 << 16);
      auto record = [&](SteadyClock::time_point t0, SteadyClock::time_point t1) {
        ++mine.all_rpcs;
        if (t1 >= window_begin && t1 < window_end)
          mine.latencies_us.push_back(Micros(t1 - t0));
      };
      while (SteadyClock::now() < window_end) one_round(clients[i], record);
      mine.cpu_s = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  PhaseResult r;
  for (auto& s : samples) {
    all.insert(all.end(), s.latencies_us.begin(), s.latencies_us.end());
    r.all_rpcs += s.all_rpcs;
    r.client_cpu_s += s.cpu_s;
  }
  std::sort(all.begin(), all.end());
  r.rpcs = all.size();
  r.rps = all.size() / absl::ToDoubleSeconds(duration);
  r.p50_us = Percentile(all, 50);
  r.p99_us = Percentile(all, 99);
  return r;
}

PhaseResult RunPing(std::vector<Client>& clients, int n,
                    absl::Duration duration, ErrorLog& errors) {
  return RunPhase(clients, n, duration, [&](Client& c, auto& record) {
    v1::PingRequest req;
    v1::PingResponse resp;
    auto ctx = NewContext();
    const auto t0 = SteadyClock::now();
    grpc::Status s = c.stub->Ping(ctx.get(), req, &resp);
    const auto t1 = SteadyClock::now();
    if (!s.ok()) {
      errors.Add("Ping", s);
      return;
    }
    record(t0, t1);
  });
}

// One allocate + release per round; a round is never cut in half, so no
// allocation outlives the phase unless its release failed.
PhaseResult RunAllocate(std::vector<Client>& clients, int n,
                        absl::Duration duration, ErrorLog& errors,
                        absl::string_view id_prefix,
                        std::atomic<uint64_t>& request_seq,
                        absl::string_view owner) {
  return RunPhase(clients, n, duration, [&](Client& c, auto& record) {
    v1::CreateAllocationRequest create;
    create.mutable_allocation()->set_borrower(c.borrower);
    create.mutable_allocation()->set_target(c.target);
    create.mutable_allocation()->set_size(kAllocationSize);
    create.mutable_allocation()->set_owner(std::string(owner));
    // Like fabricctl, every mutation carries a fresh request id, so the
    // server also makes the request record durable.
    create.set_request_id(
        absl::StrCat(id_prefix, request_seq.fetch_add(1)));
    v1::Allocation created;
    auto ctx = NewContext();
    auto t0 = SteadyClock::now();
    grpc::Status s = c.stub->CreateAllocation(ctx.get(), create, &created);
    auto t1 = SteadyClock::now();
    if (!s.ok()) {
      errors.Add("CreateAllocation", s);
      return;
    }
    record(t0, t1);

    v1::DeleteAllocationRequest del;
    del.set_name(created.name());
    del.set_request_id(absl::StrCat(id_prefix, request_seq.fetch_add(1)));
    v1::Allocation released;
    ctx = NewContext();
    t0 = SteadyClock::now();
    s = c.stub->DeleteAllocation(ctx.get(), del, &released);
    t1 = SteadyClock::now();
    if (!s.ok()) {
      errors.Add(absl::StrCat("DeleteAllocation ", created.name()), s);
      return;
    }
    record(t0, t1);
  });
}

// Benchmark clients, wherever they run. Not thread-safe: one phase at a
// time, from one thread.
class ClientSet {
 public:
  virtual ~ClientSet() = default;
  // Opens `n` channels to `address`, each on its own connection, and waits
  // until they are connected.
  virtual absl::Status Connect(const std::string& address, int n) = 0;
  // Runs `phase` on the first `n` clients (n <= what Connect opened). RPC
  // failures go to the ErrorLog the set was made with; errors are failures
  // to run the phase at all.
  virtual absl::StatusOr<PhaseResult> Run(Phase phase, int n,
                                          absl::Duration duration) = 0;
};

// Client threads in this process.
class LocalClients final : public ClientSet {
 public:
  // `errors` is not owned and must outlive this. Request ids are
  // `id_prefix` followed by a sequence number. Channels use `credentials`
  // (plaintext when null); allocations are made for `owner` ("" for the
  // caller's identity, the only owner an authenticated caller may name).
  LocalClients(ErrorLog* errors, std::string id_prefix,
               std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
               std::string owner = "fabric-bench")
      : errors_(errors),
        id_prefix_(std::move(id_prefix)),
        credentials_(credentials != nullptr
                         ? std::move(credentials)
                         : grpc::InsecureChannelCredentials()),
        owner_(std::move(owner)) {}

  absl::Status Connect(const std::string& address, int n) override {
    clients_.clear();
    clients_.resize(n);
    for (int i = 0; i < n; ++i) {
      // The local subchannel pool keeps channels with equal arguments from
      // sharing a connection.
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("fabric_bench.client", i);
      clients_[i].channel =
          grpc::CreateCustomChannel(address, credentials_, args);
      if (!clients_[i].channel->WaitForConnected(
              std::chrono::system_clock::now() + std::chrono::seconds(10))) {
        return absl::UnavailableError(
            absl::StrCat("client ", i, ": cannot connect to ", address));
      }
      clients_[i].stub = v1::FabricService::NewStub(clients_[i].channel);
      // Neighbours: client i borrows on n(2i) from n(2i+1), a one-hop path.
      clients_[i].borrower = NodeName(2 * i);
      clients_[i].target = NodeName(2 * i + 1);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<PhaseResult> Run(Phase phase, int n,
                                  absl::Duration duration) override {
    if (n > static_cast<int>(clients_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "clients: ", n, " asked for, ", clients_.size(), " connected"));
    }
    if (phase == Phase::kPing) return RunPing(clients_, n, duration, *errors_);
    return RunAllocate(clients_, n, duration, *errors_, id_prefix_,
                       request_seq_, owner_);
  }

 private:
  ErrorLog* const errors_;  // not owned
  const std::string id_prefix_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const std::string owner_;
  std::atomic<uint64_t> request_seq_{0};
  std::vector<Client> clients_;
};

// The child's side of the pipe protocol: reads commands on stdin, answers
// on stdout, one line each (see ChildClients). Returns the exit code.
int ClientProcessMain() {
  std::string line;
  std::unique_ptr<LocalClients> clients;
  std::unique_ptr<ErrorLog> errors;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> w = absl::StrSplit(line, ' ');
    if (w.size() == 3 && w[0] == "connect") {
      int n = 0;
      errors = std::make_unique<ErrorLog>();
      clients = std::make_unique<LocalClients>(errors.get(), "bench-child-");
      absl::Status s = absl::SimpleAtoi(w[2], &n)
                           ? clients->Connect(w[1], n)
                           : absl::InvalidArgumentError("bad client count");
      std::cout << (s.ok() ? "ok" : absl::StrCat("error ", s.message()))
                << std::endl;
    } else if (w.size() == 4 && w[0] == "run" && clients != nullptr) {
      int n = 0;
      int64_t nanos = 0;
      if (!absl::SimpleAtoi(w[2], &n) || !absl::SimpleAtoi(w[3], &nanos)) {
        std::cout << "error bad run command" << std::endl;
        continue;
      }
      errors->Clear();
      const double cpu0 = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
      absl::StatusOr<PhaseResult> r =
          clients->Run(w[1] == "ping" ? Phase::kPing : Phase::kAllocate, n,
                       absl::Nanoseconds(nanos));
      const double cpu_s = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
      if (!r.ok()) {
        std::cout << "error " << r.status().message() << std::endl;
        continue;
      }
      const std::vector<std::string> shown = errors->shown();
      std::cout << absl::StrFormat("result %d %d %.17g %.17g %.17g %.17g %d %d",
                                   r->rpcs, r->all_rpcs, r->rps, r->p50_us,
                                   r->p99_us, cpu_s, errors->count(),
                                   shown.size())
                << "\n";
      for (std::string e : shown) {
        absl::c_replace(e, '\n', ' ');
        std::cout << e << "\n";
      }
      std::cout.flush();
    } else if (w[0] == "quit") {
      return 0;
    } else {
      std::cout << "error unknown command: " << line << std::endl;
    }
  }
  return 0;
}

// Client threads in a child process: this binary re-executed with
// --client-process, driven over its stdin and stdout. Its CPU time is the
// child's. The child exits when this is destroyed.
class ChildClients final : public ClientSet {
 public:
  // Starts the child. `errors` is not owned and must outlive this.
  static absl::StatusOr<std::unique_ptr<ChildClients>> Spawn(
      ErrorLog* errors) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    }
    if (pipe2(from_child, O_CLOEXEC) != 0) {
      close(to_child[0]);
      close(to_child[1]);
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    char arg0[] = "fabric-bench";
    char arg1[] = "--client-process";
    char* argv[] = {arg0, arg1, nullptr};
    pid_t pid = 0;
    const int err = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr,
                                argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (err != 0) {
      close(to_child[1]);
      close(from_child[0]);
      return absl::InternalError(
          absl::StrCat("cannot start the client process: ", strerror(err)));
    }
    return std::unique_ptr<ChildClients>(new ChildClients(
        errors, pid, fdopen(to_child[1], "w"), fdopen(from_child[0], "r")));
  }

  ~ChildClients() override {
    std::fputs("quit\n", to_);
    std::fclose(to_);
    std::fclose(from_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  absl::Status Connect(const std::string& address, int n) override {
    absl::StatusOr<std::string> reply =
        Call(absl::StrCat("connect ", address, " ", n));
    if (!reply.ok()) return reply.status();
    return *reply == "ok" ? absl::OkStatus() : ReplyError(*reply);
  }

  absl::StatusOr<PhaseResult> Run(Phase phase, int n,
                                  absl::Duration duration) override {
    absl::StatusOr<std::string> reply = Call(absl::StrCat(
        "run ", phase == Phase::kPing ? "ping" : "alloc", " ", n, " ",
        absl::ToInt64Nanoseconds(duration)));
    if (!reply.ok()) return reply.status();
    std::vector<std::string> w = absl::StrSplit(*reply, ' ');
    PhaseResult r;
    uint64_t errors = 0;
    size_t shown = 0;
    if (w.size() != 9 || w[0] != "result" ||
        !absl::SimpleAtoi(w[1], &r.rpcs) ||
        !absl::SimpleAtoi(w[2], &r.all_rpcs) ||
        !absl::SimpleAtod(w[3], &r.rps) || !absl::SimpleAtod(w[4], &r.p50_us) ||
        !absl::SimpleAtod(w[5], &r.p99_us) ||
        !absl::SimpleAtod(w[6], &r.client_cpu_s) ||
        !absl::SimpleAtoi(w[7], &errors) || !absl::SimpleAtoi(w[8], &shown)) {
      return ReplyError(*reply);
    }
    for (size_t i = 0; i < shown; ++i) {
      absl::StatusOr<std::string> e = ReadLine();
      if (!e.ok()) return e.status();
      errors_->AddMessage(absl::StrCat("client process: ", *e));
    }
    errors_->AddUnshown(errors - std::min<uint64_t>(errors, shown));
    return r;
  }

 private:
  ChildClients(ErrorLog* errors, pid_t pid, FILE* to, FILE* from)
      : errors_(errors), pid_(pid), to_(to), from_(from) {}

  absl::StatusOr<std::string> Call(const std::string& command) {
    if (std::fprintf(to_, "%s\n", command.c_str()) < 0 ||
        std::fflush(to_) != 0) {
      return absl::UnavailableError("the client process is gone");
    }
    return ReadLine();
  }

  absl::StatusOr<std::string> ReadLine() {
    char* buf = nullptr;
    size_t cap = 0;
    const ssize_t n = getline(&buf, &cap, from_);
    std::string line = n > 0 ? std::string(buf, n) : std::string();
    free(buf);
    if (n <= 0) return absl::UnavailableError("the client process is gone");
    if (!line.empty() && line.back() == '\n') line.pop_back();
    return line;
  }

  static absl::Status ReplyError(absl::string_view reply) {
    return absl::InternalError(
        absl::StrCat("client process: ", absl::StripPrefix(reply, "error ")));
  }

  ErrorLog* const errors_;  // not owned
  const pid_t pid_;
  FILE* const to_;
  FILE* const from_;
};

absl::StatusOr<RecomputeResult> MeasureRecompute(int nodes, int repeat) {
  core::FabricSpec spec;
  spec.name = "recompute";
  spec.kind = core::TopologyKind::kRing;
  for (int i = 0; i < nodes; ++i) spec.nodes.push_back({.name = NodeName(i)});
  absl::StatusOr<core::Topology> topo = core::Topology::Build(spec);
  if (!topo.ok()) return topo.status();
  std::vector<bool> up(topo->links().size(), true);

  std::vector<double> ms;
  int max_forward_all_up = 0;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = SteadyClock::now();
    core::AddressMap map = core::AddressMap::Compute(*topo, up);
    const auto t1 = SteadyClock::now();
    ms.push_back(Micros(t1 - t0) / 1000.0);
    max_forward_all_up = map.max_forward_entries();
  }
  std::sort(ms.begin(), ms.end());
  std::vector<bool> one_down = up;
  if (!one_down.empty()) one_down[0] = false;
  RecomputeResult r;
  r.nodes = nodes;
  r.median_ms = Percentile(ms, 50);
  r.p99_ms = Percentile(ms, 99);
  r.max_forward_all_up = max_forward_all_up;
  r.max_forward_one_down =
      core::AddressMap::Compute(*topo, one_down).max_forward_entries();
  return r;
}

// A temporary directory, removed (with its contents) on destruction.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(const std::string& parent) {
    std::string tmpl =
        (std::filesystem::path(parent) / "fabric-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("--dir: cannot create a directory under ", parent, ": ",
                       strerror(errno)));
    }
    return TempDir(tmpl);
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

struct Report {
  std::string db_path;
  bool tmpfs = false;
  int fabric_nodes = 0;
  absl::Duration duration;
  std::vector<LevelResult> levels;
  RecomputeResult recompute;
  uint64_t store_batches = 0;
  uint64_t store_commits = 0;
  uint64_t rpc_errors = 0;
  std::vector<std::string> error_samples;
  int allocations_left = 0;
  absl::Status invariants;

  const LevelResult* Level(int clients, ClientsIn where) const {
    for (const auto& l : levels)
      if (l.clients == clients && l.clients_in == where) return &l;
    return nullptr;
  }
  // "true", "false", or "null" when that level did not run.
  std::string TargetMetJson(ClientsIn where) const {
    const LevelResult* l = Level(kTargetClients, where);
    if (l == nullptr) return "null";
    return Ratio(*l) >= kTargetRatio ? "true" : "false";
  }
  double Ratio(const LevelResult& l) const {
    return l.ping.rps > 0 ? l.alloc.rps / l.ping.rps : 0;
  }
  bool Failed() const {
    return rpc_errors > 0 || allocations_left > 0 || !invariants.ok();
  }
};

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void PrintJson(const Report& r) {
  std::vector<std::string> levels;
  for (const auto& l : r.levels) {
    levels.push_back(absl::StrFormat(
        "{\"clients_in\":\"%s\",\"clients\":%d,\"ping_rps\":%.1f,"
        "\"ping_p50_us\":%.1f,"
        "\"ping_p99_us\":%.1f,\"alloc_rps\":%.1f,\"alloc_p50_us\":%.1f,"
        "\"alloc_p99_us\":%.1f,\"ratio\":%.3f,\"store_batches\":%d,"
        "\"store_commits\":%d,\"store_apply_p50_us\":%.1f,"
        "\"store_apply_p99_us\":%.1f,\"ping_server_cpu_us\":%.1f,"
        "\"ping_client_cpu_us\":%.1f,\"alloc_server_cpu_us\":%.1f,"
        "\"alloc_client_cpu_us\":%.1f,\"ping_other_cores\":%.2f,"
        "\"alloc_other_cores\":%.2f,\"alloc_store_cpu_us\":%.1f}",
        ClientsInName(l.clients_in), l.clients, l.ping.rps, l.ping.p50_us,
        l.ping.p99_us, l.alloc.rps, l.alloc.p50_us, l.alloc.p99_us,
        r.Ratio(l), l.store_batches, l.store_commits, l.apply_p50_us,
        l.apply_p99_us, l.ping.server_cpu_us, l.ping.client_cpu_us,
        l.alloc.server_cpu_us, l.alloc.client_cpu_us, l.ping.other_cores,
        l.alloc.other_cores, l.store_cpu_us));
  }
  std::vector<std::string> errors;
  for (const auto& e : r.error_samples) errors.push_back(JsonString(e));
  absl::PrintF(
      "{\"duration_s\":%.3f,\"fabric_nodes\":%d,\"allocation_bytes\":%d,"
      "\"db_tmpfs\":%s,\"concurrency\":[%s],\"ring_nodes\":%d,"
      "\"recompute_ms_median\":%.3f,\"recompute_ms_p99\":%.3f,"
      "\"max_forward_entries_all_up\":%d,\"max_forward_entries_one_down\":%d,"
      "\"store_batches\":%d,\"store_commits\":%d,\"rpc_errors\":%d,"
      "\"rpc_error_samples\":[%s],\"allocations_left\":%d,"
      "\"invariants_ok\":%s,\"target_met\":%s,"
      "\"target_met_child_clients\":%s,\"recompute_target_met\":%s}\n",
      absl::ToDoubleSeconds(r.duration), r.fabric_nodes, kAllocationSize,
      r.tmpfs ? "true" : "false", absl::StrJoin(levels, ","),
      r.recompute.nodes, r.recompute.median_ms, r.recompute.p99_ms,
      r.recompute.max_forward_all_up, r.recompute.max_forward_one_down,
      r.store_batches, r.store_commits, r.rpc_errors,
      absl::StrJoin(errors, ","), r.allocations_left,
      r.invariants.ok() ? "true" : "false",
      r.TargetMetJson(ClientsIn::kSame), r.TargetMetJson(ClientsIn::kChild),
      r.recompute.median_ms <= kTargetRecomputeMs ? "true" : "false");
}

void PrintTable(const Report& r) {
  absl::PrintF(
      "fabric-bench: %s per phase after %s warm-up; ring of %d sim nodes; "
      "1 MiB allocations\n",
      absl::FormatDuration(r.duration), absl::FormatDuration(kWarmup),
      r.fabric_nodes);
  absl::PrintF("store: %s (WAL, synchronous=FULL; removed at exit)%s\n\n",
               r.db_path,
               r.tmpfs ? "  WARNING: tmpfs, fsync is free" : "");
  absl::PrintF("%5s %7s | %10s %8s %8s | %11s %8s %8s | %5s | %10s %12s\n",
               "where", "clients", "ping rpc/s", "p50 us", "p99 us",
               "alloc rpc/s", "p50 us", "p99 us", "ratio", "rpcs/fsync",
               "apply p50/p99 us");
  for (const auto& l : r.levels) {
    absl::PrintF(
        "%5s %7d | %10.0f %8.0f %8.0f | %11.0f %8.0f %8.0f | %5.2f | %10.1f "
        "%12s\n",
        ClientsInName(l.clients_in), l.clients, l.ping.rps, l.ping.p50_us, l.ping.p99_us, l.alloc.rps,
        l.alloc.p50_us, l.alloc.p99_us, r.Ratio(l),
        // The manager groups concurrent mutations into one store batch, so
        // RPCs per durable commit shows the grouping. Commits include the
        // warm-up, so this understates it slightly.
        l.store_commits > 0
            ? static_cast<double>(l.alloc.rpcs) / l.store_commits
            : 0.0,
        absl::StrFormat("%.0f/%.0f", l.apply_p50_us, l.apply_p99_us));
  }
  absl::PrintF(
      "(alloc rpc/s counts each allocate and each release; where: clients in "
      "the server's process, or in a child process)\n\n");
  absl::PrintF("CPU time per RPC, us (server process / clients; of the "
               "server's, the store's Apply), and cores used by the rest of "
               "the machine:\n");
  absl::PrintF("%5s %7s | %14s %11s | %14s %9s %11s\n", "where", "clients",
               "ping srv/cli", "other cores", "alloc srv/cli", "store",
               "other cores");
  for (const auto& l : r.levels) {
    absl::PrintF("%5s %7d | %14s %11.2f | %14s %9.0f %11.2f\n",
                 ClientsInName(l.clients_in), l.clients,
                 absl::StrFormat("%.0f/%.0f", l.ping.server_cpu_us,
                                 l.ping.client_cpu_us),
                 l.ping.other_cores,
                 absl::StrFormat("%.0f/%.0f", l.alloc.server_cpu_us,
                                 l.alloc.client_cpu_us),
                 l.store_cpu_us, l.alloc.other_cores);
  }
  absl::PrintF("\n");
  absl::PrintF(
      "recompute, %d-node ring, all links up: median %.2f ms, p99 %.2f ms\n",
      r.recompute.nodes, r.recompute.median_ms, r.recompute.p99_ms);
  absl::PrintF(
      "max forward entries on a bridge at N=%d: all up %d, link 0 down %d\n",
      r.recompute.nodes, r.recompute.max_forward_all_up,
      r.recompute.max_forward_one_down);
  absl::PrintF("store: %d batches in %d commits\n", r.store_batches,
               r.store_commits);
  absl::PrintF("rpc errors: %d, allocations left: %d, invariants: %s\n",
               r.rpc_errors, r.allocations_left,
               r.invariants.ok() ? "OK" : std::string(r.invariants.message()));
  for (const auto& e : r.error_samples) absl::PrintF("  error: %s\n", e);

  for (ClientsIn where : {ClientsIn::kSame, ClientsIn::kChild}) {
    const LevelResult* at_target = r.Level(kTargetClients, where);
    if (at_target == nullptr) continue;
    absl::PrintF("target met (%d clients >= %.1fx ping, clients in %s): "
                 "%s (%.2fx)\n",
                 kTargetClients, kTargetRatio,
                 where == ClientsIn::kSame ? "the same process"
                                           : "a child process",
                 r.Ratio(*at_target) >= kTargetRatio ? "yes" : "no",
                 r.Ratio(*at_target));
  }
  if (r.Level(kTargetClients, ClientsIn::kSame) == nullptr &&
      r.Level(kTargetClients, ClientsIn::kChild) == nullptr) {
    absl::PrintF("target met (%d clients >= %.1fx ping): n/a (not run)\n",
                 kTargetClients, kTargetRatio);
  }
  absl::PrintF("target met (recompute median <= %.0f ms at N=%d): %s\n",
               kTargetRecomputeMs, r.recompute.nodes,
               r.recompute.median_ms <= kTargetRecomputeMs ? "yes" : "no");
}

// Counts the allocations the server still lists, following pages.
absl::StatusOr<int> CountAllocations(v1::FabricService::Stub& stub) {
  int n = 0;
  std::string token;
  do {
    v1::ListAllocationsRequest req;
    req.set_page_token(token);
    req.set_page_size(1000);
    v1::ListAllocationsResponse resp;
    auto ctx = NewContext();
    grpc::Status s = stub.ListAllocations(ctx.get(), req, &resp);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("ListAllocations: ", s.error_message()));
    }
    n += resp.allocations_size();
    token = resp.next_page_token();
  } while (!token.empty());
  return n;
}

absl::Status CreateBenchFabric(v1::FabricService::Stub& stub, int nodes) {
  v1::CreateFabricRequest req;
  v1::FabricSpec* spec = req.mutable_spec();
  spec->set_name("bench");
  spec->set_topology(v1::RING);
  spec->set_default_profile("sim");
  for (int i = 0; i < nodes; ++i) spec->add_nodes()->set_name(NodeName(i));
  req.set_request_id("bench-create-fabric");
  v1::Fabric out;
  auto ctx = NewContext();
  grpc::Status s = stub.CreateFabric(ctx.get(), req, &out);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("CreateFabric: ", s.error_message()));
  }
  return absl::OkStatus();
}

// Runs `phase` on `clients` and fills in the CPU figures: this process's
// CPU time, less the client threads' when they run here (`same_process`),
// is the server's.
absl::StatusOr<PhaseResult> MeasurePhase(ClientSet& clients, Phase phase,
                                         int n, absl::Duration duration,
                                         bool same_process) {
  const double cpu0 = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
  const HostCpu host0 = ReadHostCpu();
  const auto wall0 = SteadyClock::now();
  absl::StatusOr<PhaseResult> r = clients.Run(phase, n, duration);
  const double cpu_s = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  const HostCpu host1 = ReadHostCpu();
  const double wall_s = Micros(SteadyClock::now() - wall0) / 1e6;
  if (!r.ok()) return r.status();
  const double server_s = same_process ? cpu_s - r->client_cpu_s : cpu_s;
  const double ours_s = same_process ? cpu_s : cpu_s + r->client_cpu_s;
  if (r->all_rpcs > 0) {
    r->server_cpu_us = server_s * 1e6 / r->all_rpcs;
    r->client_cpu_us = r->client_cpu_s * 1e6 / r->all_rpcs;
  }
  if (wall_s > 0 && host1.total_s > host0.total_s) {
    r->other_cores =
        std::max(0.0, (host1.busy_s - host0.busy_s - ours_s) / wall_s);
  }
  return r;
}

// Runs the whole benchmark into `report`. Errors are setup failures; RPC
// failures during the measurement are counted in the report instead.
absl::Status Run(const Flags& flags, Report& report) {
  std::vector<ClientsIn> modes;
  if (flags.clients_in != "child") modes.push_back(ClientsIn::kSame);
  if (flags.clients_in != "same") modes.push_back(ClientsIn::kChild);
  ErrorLog errors;
  std::unique_ptr<ChildClients> child;
  if (absl::c_linear_search(modes, ClientsIn::kChild)) {
    absl::StatusOr<std::unique_ptr<ChildClients>> spawned =
        ChildClients::Spawn(&errors);
    if (!spawned.ok()) return spawned.status();
    child = *std::move(spawned);
  }

  std::string parent = flags.dir;
  if (parent.empty()) {
    const char* env = std::getenv("TMPDIR");
    parent = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  absl::StatusOr<TempDir> dir = TempDir::Create(parent);
  if (!dir.ok()) return dir.status();
  struct statfs fs;
  report.tmpfs = statfs(dir->path().c_str(), &fs) == 0 &&
                 static_cast<long>(fs.f_type) == kTmpfsMagic;
  report.db_path = (std::filesystem::path(dir->path()) / "fabric.db").string();
  report.duration = flags.duration;

  absl::StatusOr<std::unique_ptr<store::Store>> sqlite =
      store::OpenSqliteStore({.path = report.db_path});
  if (!sqlite.ok()) return sqlite.status();
  auto store = std::make_unique<TimedStore>(sqlite->get());
  absl::StatusOr<std::unique_ptr<service::FabricManager>> manager =
      service::FabricManager::Open(store.get(), fabric::Clock::Real(), {});
  if (!manager.ok()) return manager.status();
  absl::StatusOr<std::unique_ptr<service::GrpcServer>> server =
      service::GrpcServer::Start(manager->get(), "127.0.0.1:0");
  if (!server.ok()) return server.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*server)->port());

  const int max_clients =
      *std::max_element(flags.clients.begin(), flags.clients.end());
  report.fabric_nodes = std::max(kMinRingNodes, 2 * max_clients);

  // Setup and the final count go through a channel of their own.
  std::shared_ptr<grpc::Channel> admin_channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::FabricService::Stub> admin =
      v1::FabricService::NewStub(admin_channel);
  if (absl::Status s = CreateBenchFabric(*admin, report.fabric_nodes);
      !s.ok()) {
    return s;
  }

  for (ClientsIn where : modes) {
    LocalClients local(&errors, "bench-");
    ClientSet& clients =
        where == ClientsIn::kSame ? static_cast<ClientSet&>(local) : *child;
    const bool same = where == ClientsIn::kSame;
    if (absl::Status s = clients.Connect(address, max_clients); !s.ok()) {
      return s;
    }
    for (int n : flags.clients) {
      LevelResult l;
      l.clients_in = where;
      l.clients = n;
      absl::StatusOr<PhaseResult> ping =
          MeasurePhase(clients, Phase::kPing, n, flags.duration, same);
      if (!ping.ok()) return ping.status();
      l.ping = *ping;
      const store::StoreStats before = store->stats();
      double unused_cpu_s = 0;
      store->TakeApplyLatencies(&unused_cpu_s);
      absl::StatusOr<PhaseResult> alloc =
          MeasurePhase(clients, Phase::kAllocate, n, flags.duration, same);
      if (!alloc.ok()) return alloc.status();
      l.alloc = *alloc;
      const store::StoreStats after = store->stats();
      double store_cpu_s = 0;
      const std::vector<double> apply_us =
          store->TakeApplyLatencies(&store_cpu_s);
      if (l.alloc.all_rpcs > 0) {
        l.store_cpu_us = store_cpu_s * 1e6 / l.alloc.all_rpcs;
      }
      l.apply_p50_us = Percentile(apply_us, 50);
      l.apply_p99_us = Percentile(apply_us, 99);
      l.store_batches = after.batches - before.batches;
      l.store_commits = after.commits - before.commits;
      report.levels.push_back(l);
    }
  }
  child.reset();

  const store::StoreStats stats = store->stats();
  report.store_batches = stats.batches;
  report.store_commits = stats.commits;
  report.rpc_errors = errors.count();
  report.error_samples = errors.shown();
  absl::StatusOr<int> left = CountAllocations(*admin);
  if (!left.ok()) return left.status();
  report.allocations_left = *left;
  report.invariants = (*manager)->CheckInvariants();

  admin.reset();
  admin_channel.reset();
  (*server)->Shutdown();
  (*manager)->Shutdown();
  server->reset();
  manager->reset();
  store.reset();
  sqlite->reset();

  absl::StatusOr<RecomputeResult> recompute =
      MeasureRecompute(flags.ring_nodes, flags.repeat);
  if (!recompute.ok()) return recompute.status();
  report.recompute = *recompute;
  return absl::OkStatus();
}

// ------------------------------------------------ --tls, --store etcd --

// One side of a comparison: a fabric-manager process and the clients
// connected to it.
struct Transport {
  const char* name;  // "plaintext", "mTLS", "SQLite", "etcd"
  const char* file;  // its store and log: DIR/FILE.db, DIR/FILE.log
  std::vector<std::string> manager_flags;
  // False when manager_flags name the store (--store etcd://...): no --db.
  bool sqlite = true;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::unique_ptr<proctest::Manager> manager;
  std::string address;
  std::unique_ptr<LocalClients> clients;
  // The durable transactions its store made so far (etcd: the cluster's
  // revision), to show how many RPCs one carried; null when not known.
  std::function<absl::StatusOr<int64_t>()> transactions;
  // CPU time (seconds so far) of the processes its store runs in besides
  // the manager (etcd: the cluster's members); null when there are none.
  std::function<double()> store_cpu_seconds;
};

// The medians over rounds of one phase at one level, for both sides: the
// baseline (plaintext; SQLite) and the other (mTLS; etcd).
struct PairRow {
  int clients = 0;
  Phase phase = Phase::kPing;
  double base_rps = 0, base_p99_us = 0;
  double other_rps = 0, other_p99_us = 0;
  // CPU time per RPC (warm-up included), microseconds: the manager
  // process's and the client threads'. On a shared machine these are
  // steadier than throughput, which also moves with what else runs.
  double base_server_us = 0, base_client_us = 0;
  double other_server_us = 0, other_client_us = 0;
  // CPU time per RPC of the other side's store processes (etcd's members,
  // all on this machine); 0 when it has none.
  double other_store_us = 0;
  // RPCs per durable transaction of the other side, allocate+release only
  // (warm-up included); 0 when not known.
  double other_rpcs_per_txn = 0;
  double Ratio() const { return base_rps > 0 ? other_rps / base_rps : 0; }
  // Baseline CPU per RPC over the other's CPU per RPC (server + clients +
  // store processes): the throughput ratio a CPU-bound machine would show.
  double CpuRatio() const {
    const double other = other_server_us + other_client_us + other_store_us;
    return other > 0 ? (base_server_us + base_client_us) / other : 0;
  }
};

// What a comparison is called in its output, and its target.
struct PairLabels {
  const char* title;      // the table's first line
  const char* mode;       // JSON "mode"
  const char* base;       // column names
  const char* other;
  const char* base_key;   // JSON key prefixes
  const char* other_key;
  double target_ratio;    // other/base throughput at kTargetClients
  bool target_alloc_only; // the target holds for allocate+release only
};

const PairLabels kTlsLabels = {
    .title = "fabric-bench --tls: mTLS against plaintext",
    .mode = "tls",
    .base = "plain",
    .other = "mTLS",
    .base_key = "plain",
    .other_key = "tls",
    .target_ratio = kTargetTlsRatio,
    .target_alloc_only = false};
const PairLabels kEtcdLabels = {
    .title = "fabric-bench --store etcd: a manager on etcd against one on "
             "SQLite",
    .mode = "etcd",
    .base = "SQLite",
    .other = "etcd",
    .base_key = "sqlite",
    .other_key = "etcd",
    .target_ratio = kTargetEtcdRatio,
    .target_alloc_only = true};

struct PairReport {
  PairLabels labels = kTlsLabels;
  int etcd_members = 0;  // --store etcd
  absl::Duration duration;
  int rounds = 0;
  int fabric_nodes = 0;
  std::vector<PairRow> rows;
  uint64_t rpc_errors = 0;
  std::vector<std::string> error_samples;
  int allocations_left = 0;  // on both managers
  bool Failed() const { return rpc_errors > 0 || allocations_left > 0; }
  // "true", "false", or "null" when no level had kTargetClients.
  std::string TargetMetJson() const {
    bool any = false, met = true;
    for (const PairRow& r : rows) {
      if (r.clients != kTargetClients) continue;
      if (labels.target_alloc_only && r.phase != Phase::kAllocate) continue;
      any = true;
      met = met && r.Ratio() >= labels.target_ratio;
    }
    return any ? (met ? "true" : "false") : "null";
  }
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// CPU time (user + system) of process `pid` so far, in seconds
// (/proc/PID/stat); 0 where it cannot be read.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // The fields after the command name, which may hold spaces: state is
  // field 3, utime 14 and stime 15.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ');
  uint64_t utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) ||
      !absl::SimpleAtoi(f[12], &stime)) {
    return 0;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Starts `t`'s manager (store and log in `dir`), declares the bench fabric
// and connects `max_clients` clients, each on its own established
// connection.
absl::Status StartTransport(const Flags& flags, const std::string& dir,
                            int fabric_nodes, int max_clients, ErrorLog* errors,
                            Transport& t) {
  const std::string base = absl::StrCat(dir, "/", t.file);
  std::vector<std::string> manager_flags = t.manager_flags;
  manager_flags.insert(manager_flags.end(), flags.manager_flags.begin(),
                       flags.manager_flags.end());
  t.manager = std::make_unique<proctest::Manager>(
      proctest::StartManagerAt(flags.bin_dir + "/fabric-manager", 0,
                               t.sqlite ? base + ".db" : "", base + ".log",
                               manager_flags));
  if (t.manager->port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("the ", t.name, " fabric-manager did not start; its log ",
                     base, ".log:\n", proctest::ReadFile(base + ".log")));
  }
  t.address = absl::StrCat("127.0.0.1:", t.manager->port);
  auto admin =
      v1::FabricService::NewStub(grpc::CreateChannel(t.address, t.credentials));
  // An HA manager serves once it is elected; a standby answers UNAVAILABLE.
  proctest::WaitFor(
      [&] {
        v1::PingResponse pong;
        auto ctx = NewContext();
        return admin->Ping(ctx.get(), v1::PingRequest(), &pong).ok();
      },
      absl::Seconds(20), absl::Milliseconds(20));
  if (absl::Status s = CreateBenchFabric(*admin, fabric_nodes); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(t.name, ": ", s.message()));
  }
  // Owner "": the caller's identity over mTLS, none in plaintext; the same
  // work either way.
  t.clients = std::make_unique<LocalClients>(
      errors, absl::StrCat("bench-", t.file, "-"), t.credentials, "");
  return t.clients->Connect(t.address, max_clients);
}

// Measures `base` against `other` into `report`: starts both (stores and
// logs in `dir`), then for each level and phase makes --rounds runs on each
// side, alternating who goes first (drift on a shared machine hits both
// alike), then counts the allocations left on both. Errors are setup
// failures.
absl::Status ComparePair(const Flags& flags, const std::string& dir,
                         Transport& base, Transport& other,
                         PairReport& report) {
  report.duration = flags.duration;
  report.rounds = flags.rounds;
  const int max_clients =
      *std::max_element(flags.clients.begin(), flags.clients.end());
  report.fabric_nodes = std::max(kMinRingNodes, 2 * max_clients);
  ErrorLog errors;
  for (Transport* t : {&base, &other}) {
    RETURN_IF_ERROR(StartTransport(flags, dir, report.fabric_nodes,
                                   max_clients, &errors, *t));
  }
  for (int n : flags.clients) {
    for (Phase phase : {Phase::kPing, Phase::kAllocate}) {
      // [0] the baseline, [1] the other.
      std::vector<double> rps[2], p99[2], server_us[2], client_us[2], per_txn,
          store_us;
      for (int round = 0; round < flags.rounds; ++round) {
        for (int k = 0; k < 2; ++k) {
          const int which = (round + k) % 2;  // alternate who goes first
          Transport& t = which == 0 ? base : other;
          const double server0 = ProcessCpuSeconds(t.manager->child.pid());
          const double store0 =
              t.store_cpu_seconds != nullptr ? t.store_cpu_seconds() : 0;
          int64_t txn0 = 0;
          if (t.transactions != nullptr) {
            ASSIGN_OR_RETURN(txn0, t.transactions());
          }
          absl::StatusOr<PhaseResult> r =
              t.clients->Run(phase, n, flags.duration);
          if (!r.ok()) return r.status();
          if (t.transactions != nullptr && phase == Phase::kAllocate) {
            ASSIGN_OR_RETURN(const int64_t txn1, t.transactions());
            if (txn1 > txn0) {
              per_txn.push_back(static_cast<double>(r->all_rpcs) /
                                (txn1 - txn0));
            }
          }
          const double server_s =
              ProcessCpuSeconds(t.manager->child.pid()) - server0;
          rps[which].push_back(r->rps);
          p99[which].push_back(r->p99_us);
          const double rpcs = std::max<double>(r->all_rpcs, 1);
          server_us[which].push_back(server_s * 1e6 / rpcs);
          client_us[which].push_back(r->client_cpu_s * 1e6 / rpcs);
          if (t.store_cpu_seconds != nullptr) {
            store_us.push_back((t.store_cpu_seconds() - store0) * 1e6 / rpcs);
          }
        }
      }
      report.rows.push_back({.clients = n,
                             .phase = phase,
                             .base_rps = Median(rps[0]),
                             .base_p99_us = Median(p99[0]),
                             .other_rps = Median(rps[1]),
                             .other_p99_us = Median(p99[1]),
                             .base_server_us = Median(server_us[0]),
                             .base_client_us = Median(client_us[0]),
                             .other_server_us = Median(server_us[1]),
                             .other_client_us = Median(client_us[1]),
                             .other_store_us = Median(store_us),
                             .other_rpcs_per_txn = Median(per_txn)});
    }
  }
  report.rpc_errors = errors.count();
  report.error_samples = errors.shown();
  for (Transport* t : {&base, &other}) {
    t->clients.reset();
    auto admin = v1::FabricService::NewStub(
        grpc::CreateChannel(t->address, t->credentials));
    absl::StatusOr<int> left = CountAllocations(*admin);
    if (!left.ok()) return left.status();
    report.allocations_left += *left;
  }
  return absl::OkStatus();
}

// Runs the --tls comparison into `report`. Errors are setup failures.
absl::Status RunTls(const Flags& flags, PairReport& report) {
  report.labels = kTlsLabels;

  absl::StatusOr<std::unique_ptr<security::TestPki>> pki =
      security::TestPki::Create();
  if (!pki.ok()) return pki.status();
  const security::TlsConfig manager_tls = (*pki)->Issue("manager", "m1");
  const security::TlsConfig user_tls = (*pki)->Issue("user", "bench", "admin");
  proctest::TempDir dir;

  Transport plain{.name = "plaintext",
                  .file = "plain",
                  .manager_flags = {"--insecure"},
                  .credentials = grpc::InsecureChannelCredentials()};
  Transport tls{
      .name = "mTLS",
      .file = "tls",
      .manager_flags = {"--tls-cert", manager_tls.cert_file, "--tls-key",
                        manager_tls.key_file, "--tls-ca", manager_tls.ca_file},
      .credentials = security::ChannelCredentials(
          user_tls, security::PeerRequirement::AnyManager())};

  return ComparePair(flags, dir.path(), plain, tls, report);
}

// The etcd cluster's current revision: one more for every Txn that wrote.
absl::StatusOr<int64_t> EtcdRevision(
    etcdserverpb::KV::Stub& kv, const store::EtcdClientOptions& options) {
  etcdserverpb::RangeRequest req;
  req.set_key("\0", 1);
  req.set_limit(1);
  req.set_count_only(true);
  etcdserverpb::RangeResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(store::EtcdDeadline(options));
  grpc::Status s = kv.Range(&ctx, req, &resp);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("etcd Range: ", s.error_message()));
  }
  return resp.header().revision();
}

// Runs the --store etcd comparison into `report`: a fabric-manager on a
// 3-member etcd (HA mode, the only manager on its prefix: it leads, and
// every Txn carries its fence) against one on SQLite. Errors are setup
// failures.
absl::Status RunEtcd(const Flags& flags, PairReport& report) {
  report.labels = kEtcdLabels;

  ASSIGN_OR_RETURN(std::unique_ptr<etcdtest::EtcdCluster> etcd,
                   etcdtest::EtcdCluster::Start(flags.etcd_members));
  report.etcd_members = flags.etcd_members;
  ASSIGN_OR_RETURN(const store::EtcdUrl url,
                   store::ParseEtcdUrl(etcd->StoreUrl("/bench")));
  store::EtcdClientOptions etcd_options;
  etcd_options.endpoints = url.endpoints;
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> etcd_channel,
                   store::DialEtcd(etcd_options));
  std::unique_ptr<etcdserverpb::KV::Stub> kv =
      etcdserverpb::KV::NewStub(etcd_channel);
  proctest::TempDir dir;

  Transport sqlite{.name = "SQLite",
                   .file = "sqlite",
                   .manager_flags = {"--insecure"},
                   .credentials = grpc::InsecureChannelCredentials()};
  Transport on_etcd{
      .name = "etcd",
      .file = "etcd",
      .manager_flags = {"--insecure", "--store", etcd->StoreUrl("/bench"),
                        "--audit-log", dir.path() + "/etcd.audit.log"},
      .sqlite = false,
      .credentials = grpc::InsecureChannelCredentials(),
      .transactions = [&] { return EtcdRevision(*kv, etcd_options); },
      .store_cpu_seconds =
          [&] {
            double s = 0;
            for (int i = 0; i < etcd->size(); ++i) {
              if (etcd->running(i)) s += ProcessCpuSeconds(etcd->pid(i));
            }
            return s;
          }};
  return ComparePair(flags, dir.path(), sqlite, on_etcd, report);
}

const char* PhaseName(Phase phase) {
  return phase == Phase::kPing ? "ping" : "alloc+release";
}

void PrintPairTable(const PairReport& r) {
  const PairLabels& k = r.labels;
  absl::PrintF(
      "%s%s, two fabric-manager processes; %s per phase after %s warm-up, "
      "median of %d rounds; ring of %d nodes; connections established before "
      "measuring\n\n",
      k.title,
      r.etcd_members > 0
          ? absl::StrCat(" (", r.etcd_members, " etcd member",
                         r.etcd_members == 1 ? "" : "s", " on this machine)")
          : "",
      absl::FormatDuration(r.duration), absl::FormatDuration(kWarmup),
      r.rounds, r.fabric_nodes);
  const bool per_txn = absl::c_any_of(
      r.rows, [](const PairRow& row) { return row.other_rpcs_per_txn > 0; });
  const bool store_cpu = absl::c_any_of(
      r.rows, [](const PairRow& row) { return row.other_store_us > 0; });
  absl::PrintF("%7s %-13s | %11s %11s %6s | %12s %12s | %15s %*s %6s%s\n",
               "clients", "phase", absl::StrCat(k.base, " rpc/s"),
               absl::StrCat(k.other, " rpc/s"), "ratio",
               absl::StrCat(k.base, " p99 us"),
               absl::StrCat(k.other, " p99 us"),
               absl::StrCat(k.base, " cpu us"), store_cpu ? 24 : 15,
               absl::StrCat(k.other, " cpu us"), "cpu r.",
               per_txn ? absl::StrCat(" | ", k.other, " rpcs/txn") : "");
  for (const PairRow& row : r.rows) {
    absl::PrintF(
        "%7d %-13s | %11.0f %11.0f %6.2f | %12.0f %12.0f | %6.1f + %6.1f "
        "%6.1f + %6.1f%s %6.2f%s\n",
        row.clients, PhaseName(row.phase), row.base_rps, row.other_rps,
        row.Ratio(), row.base_p99_us, row.other_p99_us, row.base_server_us,
        row.base_client_us, row.other_server_us, row.other_client_us,
        store_cpu ? absl::StrFormat(" + %6.1f", row.other_store_us) : "",
        row.CpuRatio(),
        per_txn && row.phase == Phase::kAllocate
            ? absl::StrFormat(" | %13.1f", row.other_rpcs_per_txn)
            : "");
  }
  absl::PrintF(
      "(ratio: %s/%s throughput; alloc+release counts each allocate and each "
      "release; cpu us: CPU time per RPC, manager process + client threads%s; "
      "cpu r.: %s/%s CPU per RPC, the throughput ratio of a CPU-bound "
      "machine%s)\n\n",
      k.other, k.base,
      store_cpu ? absl::StrCat(" (+ ", k.other,
                               "'s own processes: its members, on this "
                               "machine too)")
                : "",
      k.base, k.other,
      per_txn ? absl::StrCat("; rpcs/txn: allocate and release RPCs per ",
                             k.other, " transaction, warm-up included")
              : "");
  absl::PrintF("rpc errors: %d, allocations left: %d\n", r.rpc_errors,
               r.allocations_left);
  for (const auto& e : r.error_samples) absl::PrintF("  error: %s\n", e);
  const std::string met = r.TargetMetJson();
  absl::PrintF(
      "target met (%s >= %.2fx %s throughput%s at %d clients): %s\n", k.other,
      k.target_ratio, k.base, k.target_alloc_only ? " of alloc+release" : "",
      kTargetClients,
      met == "null"   ? "n/a (not run)"
      : met == "true" ? "yes"
                      : "no");
}

void PrintPairJson(const PairReport& r) {
  const PairLabels& k = r.labels;
  std::vector<std::string> rows;
  for (const PairRow& row : r.rows) {
    rows.push_back(absl::StrCat(
        absl::StrFormat("{\"clients\":%d,\"phase\":\"%s\",", row.clients,
                        row.phase == Phase::kPing ? "ping" : "alloc"),
        absl::StrFormat("\"%s_rps\":%.1f,\"%s_rps\":%.1f,\"ratio\":%.3f,",
                        k.base_key, row.base_rps, k.other_key, row.other_rps,
                        row.Ratio()),
        absl::StrFormat("\"%s_p99_us\":%.1f,\"%s_p99_us\":%.1f,", k.base_key,
                        row.base_p99_us, k.other_key, row.other_p99_us),
        absl::StrFormat("\"%s_server_cpu_us\":%.2f,\"%s_client_cpu_us\":%.2f,",
                        k.base_key, row.base_server_us, k.base_key,
                        row.base_client_us),
        absl::StrFormat("\"%s_server_cpu_us\":%.2f,\"%s_client_cpu_us\":%.2f,",
                        k.other_key, row.other_server_us, k.other_key,
                        row.other_client_us),
        row.other_rpcs_per_txn > 0
            ? absl::StrFormat("\"%s_rpcs_per_txn\":%.2f,", k.other_key,
                              row.other_rpcs_per_txn)
            : "",
        row.other_store_us > 0
            ? absl::StrFormat("\"%s_store_cpu_us\":%.2f,", k.other_key,
                              row.other_store_us)
            : "",
        absl::StrFormat("\"cpu_ratio\":%.3f}", row.CpuRatio())));
  }
  std::vector<std::string> errors;
  for (const auto& e : r.error_samples) errors.push_back(JsonString(e));
  absl::PrintF(
      "{\"mode\":\"%s\",%s\"duration_s\":%.3f,\"rounds\":%d,"
      "\"fabric_nodes\":%d,\"rows\":[%s],\"rpc_errors\":%d,"
      "\"rpc_error_samples\":[%s],\"allocations_left\":%d,"
      "\"target_met\":%s}\n",
      k.mode,
      r.etcd_members > 0
          ? absl::StrFormat("\"etcd_members\":%d,", r.etcd_members)
          : "",
      absl::ToDoubleSeconds(r.duration), r.rounds, r.fabric_nodes,
      absl::StrJoin(rows, ","), r.rpc_errors, absl::StrJoin(errors, ","),
      r.allocations_left, r.TargetMetJson());
}

int Main(int argc, char** argv) {
  Flags flags;
  std::string duration = "2s";
  std::string clients = "1,8,32";
  CLI::App app{
      "Measures durable allocate+release throughput against a no-op RPC over "
      "loopback gRPC, and the address-map recompute time of a large ring."};
  app.add_option("--duration", duration,
                 "Measured time of each phase, e.g. 2s or 500ms (plus 0.3 s "
                 "warm-up)")
      ->capture_default_str();
  app.add_option("--clients", clients,
                 "Comma-separated concurrency levels")
      ->capture_default_str();
  app.add_option("-o,--output", flags.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--ring-nodes", flags.ring_nodes,
                 "Nodes of the ring whose address map is recomputed")
      ->check(CLI::Range(2, core::kMaxNodes))
      ->capture_default_str();
  app.add_option("--repeat", flags.repeat, "Recompute runs for the median")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--clients-in", flags.clients_in,
                 "Where the client threads run: in the server's process "
                 "(same), in a child process (child), or each level both ways")
      ->check(CLI::IsMember({"same", "child", "both"}))
      ->capture_default_str();
  bool client_process = false;
  // Internal: the child that --clients-in=child starts.
  app.add_flag("--client-process", client_process)->group("");
  app.add_option("--dir", flags.dir,
                 "Where to create the temporary database directory (default "
                 "$TMPDIR or /tmp)");
  app.add_flag("--tls", flags.tls,
               "Instead: mutual TLS against plaintext throughput and p99, "
               "on two fabric-manager processes (see --bin-dir)");
  flags.bin_dir = proctest::ExecutableDir();
  app.add_option("--bin-dir", flags.bin_dir,
                 "--tls, --store etcd: the directory of fabric-manager")
      ->capture_default_str();
  app.add_option("--store", flags.store,
                 "etcd: instead, a fabric-manager on a 3-member etcd (started "
                 "here) against one on SQLite, throughput and p99 (see "
                 "--bin-dir, --rounds)")
      ->check(CLI::IsMember({"sqlite", "etcd"}))
      ->capture_default_str();
  app.add_option("--etcd-members", flags.etcd_members,
                 "--store etcd: members of the etcd cluster started here; 3 "
                 "(the default) is what HA needs, and on one machine triples "
                 "etcd's CPU per transaction on the cores the manager and "
                 "the clients use too")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  app.add_option("--manager-flag", flags.manager_flags,
                 "--tls, --store etcd: a flag for every fabric-manager "
                 "process, after the bench's own (repeat it; e.g. "
                 "--manager-flag=--max-request-ids=1000)")
      ->allow_extra_args(false);
  app.add_option("--rounds", flags.rounds,
                 "--tls, --store etcd: measurements of each phase per transport; the "
                 "median is shown")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // As fabric-manager runs: without lock-order cycle detection.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (client_process) return ClientProcessMain();

  double seconds = 0;
  if (absl::SimpleAtod(duration, &seconds)) {
    flags.duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(duration, &flags.duration)) {
    absl::FPrintF(stderr, "--duration: \"%s\" is not a duration like 2s\n",
                  duration);
    return 2;
  }
  if (flags.duration <= absl::ZeroDuration()) {
    absl::FPrintF(stderr, "--duration: must be positive, got %s\n", duration);
    return 2;
  }
  flags.clients.clear();
  for (absl::string_view part : absl::StrSplit(clients, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1 || n > 1024) {
      absl::FPrintF(stderr,
                    "--clients: \"%s\" is not a number from 1 to 1024\n",
                    part);
      return 2;
    }
    flags.clients.push_back(n);
  }

  if (flags.tls && flags.store != "sqlite") {
    absl::FPrintF(stderr, "fabric-bench: give --tls or --store etcd, not both\n");
    return 2;
  }
  if (flags.tls || flags.store == "etcd") {
    const char* mode = flags.tls ? "--tls" : "--store etcd";
    PairReport report;
    absl::Status s = flags.tls ? RunTls(flags, report) : RunEtcd(flags, report);
    if (!s.ok()) {
      absl::FPrintF(stderr, "fabric-bench %s: %s\n", mode, s.ToString());
      return 2;
    }
    if (flags.output == "json") {
      PrintPairJson(report);
    } else {
      PrintPairTable(report);
    }
    if (report.Failed()) {
      absl::FPrintF(stderr,
                    "fabric-bench %s: FAILED: %d rpc errors, %d "
                    "allocations left\n",
                    mode, report.rpc_errors, report.allocations_left);
      return 1;
    }
    return 0;
  }

  Report report;
  absl::Status s = Run(flags, report);
  if (!s.ok()) {
    absl::FPrintF(stderr, "fabric-bench: %s\n", s.ToString());
    return 2;
  }
  if (flags.output == "json") {
    PrintJson(report);
  } else {
    PrintTable(report);
  }
  if (report.Failed()) {
    absl::FPrintF(stderr,
                  "fabric-bench: FAILED: %d rpc errors, %d allocations left, "
                  "invariants: %s\n",
                  report.rpc_errors, report.allocations_left,
                  report.invariants.ToString());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fabric::bench

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();  // as the programs measured
  return fabric::bench::Main(argc, argv);
}
