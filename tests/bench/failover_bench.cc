// fabric-failover-bench: how long a fabric is without a leader when its
// leader dies (issue 14 §5).
//
// Starts a 3-member etcd on loopback (tests/etcd's EtcdCluster) and two
// fabric-manager processes from --bin-dir on one prefix (--store
// etcd://.../failover --lease-ttl TTL, plaintext), declares a 4-node ring,
// and then --kills times:
//   1. finds the leader (the manager whose Ping succeeds) and makes sure the
//      other answers as a standby naming it (it is a candidate);
//   2. kills the leader with SIGKILL;
//   3. from the kill, retries CreateAllocation with one request id through
//      a FabricClient over both addresses (it follows the leader), every
//      --retry-every, until one is acknowledged: that is the failover time.
//      The client is made just before the kill (connections to both
//      managers, neither yet refused), so the figure is the managers';
//      with --keep-client one client serves every kill, and its connection
//      to a manager that was down carries its reconnect backoff into the
//      next failover, as a long-lived caller's would (FabricClient's own
//      channels reconnect within 250 ms). A manager going from standby to
//      leader never closes its port (its leader's server binds it before
//      the standby's lets go, server/ha/ha_manager.h); --reconnect-backoff
//      gives the client channels of its own with a fixed backoff instead of
//      FabricClient's, to show what the backoff costs;
//   4. releases the allocation (with a request id) and restarts the killed
//      manager on its port, where it comes back as a standby.
// The figures: p50, p99 and max failover time. The target: p99 under twice
// the lease TTL (a killed leader's lease runs out after at most one TTL;
// the rest is the election, loading the state, and the client finding the
// new leader).
//
// Exits 1 if a failover did not finish within --give-up or an allocation is
// left at the end (a retried create applied twice would be); 2 on bad flags
// or setup failure. Missing the target is reported ("target met: no"), not
// an error.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/fabric_client.h"
#include "common/leader_channel.h"
#include "common/mutex_mode.h"
#include "common/status_macros.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "tests/bench/bench_util.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"

namespace fabric::bench {
namespace {

constexpr int kManagers = 2;
constexpr int kFabricNodes = 4;
constexpr uint64_t kAllocationSize = 1ull << 20;

struct Flags {
  int kills = 20;
  absl::Duration lease_ttl = absl::Seconds(2);
  absl::Duration retry_every = absl::Milliseconds(10);
  absl::Duration give_up = absl::Seconds(30);
  std::string bin_dir;
  std::string output = "table";
  // One client for the whole run, instead of a new one per kill.
  bool keep_client = false;
  // When positive, the client's channels reconnect after this long (gRPC's
  // initial, min and max reconnect backoff); else FabricClient's (100-250 ms).
  absl::Duration reconnect_backoff = absl::ZeroDuration();
};

struct Report {
  std::vector<double> failover_ms;  // one per kill, in order
  int allocations_left = 0;
  // Why a failover did not finish (the run stops there); "" when all did.
  std::string failure;
  double P(double p) const { return Percentile(failover_ms, p); }
  double Max() const {
    return failover_ms.empty()
               ? 0
               : *std::max_element(failover_ms.begin(), failover_ms.end());
  }
};

// The managers of one fabric, each on a fixed port, and a client that
// follows their leader.
class Managers {
 public:
  Managers(const Flags& flags, std::string store_url, std::string dir)
      : flags_(flags), store_url_(std::move(store_url)), dir_(std::move(dir)) {}

  // Starts manager i (on its old port when it ran before).
  absl::Status Start(int i) {
    const std::string log = LogPath(i);
    const std::vector<std::string> extra = {
        "--insecure",
        "--store",
        store_url_,
        "--lease-ttl",
        absl::StrCat(absl::ToInt64Seconds(flags_.lease_ttl), "s"),
        "--audit-log",
        absl::StrCat(dir_, "/manager", i, ".audit.log")};
    managers_[i].emplace(proctest::StartManagerAt(
        flags_.bin_dir + "/fabric-manager", ports_[i], "", log, extra));
    if (managers_[i]->port <= 0) {
      return absl::UnavailableError(
          absl::StrCat("manager ", i, " did not start; its log ", log, ":\n",
                       proctest::ReadFile(log)));
    }
    ports_[i] = managers_[i]->port;
    return absl::OkStatus();
  }

  // Kills manager i with SIGKILL; Reap() collects it.
  void Kill(int i) { managers_[i]->child.Signal(SIGKILL); }
  void Reap(int i) {
    managers_[i]->child.Wait();
    managers_[i].reset();
  }

  std::string LogPath(int i) const {
    return absl::StrCat(dir_, "/manager", i, ".log");
  }

  std::string Address(int i) const {
    return absl::StrCat("127.0.0.1:", ports_[i]);
  }
  std::string Addresses() const {
    std::vector<std::string> all;
    for (int i = 0; i < kManagers; ++i) all.push_back(Address(i));
    return absl::StrJoin(all, ",");
  }

  // Pings manager i: OK from the leader; a standby's UNAVAILABLE names the
  // leader in *leader.
  grpc::Status Ping(int i, std::optional<std::string>* leader = nullptr) {
    auto stub = v1::FabricService::NewStub(
        grpc::CreateChannel(Address(i), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    v1::PingResponse pong;
    grpc::Status s = stub->Ping(&ctx, v1::PingRequest(), &pong);
    if (leader != nullptr) *leader = LeaderOf(ctx);
    return s;
  }

  // Waits until one manager leads and the other answers as its standby;
  // returns the leader's index.
  absl::StatusOr<int> WaitLeaderAndStandby() {
    int leader = -1;
    const bool ok = proctest::WaitFor(
        [&] {
          for (int i = 0; i < kManagers; ++i) {
            if (!Ping(i).ok()) continue;
            std::optional<std::string> named;
            const grpc::Status other = Ping(1 - i, &named);
            if (IsStandbyAnswer(other) && named == Address(i)) {
              leader = i;
              return true;
            }
          }
          return false;
        },
        absl::Seconds(30), absl::Milliseconds(20));
    if (!ok) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no leader with a standby within 30 s; the logs are in ", dir_));
    }
    return leader;
  }

 private:
  const Flags& flags_;
  const std::string store_url_;
  const std::string dir_;
  std::array<int, kManagers> ports_ = {0, 0};
  std::array<std::optional<proctest::Manager>, kManagers> managers_;
};

absl::Status CreateFabric(client::FabricClient& client) {
  v1::CreateFabricRequest req;
  v1::FabricSpec* spec = req.mutable_spec();
  spec->set_name("failover");
  spec->set_topology(v1::RING);
  spec->set_default_profile("sim");
  for (int i = 0; i < kFabricNodes; ++i) {
    spec->add_nodes()->set_name(absl::StrCat("n", i));
  }
  req.set_request_id("failover-create-fabric");
  return client.CreateFabric(req).status();
}

// Retries the create `req` (one request id) every flags.retry_every until
// it is acknowledged or flags.give_up passed since `start`.
absl::StatusOr<v1::Allocation> CreateUntilAcknowledged(
    const Flags& flags, client::FabricClient& client,
    const v1::CreateAllocationRequest& req, Clock::time_point start,
    std::vector<std::string>* attempts) {
  const auto give_up = start + absl::ToChronoNanoseconds(flags.give_up);
  absl::Status last;
  while (Clock::now() < give_up) {
    const auto t0 = Clock::now();
    absl::StatusOr<v1::Allocation> created = client.CreateAllocation(req);
    if (created.ok()) return created;
    // Each new error, with when its attempt started and ended.
    if (created.status() != last) {
      attempts->push_back(absl::StrFormat(
          "%.0f-%.0f ms: %s", Micros(t0 - start) / 1000,
          Micros(Clock::now() - start) / 1000, created.status().ToString()));
    }
    last = created.status();
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(flags.retry_every));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no acknowledged write within ",
                   absl::FormatDuration(flags.give_up),
                   " of the kill; last error: ", last.ToString()));
}

absl::StatusOr<int> CountAllocations(client::FabricClient& client) {
  ASSIGN_OR_RETURN(std::vector<v1::Allocation> all,
                   client.ListAllocations(v1::ListAllocationsRequest()));
  return static_cast<int>(all.size());
}

absl::Status Run(const Flags& flags, Report& report) {
  ASSIGN_OR_RETURN(std::unique_ptr<etcdtest::EtcdCluster> etcd,
                   etcdtest::EtcdCluster::Start(3));
  proctest::TempDir dir;
  Managers managers(flags, etcd->StoreUrl("/failover"), dir.path());
  for (int i = 0; i < kManagers; ++i) RETURN_IF_ERROR(managers.Start(i));
  ASSIGN_OR_RETURN(int leader, managers.WaitLeaderAndStandby());

  // One attempt per call (the loop above retries, at a fixed pace), each
  // short enough that a dead address does not hold it up.
  client::FabricClient::Options options;
  options.timeout = absl::Seconds(1);
  options.max_attempts = 2;
  options.retry_backoff = absl::ZeroDuration();
  security::TlsConfig plaintext;
  plaintext.insecure = true;
  auto connect = [&]() -> std::unique_ptr<client::FabricClient> {
    if (flags.reconnect_backoff <= absl::ZeroDuration()) {
      return client::FabricClient::Connect(managers.Addresses(), plaintext,
                                           options);
    }
    const int backoff_ms =
        static_cast<int>(absl::ToInt64Milliseconds(flags.reconnect_backoff));
    auto leader = std::make_shared<LeaderChannel>(
        std::vector<std::string>{managers.Address(0), managers.Address(1)},
        [backoff_ms](const std::string& target) {
          grpc::ChannelArguments args;
          args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, backoff_ms);
          args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, backoff_ms);
          args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff_ms);
          return grpc::CreateCustomChannel(
              target, grpc::InsecureChannelCredentials(), args);
        });
    return std::make_unique<client::FabricClient>(
        std::move(leader), managers.Addresses(), options);
  };
  std::unique_ptr<client::FabricClient> client = connect();
  RETURN_IF_ERROR(CreateFabric(*client));

  for (int kill = 0; kill < flags.kills; ++kill) {
    v1::CreateAllocationRequest create;
    create.mutable_allocation()->set_borrower("n0");
    create.mutable_allocation()->set_target("n1");
    create.mutable_allocation()->set_size(kAllocationSize);
    create.set_request_id(absl::StrCat("failover-create-", kill));

    // A client of its own per kill unless --keep-client (see the top).
    if (!flags.keep_client) client = connect();
    std::array<size_t, kManagers> log_size;
    for (int i = 0; i < kManagers; ++i) {
      log_size[i] = proctest::ReadFile(managers.LogPath(i)).size();
    }
    std::vector<std::string> attempts;
    const Clock::time_point killed_at = Clock::now();
    managers.Kill(leader);
    absl::StatusOr<v1::Allocation> created =
        CreateUntilAcknowledged(flags, *client, create, killed_at, &attempts);
    const Clock::time_point acknowledged_at = Clock::now();
    managers.Reap(leader);
    if (!created.ok()) {
      report.failure =
          absl::StrCat("kill ", kill + 1, ": ", created.status().ToString());
      return absl::OkStatus();
    }
    report.failover_ms.push_back(Micros(acknowledged_at - killed_at) / 1000);
    if (report.failover_ms.back() >=
        2 * absl::ToDoubleMilliseconds(flags.lease_ttl)) {
      // What the managers said meanwhile, to tell why.
      absl::FPrintF(stderr, "kill %d (manager %d): %.0f ms\n", kill + 1,
                    leader, report.failover_ms.back());
      for (const std::string& a : attempts) {
        absl::FPrintF(stderr, "  attempt %s\n", a);
      }
      for (int i = 0; i < kManagers; ++i) {
        absl::FPrintF(stderr, "  manager %d's log since the kill:\n%s", i,
                      proctest::ReadFile(managers.LogPath(i))
                          .substr(log_size[i]));
      }
    }

    v1::DeleteAllocationRequest release;
    release.set_name(created->name());
    release.set_request_id(absl::StrCat("failover-release-", kill));
    RETURN_IF_ERROR(client->DeleteAllocation(release).status());
    RETURN_IF_ERROR(managers.Start(leader));
    ASSIGN_OR_RETURN(leader, managers.WaitLeaderAndStandby());
  }
  if (report.failure.empty()) {
    ASSIGN_OR_RETURN(report.allocations_left, CountAllocations(*client));
  }
  return absl::OkStatus();
}

bool TargetMet(const Flags& flags, const Report& r) {
  return r.P(99) < 2 * absl::ToDoubleMilliseconds(flags.lease_ttl);
}

void PrintTable(const Flags& flags, const Report& r) {
  absl::PrintF(
      "fabric-failover-bench: %d leader kills (SIGKILL), 2 fabric-manager "
      "processes on a 3-member etcd, lease TTL %s; from the kill to the first "
      "acknowledged CreateAllocation (one request id, retried every %s "
      "through %s over both managers; reconnect backoff %s)\n\n",
      flags.kills, absl::FormatDuration(flags.lease_ttl),
      absl::FormatDuration(flags.retry_every),
      flags.keep_client ? "one client for all kills" : "a new client per kill",
      flags.reconnect_backoff > absl::ZeroDuration()
          ? absl::FormatDuration(flags.reconnect_backoff)
          : std::string("FabricClient's, 100-250 ms"));
  std::vector<std::string> each;
  for (double ms : r.failover_ms) each.push_back(absl::StrFormat("%.0f", ms));
  absl::PrintF("failover ms, each kill: %s\n", absl::StrJoin(each, " "));
  absl::PrintF("failover ms: p50 %.0f, p99 %.0f, max %.0f\n", r.P(50), r.P(99),
               r.Max());
  absl::PrintF("allocations left: %d\n", r.allocations_left);
  absl::PrintF("target met (p99 < 2 x lease TTL = %.0f ms): %s\n",
               2 * absl::ToDoubleMilliseconds(flags.lease_ttl),
               TargetMet(flags, r) ? "yes" : "no");
}

void PrintJson(const Flags& flags, const Report& r) {
  std::vector<std::string> each;
  for (double ms : r.failover_ms) each.push_back(absl::StrFormat("%.1f", ms));
  absl::PrintF(
      "{\"kills\":%d,\"lease_ttl_ms\":%.0f,\"failover_ms\":[%s],"
      "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,"
      "\"allocations_left\":%d,\"target_met\":%s}\n",
      flags.kills, absl::ToDoubleMilliseconds(flags.lease_ttl),
      absl::StrJoin(each, ","), r.P(50), r.P(99), r.Max(), r.allocations_left,
      TargetMet(flags, r) ? "true" : "false");
}

int Main(int argc, char** argv) {
  Flags flags;
  std::string lease_ttl = "2s";
  std::string retry_every = "10ms";
  flags.bin_dir = proctest::ExecutableDir();
  CLI::App app{
      "Measures HA failover on etcd: from a SIGKILL of the leader to the "
      "first acknowledged write on the new leader."};
  app.add_option("--kills", flags.kills, "Leader kills to measure")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--lease-ttl", lease_ttl,
                 "The managers' --lease-ttl (whole seconds, at least 2s)")
      ->capture_default_str();
  app.add_option("--retry-every", retry_every,
                 "Pause between the client's attempts after the kill")
      ->capture_default_str();
  app.add_flag("--keep-client", flags.keep_client,
               "One client (and its connections) for all kills, as a "
               "long-lived caller has, instead of a new one per kill");
  std::string reconnect_backoff;
  app.add_option("--reconnect-backoff", reconnect_backoff,
                 "Fixed reconnect backoff of the client's channels, e.g. "
                 "100ms (default: FabricClient's, 100 ms growing to 250 ms)");
  app.add_option("--bin-dir", flags.bin_dir, "The directory of fabric-manager")
      ->capture_default_str();
  app.add_option("-o,--output", flags.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!absl::ParseDuration(lease_ttl, &flags.lease_ttl) ||
      flags.lease_ttl < absl::Seconds(2) ||
      flags.lease_ttl != absl::Seconds(absl::ToInt64Seconds(flags.lease_ttl))) {
    absl::FPrintF(stderr,
                  "--lease-ttl: \"%s\" is not a whole number of seconds, at "
                  "least 2s\n",
                  lease_ttl);
    return 2;
  }
  if (!absl::ParseDuration(retry_every, &flags.retry_every) ||
      flags.retry_every < absl::ZeroDuration()) {
    absl::FPrintF(stderr, "--retry-every: \"%s\" is not a duration like 10ms\n",
                  retry_every);
    return 2;
  }

  if (!reconnect_backoff.empty() &&
      (!absl::ParseDuration(reconnect_backoff, &flags.reconnect_backoff) ||
       flags.reconnect_backoff < absl::Milliseconds(1))) {
    absl::FPrintF(stderr,
                  "--reconnect-backoff: \"%s\" is not a duration of 1ms or "
                  "more\n",
                  reconnect_backoff);
    return 2;
  }

  Report report;
  absl::Status s = Run(flags, report);
  if (!s.ok()) {
    absl::FPrintF(stderr, "fabric-failover-bench: %s\n", s.ToString());
    return 2;
  }
  if (flags.output == "json") {
    PrintJson(flags, report);
  } else {
    PrintTable(flags, report);
  }
  if (!report.failure.empty() || report.allocations_left > 0) {
    absl::FPrintF(stderr,
                  "fabric-failover-bench: FAILED: %s%d allocations left\n",
                  report.failure.empty() ? "" : report.failure + "; ",
                  report.allocations_left);
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
