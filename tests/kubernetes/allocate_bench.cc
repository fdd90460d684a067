// fabric-k8s-bench: the device plugin's Allocate latency beside the raw
// fabric calls under it and the no-op Ping, in one run (issue 15: "Allocate
// p99 under 20 ms on the simulator, measured").
//
// One LendingFabric (a real fabric-manager and three simulated agents as
// processes over mutual TLS; n1 lends 8 VFs, every node exports 64 MiB), one
// real fabric-device-plugin process for n0 (n0's certificate, --memory-chunk
// 4Mi), the kubelet stand-in and a PodResources server, as
// device_plugin_e2e_test.cc sets them up. Each of --rounds rounds runs, in
// this order, each operation on a settled fabric (Bench::Quiet: no claim
// live, every agent applied, every device offered again):
//   ping       --pings calls of the manager's Ping (FabricClient with n0's
//              certificate, the plugin's TLS): the no-op baseline;
//   raw vf     CreateAttachment of one of n1's VFs to n2 through
//              FabricClient, then AwaitAttachment until READY (the
//              manager's Watch stream, as the plugin waits); then
//              DeleteAttachment (not timed; the next Quiet waits for it).
//              As n2, one hop from n1 as n0 is, of a VF offered to nobody
//              (the manager lets a node claim only what is offered to it or
//              to nobody): n0's offers fill n0's bridge windows, so a raw
//              claim by n0 would take windows they count on and have them
//              withdrawn (server/offers/offer_book.h, "Windows");
//   plugin vf  the kubelet stand-in's Allocate of one VF device on the
//              plugin's socket: the plugin's CreateAttachment, its wait for
//              READY on a Watch, the CDI spec write and the response;
//   raw memory CreateAllocation of one 4 MiB chunk (borrower n2, target n1)
//              until READY, then DeleteAllocation (not timed);
//   plugin mem the Allocate of one mem-n1-* device (a 4 MiB chunk).
// The plugin's VFs are those offered to n0 (as many as n0's and n1's
// windows allow), the raw ones the rest of n1's: disjoint, and each side
// rotates through its own (the plugin's memory through up to four chunks),
// so a device comes back into use only rounds after it was freed, by then
// re-offered with a new epoch.
//
// Freeing a plugin device: the plugin frees what it holds only through its
// PodResources GC (device_plugin/pod_resources_gc.h): a held device that no
// pod lists for --release-grace is released with the plugin's own
// Claimer::Release (DeleteAttachment/DeleteAllocation and the CDI file).
// The bench lists the device on a pod before the Allocate, as the kubelet
// does for an admitted pod, removes the pod after it, and waits until the
// claim is gone and the device offered again before the next operation.
// This keeps the plugin's held set, CDI files and offers consistent (deleting
// the claim behind the plugin's back would leave it holding a stale claim it
// would hand out again); the grace is short (200 ms) and the GC's List runs
// every 100 ms on the unix socket, a small background load during the run.
//
// Every timed call is one sample; p50 and p99 are by nearest rank (with 50
// samples or fewer p99 is the largest). Each create-to-READY row is
// split at the claim's READY event on a standing Watch stream this bench
// keeps open: before it the fabric's part (manager, store, agents), after
// it the caller noticing READY on its own Watch, and for the plugin also
// its CDI spec write (fsync'd) and the answer to the kubelet.
//
// Output: a table, or one JSON object with -o json. Exit 0 when every call
// succeeded and no claim was left, 1 on any error, 2 on bad flags. Missing
// the 20 ms budget is reported, not an error.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/fabric_client.h"
#include "common/status_macros.h"
#include "device_plugin/cdi_spec.h"
#include "device_plugin/device_plugin_test_util.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/ready_watcher.h"
#include "tests/kubernetes/kubelet_stand_in.h"
#include "tests/kubernetes/lending_fabric.h"
#include "tests/kubernetes/pod_resources_server.h"
#include "tests/process/process_util.h"

namespace fabric::k8stest {
namespace {

using ::fabric::bench::Clock;
using ::fabric::bench::Micros;
using ::fabric::bench::Percentile;
using ::fabric::bench::ReadyWatcher;
using ::fabric::device_plugin::CdiSpecPath;
using ::fabric::device_plugin::kMemoryClass;
using ::fabric::device_plugin::kVfClass;
using ::fabric::device_plugin::testing::kMemoryResource;
using ::fabric::device_plugin::testing::kVfResource;
using ::fabric::device_plugin::testing::SocketDir;
using ::fabric::proctest::Scaled;
using ::fabric::testing::KubeletStandIn;
using json = nlohmann::json;

constexpr char kNode[] = "n0";  // the plugin's node, the borrower
constexpr char kRawNode[] = "n2";  // the raw calls' borrower
// The plugin's claims' owner: its certificate's identity.
constexpr char kOwner[] = "node/n0";
constexpr uint64_t kChunk = 4 << 20;
constexpr double kBudgetP99Ms = 20;  // issue 15, for each Allocate row
// The plugin's GC, short so that a round waits little for the release.
constexpr char kReleaseGrace[] = "200ms";
constexpr char kPodResourcesInterval[] = "100ms";
// Memory chunks the plugin rotates through.
constexpr int kRotation = 4;

struct Flags {
  int rounds = 50;
  int warmup = 1;
  int pings = 10;
  std::string output = "table";
};

// One row's samples (microseconds).
struct Row {
  std::string name;
  std::vector<double> us;
  // Start of the call to the READY event on the standing Watch, and from
  // that event to the call's return (the caller noticing READY, and for the
  // plugin its CDI write and the answer to the kubelet); empty for Ping.
  std::vector<double> ready_us;
  std::vector<double> after_ready_us;

  void Add(double total, double ready) {
    us.push_back(total);
    ready_us.push_back(ready);
    after_ready_us.push_back(total - ready);
  }
  bool is_allocate = false;  // held to the budget

  double Mean() const {
    double sum = 0;
    for (double v : us) sum += v;
    return us.empty() ? 0 : sum / us.size();
  }
};

std::string DeviceIdOfVf(const v1::VirtualFunction& vf) {
  std::string address = vf.address();
  for (char& c : address) {
    if (c == ':') c = '-';
  }
  return absl::StrCat("vf-", LendingFabric::kLender, "-", address);
}

bool Lists(const v1beta1::ListAndWatchResponse& list, const std::string& id) {
  for (const auto& d : list.devices()) {
    if (d.id() == id) return d.health() == "Healthy";
  }
  return false;
}

absl::Status Within(const std::function<bool()>& done, absl::Duration timeout,
                    absl::string_view what) {
  if (proctest::WaitFor(done, timeout, absl::Milliseconds(10))) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(absl::StrCat(
      what, ": not within ", absl::FormatDuration(Scaled(timeout))));
}

class Bench {
 public:
  // `dir` holds the run's files (state, logs, CDI specs); the caller
  // removes it after the Bench is gone.
  Bench(const Flags& flags, std::string dir)
      : flags_(flags), dir_(std::move(dir)) {
    for (const char* name : {"ping", "raw vf attach", "plugin vf Allocate",
                             "raw memory allocate", "plugin memory Allocate"}) {
      Row& row = rows_.emplace_back();
      row.name = name;
      row.is_allocate = absl::StrContains(name, "Allocate");
    }
  }

  // Starts the fabric, the stand-ins and the plugin; waits until the
  // kubelet lists the devices the rounds use.
  absl::Status Start();
  // One round of every row; recorded unless `warmup`.
  absl::Status Round(int i, bool warmup);
  // The claims still live (of anyone): 0 after a clean run.
  absl::StatusOr<int> LiveClaims();
  // Waits until the fabric is back where it started: no claim is live,
  // every agent is READY and has applied its configuration (a release's
  // teardown is done), and the kubelet lists every device it listed at the
  // start Healthy again (the offers caught up with the releases).
  absl::Status Quiet();

  const std::vector<Row>& rows() const { return rows_; }
  std::string Logs() const {
    return absl::StrCat("plugin log ", plugin_log_, ":\n",
                        proctest::ReadFile(plugin_log_), "\nmanager log:\n",
                        fabric_.ManagerLog());
  }

 private:
  absl::Status Ping(bool warmup);
  absl::Status RawVf(const v1::VirtualFunction& vf, int i, bool warmup);
  absl::Status RawMemory(int i, bool warmup);
  absl::Status PluginAllocate(const std::string& resource,
                              absl::string_view device_class,
                              const std::string& id, Row& row, bool warmup);
  // When claim `name` turned READY on the standing Watch, from `t0`.
  absl::StatusOr<double> ReadyAt(ReadyWatcher& w, const std::string& name,
                                 Clock::time_point t0);

  const Flags flags_;
  std::vector<Row> rows_;
  const std::string dir_;
  SocketDir sockets_;  // short: unix socket paths
  LendingFabric fabric_;
  std::string kubelet_dir_, cdi_dir_, plugin_log_;
  std::unique_ptr<KubeletStandIn> kubelet_;
  std::unique_ptr<PodResourcesServer> pods_;
  std::unique_ptr<proctest::Child> plugin_;
  // As node n0 (its certificate), as the plugin calls; and as n2, the raw
  // calls' borrower.
  std::unique_ptr<client::FabricClient> node_client_, raw_client_;
  std::unique_ptr<v1::FabricService::Stub> watch_stub_;
  std::unique_ptr<ReadyWatcher> attachments_, allocations_;
  std::vector<v1::VirtualFunction> vfs_;      // n1's, by address
  std::vector<std::string> plugin_vfs_;       // offered to n0: the plugin's
  std::vector<v1::VirtualFunction> raw_vfs_;  // the others: the raw calls'
  std::vector<std::string> mem_ids_;          // mem-n1-* the plugin rotates
  // What the kubelet listed at the start, by resource (all Healthy).
  std::map<std::string, std::set<std::string>> initial_;
};

absl::Status Bench::Start() {
  if (sockets_.path().empty()) {
    return absl::UnavailableError("cannot make a socket directory in /tmp");
  }
  if (absl::Status s = fabric_.Start(dir_); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("fabric: ", s.message(), "\n",
                                               fabric_.ManagerLog()));
  }
  ASSIGN_OR_RETURN(vfs_, fabric_.Vfs());
  std::sort(vfs_.begin(), vfs_.end(), [](const auto& a, const auto& b) {
    return a.address() < b.address();
  });
  node_client_ = client::FabricClient::Connect(fabric_.address(),
                                               fabric_.tls().Node(kNode), {});
  raw_client_ = client::FabricClient::Connect(
      fabric_.address(), fabric_.tls().Node(kRawNode), {});
  watch_stub_ =
      v1::FabricService::NewStub(fabric_.tls().DialManager(fabric_.address()));
  attachments_ =
      std::make_unique<ReadyWatcher>(watch_stub_.get(), "attachments");
  allocations_ =
      std::make_unique<ReadyWatcher>(watch_stub_.get(), "allocations");

  kubelet_dir_ = sockets_.path() + "/kubelet";
  cdi_dir_ = dir_ + "/cdi";
  plugin_log_ = dir_ + "/plugin.log";
  std::filesystem::create_directories(kubelet_dir_);
  kubelet_ = std::make_unique<KubeletStandIn>(kubelet_dir_);
  RETURN_IF_ERROR(kubelet_->Start());
  pods_ = std::make_unique<PodResourcesServer>(sockets_.path() + "/pr.sock");
  RETURN_IF_ERROR(pods_->Start());
  std::vector<std::string> argv = {proctest::BinDir() + "/fabric-device-plugin",
                                   "--manager",
                                   fabric_.address(),
                                   "--node",
                                   kNode,
                                   "--kubelet-dir",
                                   kubelet_dir_,
                                   "--cdi-dir",
                                   cdi_dir_,
                                   "--memory-chunk",
                                   "4Mi",
                                   "--pod-resources-socket",
                                   pods_->socket_path(),
                                   "--release-grace",
                                   kReleaseGrace,
                                   "--pod-resources-interval",
                                   kPodResourcesInterval};
  for (std::string& flag : fabric_.tls().AgentFlags(kNode)) {
    argv.push_back(flag);
  }
  plugin_ = std::make_unique<proctest::Child>(argv, plugin_log_);

  const absl::Duration wait = absl::Seconds(20);
  if (!kubelet_->WaitForRegistrations(2, Scaled(wait))) {
    return absl::DeadlineExceededError(
        absl::StrCat("the plugin did not register both resources\n", Logs()));
  }
  RETURN_IF_ERROR(Within(
      [&] {
        plugin_vfs_.clear();
        const v1beta1::ListAndWatchResponse list =
            kubelet_->Devices(kVfResource);
        for (const auto& d : list.devices()) {
          if (d.health() == "Healthy") plugin_vfs_.push_back(d.id());
        }
        return !plugin_vfs_.empty();
      },
      wait, "the kubelet lists n1's VFs"));
  for (const v1::VirtualFunction& vf : vfs_) {
    if (std::find(plugin_vfs_.begin(), plugin_vfs_.end(), DeviceIdOfVf(vf)) ==
        plugin_vfs_.end()) {
      raw_vfs_.push_back(vf);
    }
  }
  if (raw_vfs_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("all ", vfs_.size(), " of n1's VFs are offered to ",
                     kNode, ": none is left for the raw calls"));
  }
  RETURN_IF_ERROR(Within(
      [&] {
        mem_ids_.clear();
        const v1beta1::ListAndWatchResponse list =
            kubelet_->Devices(kMemoryResource);
        for (const auto& d : list.devices()) {
          if (absl::StartsWith(d.id(), "mem-n1-") && d.health() == "Healthy") {
            mem_ids_.push_back(d.id());
          }
        }
        return !mem_ids_.empty();
      },
      wait, "the kubelet lists n1's memory chunks"));
  if (mem_ids_.size() > kRotation) mem_ids_.resize(kRotation);
  for (const char* resource : {kVfResource, kMemoryResource}) {
    const v1beta1::ListAndWatchResponse list = kubelet_->Devices(resource);
    for (const auto& d : list.devices()) {
      if (d.health() == "Healthy") initial_[resource].insert(d.id());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Bench::LiveClaims() {
  ASSIGN_OR_RETURN(std::vector<v1::Attachment> as,
                   fabric_.admin().ListAttachments({}));
  ASSIGN_OR_RETURN(std::vector<v1::Allocation> ls,
                   fabric_.admin().ListAllocations({}));
  int n = 0;
  for (const auto& a : as) n += a.state() != v1::Attachment::DETACHED;
  for (const auto& a : ls) n += a.state() != v1::Allocation::RELEASED;
  return n;
}

absl::Status Bench::Quiet() {
  absl::Status last;
  auto quiet = [&] {
    absl::StatusOr<int> live = LiveClaims();
    if (!live.ok()) last = live.status();
    absl::StatusOr<std::vector<v1::Node>> nodes = fabric_.admin().ListNodes("");
    if (!nodes.ok()) last = nodes.status();
    if (!live.ok() || *live != 0 || !nodes.ok()) return false;
    for (const v1::Node& n : *nodes) {
      if (n.agent_state() != v1::Node::READY ||
          n.applied_generation() != n.desired_generation()) {
        return false;
      }
    }
    for (const auto& [resource, ids] : initial_) {
      const v1beta1::ListAndWatchResponse list = kubelet_->Devices(resource);
      for (const std::string& id : ids) {
        if (!Lists(list, id)) return false;
      }
    }
    return true;
  };
  if (proctest::WaitFor(quiet, absl::Seconds(20), absl::Milliseconds(10))) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the fabric did not settle (no claim live, every agent applied, every "
      "device offered again) within ",
      absl::FormatDuration(Scaled(absl::Seconds(20))),
      last.ok() ? "" : absl::StrCat(": ", last.ToString()), "\n", Logs()));
}

absl::StatusOr<double> Bench::ReadyAt(ReadyWatcher& w, const std::string& name,
                                      Clock::time_point t0) {
  Clock::time_point at;
  if (!w.Wait(name, &at,
              std::chrono::milliseconds(
                  absl::ToInt64Milliseconds(Scaled(absl::Seconds(10)))))) {
    return absl::DeadlineExceededError(
        absl::StrCat("no READY event of ", name, " on the standing Watch"));
  }
  return Micros(at - t0);
}

absl::Status Bench::Ping(bool warmup) {
  for (int k = 0; k < flags_.pings; ++k) {
    const auto t0 = Clock::now();
    absl::Status s = node_client_->Ping();
    const auto t1 = Clock::now();
    if (!s.ok())
      return absl::Status(s.code(), absl::StrCat("Ping: ", s.message()));
    if (!warmup) rows_[0].us.push_back(Micros(t1 - t0));
  }
  return absl::OkStatus();
}

absl::Status Bench::RawVf(const v1::VirtualFunction& vf, int i, bool warmup) {
  client::FabricClient& node = *raw_client_;
  v1::CreateAttachmentRequest req;
  req.mutable_attachment()->set_vf(vf.name());
  req.mutable_attachment()->set_borrower(kRawNode);
  req.set_request_id(absl::StrCat("k8s-bench/raw-vf/", i));
  const auto t0 = Clock::now();
  absl::StatusOr<v1::Attachment> a = node.CreateAttachment(req);
  if (!a.ok()) {
    return absl::Status(a.status().code(),
                        absl::StrCat("CreateAttachment of ", vf.name(), ": ",
                                     a.status().message()));
  }
  ASSIGN_OR_RETURN(
      v1::Attachment ready,
      node.AwaitAttachment(a->name(), absl::Now() + Scaled(absl::Seconds(10))));
  const auto t1 = Clock::now();
  if (ready.state() != v1::Attachment::READY) {
    return absl::DeadlineExceededError(
        absl::StrCat(a->name(), " is ",
                     v1::Attachment::State_Name(ready.state()), ", not READY"));
  }
  ASSIGN_OR_RETURN(double ready_us, ReadyAt(*attachments_, a->name(), t0));
  if (!warmup) {
    rows_[1].Add(Micros(t1 - t0), ready_us);
  }
  v1::DeleteAttachmentRequest del;
  del.set_name(a->name());
  del.set_request_id(absl::StrCat("k8s-bench/raw-vf-delete/", i));
  // Quiet() waits until it is gone (a deleted claim may no longer be
  // found by name).
  return node.DeleteAttachment(del).status();
}

absl::Status Bench::RawMemory(int i, bool warmup) {
  client::FabricClient& node = *raw_client_;
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(kRawNode);
  req.mutable_allocation()->set_target(LendingFabric::kLender);
  req.mutable_allocation()->set_size(kChunk);
  req.set_request_id(absl::StrCat("k8s-bench/raw-memory/", i));
  const auto t0 = Clock::now();
  absl::StatusOr<v1::Allocation> a = node.CreateAllocation(req);
  if (!a.ok()) {
    return absl::Status(a.status().code(), absl::StrCat("CreateAllocation: ",
                                                        a.status().message()));
  }
  ASSIGN_OR_RETURN(
      v1::Allocation ready,
      node.AwaitAllocation(a->name(), absl::Now() + Scaled(absl::Seconds(10))));
  const auto t1 = Clock::now();
  if (ready.state() != v1::Allocation::READY) {
    return absl::DeadlineExceededError(
        absl::StrCat(a->name(), " is ",
                     v1::Allocation::State_Name(ready.state()), ", not READY"));
  }
  ASSIGN_OR_RETURN(double ready_us, ReadyAt(*allocations_, a->name(), t0));
  if (!warmup) {
    rows_[3].Add(Micros(t1 - t0), ready_us);
  }
  v1::DeleteAllocationRequest del;
  del.set_name(a->name());
  del.set_request_id(absl::StrCat("k8s-bench/raw-memory-delete/", i));
  // Quiet() waits until it is gone (a deleted claim may no longer be
  // found by name).
  return node.DeleteAllocation(del).status();
}

absl::Status Bench::PluginAllocate(const std::string& resource,
                                   absl::string_view device_class,
                                   const std::string& id, Row& row,
                                   bool warmup) {
  const bool vf = device_class == kVfClass;
  const std::string pod = absl::StrCat("bench-", device_class);
  // Admitted: the kubelet lists the pod's devices from Allocate on.
  pods_->SetPod("default", pod, resource, {id});
  v1beta1::AllocateRequest req;
  req.add_container_requests()->add_devices_ids(id);
  const auto t0 = Clock::now();
  absl::StatusOr<v1beta1::AllocateResponse> resp =
      kubelet_->Allocate(resource, req);
  const auto t1 = Clock::now();
  if (!resp.ok()) {
    return absl::Status(resp.status().code(),
                        absl::StrCat("Allocate ", id, ": ",
                                     resp.status().message(), "\n", Logs()));
  }
  if (resp->container_responses_size() != 1 ||
      resp->container_responses(0).cdi_devices_size() != 1 ||
      !std::filesystem::exists(CdiSpecPath(cdi_dir_, device_class, id))) {
    return absl::InternalError(absl::StrCat(
        "Allocate ", id, ": no CDI device/spec in ", resp->DebugString()));
  }
  // The plugin's claim, to find its READY event.
  std::string claim;
  int live = 0;
  if (vf) {
    v1::ListAttachmentsRequest f;
    f.set_owner(kOwner);
    ASSIGN_OR_RETURN(std::vector<v1::Attachment> as,
                     fabric_.admin().ListAttachments(f));
    for (const auto& a : as) {
      if (a.state() == v1::Attachment::DETACHED) continue;
      ++live;
      claim = a.name();
    }
  } else {
    v1::ListAllocationsRequest f;
    f.set_owner(kOwner);
    ASSIGN_OR_RETURN(std::vector<v1::Allocation> ls,
                     fabric_.admin().ListAllocations(f));
    for (const auto& a : ls) {
      if (a.state() == v1::Allocation::RELEASED) continue;
      ++live;
      claim = a.name();
    }
  }
  if (live != 1) {
    return absl::InternalError(absl::StrCat("after Allocate ", id, ": ", live,
                                            " live claims of ", kNode,
                                            ", not 1"));
  }
  ASSIGN_OR_RETURN(double ready_us,
                   ReadyAt(vf ? *attachments_ : *allocations_, claim, t0));
  if (!warmup) {
    row.Add(Micros(t1 - t0), ready_us);
  }
  // The pod is gone: the plugin's GC frees the device after the grace.
  pods_->RemovePod("default", pod);
  return Within(
      [&] {
        return !std::filesystem::exists(
            CdiSpecPath(cdi_dir_, device_class, id));
      },
      absl::Seconds(20), absl::StrCat("the plugin releases ", id));
}

absl::Status Bench::Round(int i, bool warmup) {
  const std::string& vf_id = plugin_vfs_[i % plugin_vfs_.size()];
  const std::string& mem_id = mem_ids_[i % mem_ids_.size()];
  RETURN_IF_ERROR(Quiet());
  RETURN_IF_ERROR(Ping(warmup));
  RETURN_IF_ERROR(RawVf(raw_vfs_[i % raw_vfs_.size()], i, warmup));
  RETURN_IF_ERROR(Quiet());
  RETURN_IF_ERROR(
      PluginAllocate(kVfResource, kVfClass, vf_id, rows_[2], warmup));
  RETURN_IF_ERROR(Quiet());
  RETURN_IF_ERROR(RawMemory(i, warmup));
  RETURN_IF_ERROR(Quiet());
  return PluginAllocate(kMemoryResource, kMemoryClass, mem_id, rows_[4],
                        warmup);
}

struct Report {
  std::vector<Row> rows;
  int claims_left = 0;
};

bool BudgetMet(const Report& r) {
  for (const Row& row : r.rows) {
    if (row.is_allocate && Percentile(row.us, 99) / 1e3 >= kBudgetP99Ms)
      return false;
  }
  return true;
}

void PrintTable(const Flags& flags, const Report& r) {
  const double ping50 = Percentile(r.rows[0].us, 50);
  const double ping99 = Percentile(r.rows[0].us, 99);
  absl::PrintF(
      "fabric-k8s-bench: 3-node ring (manager and simulated agents as "
      "processes, mutual TLS), fabric-device-plugin for %s, raw calls for "
      "%s; %d rounds after %d warm-up, %d Pings per round\n",
      kNode, kRawNode, flags.rounds, flags.warmup, flags.pings);
  absl::PrintF("%-24s %5s | %8s %8s %8s | %8s %8s | %8s %8s | %8s %8s\n", "row",
               "n", "p50 ms", "p99 ms", "mean ms", "p50/Ping", "p99/Ping",
               "READY50", "READY99", "after50", "after99");
  for (const Row& row : r.rows) {
    const double p50 = Percentile(row.us, 50), p99 = Percentile(row.us, 99);
    auto ms = [&](const std::vector<double>& v, double p) {
      return v.empty() ? std::string("-")
                       : absl::StrFormat("%.3f", Percentile(v, p) / 1e3);
    };
    absl::PrintF(
        "%-24s %5d | %8.3f %8.3f %8.3f | %8.1f %8.1f | %8s %8s | %8s %8s\n",
        row.name, row.us.size(), p50 / 1e3, p99 / 1e3, row.Mean() / 1e3,
        ping50 > 0 ? p50 / ping50 : 0, ping99 > 0 ? p99 / ping99 : 0,
        ms(row.ready_us, 50), ms(row.ready_us, 99), ms(row.after_ready_us, 50),
        ms(row.after_ready_us, 99));
  }
  absl::PrintF(
      "READYnn: from the call's start to the claim's READY event on a "
      "standing Watch (the fabric's part); afternn: from that event to the "
      "call's return (ms, percentiles of each part separately)\n");
  absl::PrintF("budget met (Allocate p99 < %.0f ms, VF and memory): %s\n",
               kBudgetP99Ms, BudgetMet(r) ? "yes" : "no");
  absl::PrintF("claims left: %d\n", r.claims_left);
}

void PrintJson(const Flags& flags, const Report& r) {
  const double ping50 = Percentile(r.rows[0].us, 50);
  json rows = json::array();
  for (const Row& row : r.rows) {
    const double p50 = Percentile(row.us, 50);
    json j = {{"row", row.name},
              {"samples", row.us.size()},
              {"p50_us", p50},
              {"p99_us", Percentile(row.us, 99)},
              {"mean_us", row.Mean()},
              {"p50_ping_ratio", ping50 > 0 ? p50 / ping50 : 0}};
    if (!row.ready_us.empty()) {
      j["ready_event_p50_us"] = Percentile(row.ready_us, 50);
      j["ready_event_p99_us"] = Percentile(row.ready_us, 99);
      j["after_ready_p50_us"] = Percentile(row.after_ready_us, 50);
      j["after_ready_p99_us"] = Percentile(row.after_ready_us, 99);
    }
    rows.push_back(std::move(j));
  }
  json out = {{"rounds", flags.rounds},         {"warmup", flags.warmup},
              {"pings_per_round", flags.pings}, {"rows", rows},
              {"budget_p99_ms", kBudgetP99Ms},  {"budget_met", BudgetMet(r)},
              {"claims_left", r.claims_left}};
  std::cout << out.dump() << "\n";
}

absl::Status Run(const Flags& flags, Report& report) {
  proctest::TempDir dir;
  // Every temporary file of the run goes under `dir`, removed at the end:
  // the test PKI (made on first use, by LendingFabric's constructor, and
  // never freed) and the key-pair snapshots of this process and of its
  // children, which are killed with SIGKILL and cannot remove their own.
  setenv("TMPDIR", dir.path().c_str(), 1);
  Bench bench(flags, dir.path());
  RETURN_IF_ERROR(bench.Start());
  for (int i = 0; i < flags.warmup + flags.rounds; ++i) {
    RETURN_IF_ERROR(bench.Round(i, i < flags.warmup));
  }
  // The last release is the plugin's GC's: wait until it is done, then
  // count what is left (0 unless something else claimed).
  RETURN_IF_ERROR(bench.Quiet());
  ASSIGN_OR_RETURN(report.claims_left, bench.LiveClaims());
  report.rows = bench.rows();
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  Flags flags;
  std::string bin_dir = proctest::ExecutableDir();
  CLI::App app{
      "fabric-k8s-bench: the device plugin's Allocate latency (VF and "
      "memory) beside the raw attach time and Ping, p50/p99"};
  app.add_option("--rounds", flags.rounds, "measured rounds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", flags.warmup, "unmeasured rounds first")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--pings", flags.pings, "Ping calls per round")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-o,--output", flags.output, "table or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json"}));
  app.add_option("--bin-dir", bin_dir,
                 "the directory of fabric-manager, fabric-agent and "
                 "fabric-device-plugin (default: $FABRIC_BIN_DIR, else this "
                 "binary's)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (app.count("--bin-dir") > 0 || std::getenv("FABRIC_BIN_DIR") == nullptr) {
    setenv("FABRIC_BIN_DIR", bin_dir.c_str(), 1);
  }
  Report report;
  if (absl::Status s = Run(flags, report); !s.ok()) {
    std::cerr << "fabric-k8s-bench: " << s << "\n";
    return 1;
  }
  if (flags.output == "json") {
    PrintJson(flags, report);
  } else {
    PrintTable(flags, report);
  }
  return report.claims_left > 0 ? 1 : 0;
}

}  // namespace
}  // namespace fabric::k8stest

int main(int argc, char** argv) { return fabric::k8stest::Main(argc, argv); }
