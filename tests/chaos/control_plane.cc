#include "tests/chaos/control_plane.h"

#include <grpcpp/client_context.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "server/store/open_store.h"
#include "tests/chaos/ops.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"

namespace fabric::chaos {
namespace {

// How long a (re)started manager may take to get its port.
constexpr absl::Duration kRestartTimeout = absl::Seconds(10);
// How long a manager may take to lead (a first election, or a takeover after
// the leader's lease of kLeaseTtl expired).
constexpr absl::Duration kLeadTimeout = absl::Seconds(10);
// How long a restarted etcd member may take to serve a quorum read again.
constexpr absl::Duration kMemberBackTimeout = absl::Seconds(30);
constexpr char kLeaseTtl[] = "2s";
constexpr int kEtcdMembers = 3;
constexpr int kHaManagers = 2;
// How often the etcd supervisor looks for managers that exited.
constexpr absl::Duration kSupervisePoll = absl::Milliseconds(50);
// What a manager that lost its leadership writes before it exits 1
// (server/ha/ha_manager.cc).
constexpr char kLostLine[] = "fabric-manager: lost the leadership";

// Flags of every manager: plaintext on loopback (--insecure), here and for
// the agents and the campaign's clients (ops.cc): the campaign's subject is
// consistency under faults, not transport security.
std::vector<std::string> CommonManagerFlags() {
  return {"--insecure", "--heartbeat-timeout", "1500ms",
          "--heartbeat-interval", "200ms"};
}

std::string Address(int port) { return absl::StrCat("127.0.0.1:", port); }

// Starts fabric-manager on `port` (0: a free one; else the port a killed
// manager had, which the agents were told) into *child; returns the port.
absl::StatusOr<int> StartManagerOn(const std::string& bin_dir, int port,
                                   const std::string& db,
                                   const std::string& log,
                                   const std::vector<std::string>& flags,
                                   std::unique_ptr<proctest::Child>* child) {
  const absl::Time deadline = absl::Now() + proctest::Scaled(kRestartTimeout);
  while (true) {
    proctest::Manager m = proctest::StartManagerAt(bin_dir + "/fabric-manager",
                                                   port, db, log, flags);
    if (m.port > 0) {
      *child = std::make_unique<proctest::Child>(std::move(m.child));
      return m.port;
    }
    // Not up: most likely the old port is not free yet. The Child's
    // destructor kills whatever is left of this attempt. (A pause before
    // retrying, not a wait for an event: nothing signals that the kernel
    // has released the killed manager's port.)
    if (port == 0 || absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "fabric-manager did not come up on port ", port, "; see ", log));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void KillChild(std::unique_ptr<proctest::Child>* child) {
  if (*child == nullptr) return;
  (*child)->Signal(SIGKILL);
  (*child)->Wait();
  child->reset();
}

// --- SQLite -----------------------------------------------------------------

class SqliteControlPlane : public ControlPlane {
 public:
  SqliteControlPlane(std::string bin_dir, std::string dir)
      : bin_dir_(std::move(bin_dir)), dir_(std::move(dir)) {}

  absl::Status StartManager() {
    absl::StatusOr<int> port = StartManagerOn(
        bin_dir_, port_, db(), log(), CommonManagerFlags(), &manager_);
    if (!port.ok()) return port.status();
    port_ = *port;
    return absl::OkStatus();
  }

  std::vector<std::string> managers() const override {
    return {Address(port_)};
  }
  bool fails_over() const override { return false; }
  int store_members() const override { return 0; }

  absl::Status Kill(Victim victim, int member) override {
    if (victim != Victim::kLeader) {
      return absl::FailedPreconditionError(
          "a SQLite control plane has one manager and no store members");
    }
    if (manager_ == nullptr) {
      return absl::FailedPreconditionError("the manager is down already");
    }
    KillChild(&manager_);
    killed_ = absl::StrCat("manager ", Address(port_));
    return absl::OkStatus();
  }

  absl::Status RestartKilled() override { return StartManager(); }
  std::string killed() const override { return killed_; }

  std::vector<std::string> ReapUnexpected() override {
    int code = 0;
    if (manager_ != nullptr && manager_->TryWait(&code)) {
      manager_.reset();
      return {absl::StrCat("fabric-manager exited by itself (", code,
                           "); see ", log())};
    }
    return {};
  }
  int leadership_losses() const override { return 0; }

  absl::StatusOr<DurableState> LoadDurable(
      const std::string& copy_path) override {
    return LoadDurableState(db(), copy_path);
  }

 private:
  std::string db() const { return dir_ + "/fabric.db"; }
  std::string log() const { return dir_ + "/manager.log"; }

  const std::string bin_dir_;
  const std::string dir_;
  int port_ = 0;
  std::unique_ptr<proctest::Child> manager_;
  std::string killed_;
};

// --- etcd -------------------------------------------------------------------

class EtcdControlPlane : public ControlPlane {
 public:
  EtcdControlPlane(std::string bin_dir, std::string dir,
                   std::unique_ptr<etcdtest::EtcdCluster> etcd)
      : bin_dir_(std::move(bin_dir)),
        dir_(std::move(dir)),
        etcd_(std::move(etcd)),
        store_url_(etcd_->StoreUrl("/chaos")) {}

  ~EtcdControlPlane() override {
    stop_ = true;
    if (supervisor_.joinable()) supervisor_.join();
    absl::MutexLock lock(&mu_);
    for (Slot& s : slots_) KillChild(&s.child);
  }

  // The first manager, which leads, then the standby; then the supervisor.
  absl::Status StartManagers() {
    for (int i = 0; i < kHaManagers; ++i) {
      const std::string log = absl::StrCat(dir_, "/manager-", i, ".log");
      {
        absl::MutexLock lock(&mu_);
        slots_.push_back(Slot{});
        slots_.back().log = log;
        RETURN_IF_ERROR(StartLocked(i));
      }
      if (i == 0 && !proctest::WaitFor(
                        [&] { return Leads(Address(port(0))); },
                        kLeadTimeout, absl::Milliseconds(20))) {
        return absl::UnavailableError(
            absl::StrCat("the first manager did not lead within ",
                         absl::FormatDuration(kLeadTimeout), "; see ", log));
      }
    }
    supervisor_ = std::thread([this] { Supervise(); });
    return absl::OkStatus();
  }

  std::vector<std::string> managers() const override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const Slot& s : slots_) out.push_back(Address(s.port));
    return out;
  }
  bool fails_over() const override { return true; }
  int store_members() const override { return etcd_->size(); }

  absl::Status Kill(Victim victim, int member) override {
    if (down_.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat(killed_, " is down already"));
    }
    if (victim == Victim::kStoreMember) {
      if (member < 0 || member >= etcd_->size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "etcd member ", member, " out of range [0, ", etcd_->size(), ")"));
      }
      const bool raft_leader = etcd_->RaftLeader() == member;
      etcd_->Kill(member);
      down_ = Down{victim, member};
      killed_ = absl::StrCat("etcd member ", member,
                             raft_leader ? " (etcd's raft leader)" : "");
      return absl::OkStatus();
    }
    absl::StatusOr<int> leader = FindLeader();
    if (!leader.ok()) return leader.status();
    const int index = victim == Victim::kLeader ? *leader : 1 - *leader;
    absl::MutexLock lock(&mu_);
    Slot& s = slots_[index];
    s.killed = true;
    KillChild(&s.child);
    down_ = Down{victim, index};
    killed_ = absl::StrCat("manager m", index, " at ", Address(s.port), " (",
                           victim == Victim::kLeader ? "the leader"
                                                     : "the standby",
                           ")");
    return absl::OkStatus();
  }

  absl::Status RestartKilled() override {
    if (!down_.has_value()) {
      return absl::FailedPreconditionError("nothing was killed");
    }
    const Down down = *down_;
    down_.reset();
    if (down.victim == Victim::kStoreMember) {
      RETURN_IF_ERROR(etcd_->Restart(down.index));
      // Back means a member again: it answers, knows etcd's leader and
      // serves a quorum read. A restarted member that still replays its log
      // holds requests sent to it until their deadline.
      if (!etcd_->WaitHealthy(kMemberBackTimeout, down.index)) {
        return absl::UnavailableError(absl::StrCat(
            "etcd member ", down.index, " did not rejoin within ",
            absl::FormatDuration(proctest::Scaled(kMemberBackTimeout)),
            "; see ", etcd_->LogPath(down.index)));
      }
      return absl::OkStatus();
    }
    absl::MutexLock lock(&mu_);
    slots_[down.index].killed = false;
    return StartLocked(down.index);
  }

  std::string killed() const override { return killed_; }

  std::vector<std::string> ReapUnexpected() override {
    absl::MutexLock lock(&mu_);
    SuperviseLocked();
    return std::exchange(unexpected_, {});
  }

  int leadership_losses() const override { return leadership_losses_; }

  absl::StatusOr<DurableState> LoadDurable(
      const std::string& copy_path) override {
    ASSIGN_OR_RETURN(store::StoreSpec spec, store::ParseStoreFlag(store_url_));
    return LoadEtcdDurableState(spec.etcd, copy_path);
  }

  void KeepLogs() override {
    for (int i = 0; i < etcd_->size(); ++i) {
      std::error_code ec;
      std::filesystem::copy_file(
          etcd_->LogPath(i), absl::StrCat(dir_, "/etcd-", i, ".log"),
          std::filesystem::copy_options::overwrite_existing, ec);
    }
  }

 private:
  struct Slot {
    int port = 0;  // 0 until the first start
    std::string log;
    std::unique_ptr<proctest::Child> child;
    size_t log_offset = 0;  // where this run's lines start
    bool killed = false;    // by Kill, until RestartKilled
  };
  struct Down {
    Victim victim;
    int index;  // the manager's slot, or the etcd member
  };

  int port(int i) const {
    absl::MutexLock lock(&mu_);
    return slots_[i].port;
  }

  absl::Status StartLocked(int i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Slot& s = slots_[i];
    std::vector<std::string> flags = CommonManagerFlags();
    flags.insert(flags.end(),
                 {"--store", store_url_, "--lease-ttl", kLeaseTtl,
                  "--audit-log", absl::StrCat(dir_, "/manager-", i, ".audit")});
    s.log_offset = proctest::ReadFile(s.log).size();
    absl::StatusOr<int> port =
        StartManagerOn(bin_dir_, s.port, "", s.log, flags, &s.child);
    if (!port.ok()) return port.status();
    s.port = *port;
    return absl::OkStatus();
  }

  // Whether the manager at `address` serves (a standby answers UNAVAILABLE).
  static bool Leads(const std::string& address) {
    auto stub = v1::FabricService::NewStub(Dial(address));
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(1));
    v1::ListFabricsRequest req;
    req.set_page_size(1);
    v1::ListFabricsResponse resp;
    return stub->ListFabrics(&ctx, req, &resp).ok();
  }

  // The slot of the manager that leads, as the managers tell it
  // (ManagerConnection follows a standby to the leader it names).
  absl::StatusOr<int> FindLeader() {
    const std::vector<std::string> all = managers();
    std::optional<int> found;
    proctest::WaitFor(
        [&] {
          ManagerConnection conn(all);
          if (!Leads(conn.target())) return false;
          const auto it = std::find(all.begin(), all.end(), conn.target());
          if (it == all.end()) return false;
          found = static_cast<int>(it - all.begin());
          return true;
        },
        kLeadTimeout, absl::Milliseconds(20));
    if (!found.has_value()) {
      return absl::UnavailableError(
          absl::StrCat("no manager led within ",
                       absl::FormatDuration(kLeadTimeout), "; see ", dir_,
                       "/manager-*.log"));
    }
    return *found;
  }

  void Supervise() {
    while (!stop_) {
      {
        absl::MutexLock lock(&mu_);
        SuperviseLocked();
      }
      // A supervisor's poll interval (systemd's RestartSec), not a wait for
      // a state.
      absl::SleepFor(kSupervisePoll);
    }
  }

  // Restarts every manager that exited though not killed, as systemd would;
  // an exit other than 1 after "lost the leadership" is unexpected.
  void SuperviseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      int code = 0;
      if (s.killed || s.child == nullptr || !s.child->TryWait(&code)) continue;
      s.child.reset();
      const std::string log = proctest::ReadFile(s.log);
      const bool lost =
          code == 1 && log.find(kLostLine, std::min(s.log_offset, log.size())) !=
                           std::string::npos;
      if (lost) {
        ++leadership_losses_;
      } else {
        unexpected_.push_back(absl::StrCat("fabric-manager m", i, " at ",
                                           Address(s.port),
                                           " exited by itself (", code,
                                           "); see ", s.log));
      }
      if (absl::Status st = StartLocked(static_cast<int>(i)); !st.ok()) {
        unexpected_.push_back(absl::StrCat("restart after exit ", code, ": ",
                                           st.message()));
      }
    }
  }

  const std::string bin_dir_;
  const std::string dir_;
  const std::unique_ptr<etcdtest::EtcdCluster> etcd_;
  const std::string store_url_;
  // Kill / RestartKilled state: the campaign's thread only.
  std::optional<Down> down_;
  std::string killed_;

  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> unexpected_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> leadership_losses_{0};
  std::atomic<bool> stop_{false};
  std::thread supervisor_;
};

}  // namespace

const char* StoreKindName(StoreKind kind) {
  switch (kind) {
    case StoreKind::kSqlite:
      return "sqlite";
    case StoreKind::kEtcd:
      return "etcd";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<ControlPlane>> ControlPlane::Start(
    StoreKind kind, const std::string& bin_dir, const std::string& dir) {
  if (kind == StoreKind::kSqlite) {
    auto cp = std::make_unique<SqliteControlPlane>(bin_dir, dir);
    RETURN_IF_ERROR(cp->StartManager());
    return cp;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<etcdtest::EtcdCluster> etcd,
                   etcdtest::EtcdCluster::Start(kEtcdMembers));
  auto cp = std::make_unique<EtcdControlPlane>(bin_dir, dir, std::move(etcd));
  RETURN_IF_ERROR(cp->StartManagers());
  return cp;
}

}  // namespace fabric::chaos
