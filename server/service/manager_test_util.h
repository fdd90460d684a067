// What the FabricManager tests share: ManagerTest (a manager over SQLite in
// a temp directory, behind a FaultInjectingStore, with a manual clock),
// request builders (and a lender's VF inventory), a dump of the store's
// tables, and a Store that holds writes to keep mutations in flight.
// Test-only.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_TEST_UTIL_H_
#define FABRIC_SERVER_SERVICE_MANAGER_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/config_digest.h"
#include "common/testing/manual_clock.h"
#include "gtest/gtest.h"
#include "server/service/manager.h"
#include "server/store/sqlite_store.h"
#include "server/store/testing/fault_injecting_store.h"

namespace fabric::service {

// A temp directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "fabric-manager-test-XXXXXX")
            .string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_; }

 private:
  std::string path_;
};

inline v1::CreateFabricRequest RingRequest(const std::string& name, int n,
                                    const std::string& prefix = "n") {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name(name);
  req.mutable_spec()->set_topology(v1::RING);
  for (int i = 0; i < n; ++i)
    req.mutable_spec()->add_nodes()->set_name(absl::StrCat(prefix, i));
  return req;
}

inline v1::CreateAllocationRequest AllocRequest(const std::string& from,
                                         const std::string& to, uint64_t size,
                                         const std::string& request_id = "") {
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(from);
  req.mutable_allocation()->set_target(to);
  req.mutable_allocation()->set_size(size);
  req.set_request_id(request_id);
  return req;
}

// Where a lender's device MMIO range starts (its node's mmio_base).
inline constexpr uint64_t kMmio = 0x300'0000'0000ull;

// A lender's inventory: PF 3b:00.0 with VFs 3b:02.0..3, each with a 64 KiB
// BAR0 and a 16 KiB BAR3 in a range at kMmio.
inline v1::NodeInventory LenderInventory() {
  v1::NodeInventory inv;
  v1::PciFunction* pf = inv.add_functions();
  pf->set_address("0000:3b:00.0");
  pf->set_kind(v1::PciFunction::SRIOV_PF);
  pf->set_vendor_id(0x8086);
  for (int i = 0; i < 4; ++i) {
    v1::PciFunction* vf = inv.add_functions();
    vf->set_address(absl::StrCat("0000:3b:02.", i));
    vf->set_pf_address("0000:3b:00.0");
    vf->set_kind(v1::PciFunction::SRIOV_VF);
    vf->set_vendor_id(0x8086);
    vf->set_device_id(0x154c);
    for (int bar = 0; bar < 6; ++bar) {
      const uint64_t size = bar == 0 ? 64 << 10 : bar == 3 ? 16 << 10 : 0;
      vf->add_bar_sizes(size);
      vf->add_bar_addresses(size == 0 ? 0
                                      : kMmio + (bar == 0 ? 0 : 1 << 20) +
                                            static_cast<uint64_t>(i) * size);
    }
  }
  return inv;
}

inline v1::CreateAttachmentRequest AttachRequest(
    const std::string& vf, const std::string& to,
    const std::string& request_id = "") {
  v1::CreateAttachmentRequest req;
  req.mutable_attachment()->set_vf(vf);
  req.mutable_attachment()->set_borrower(to);
  req.set_request_id(request_id);
  return req;
}

// Every (table, key, value) of the manager's tables, to prove that a
// rejected request changed nothing.
inline std::vector<std::string> Dump(store::Store* s) {
  std::vector<std::string> out;
  for (const char* t :
       {"fabrics", "links", "allocations", "attachments", "requests",
        "deleting_fabrics"}) {
    auto rows = s->Scan(t);
    EXPECT_TRUE(rows.ok());
    for (const auto& [k, v] : *rows)
      out.push_back(absl::StrCat(t, "/", k, "=", v));
  }
  return out;
}

// The request ids of the requests table's rows (keyed
// "{time}/{id}", RequestRowKey).
inline std::set<std::string> RequestRows(store::Store* s) {
  std::set<std::string> out;
  auto rows = s->Scan("requests");
  EXPECT_TRUE(rows.ok());
  if (rows.ok()) {
    for (const auto& [k, v] : *rows) out.insert(k.substr(k.find('/') + 1));
  }
  return out;
}

// A Store whose Apply can be held until released, to keep mutations in
// flight.
class BlockingStore : public store::Store {
 public:
  explicit BlockingStore(store::Store* base) : base_(base) {}
  void Block() {
    absl::MutexLock l(&mu_);
    blocked_ = true;
  }
  void Unblock() {
    absl::MutexLock l(&mu_);
    blocked_ = false;
  }
  // Waits until an Apply is being held.
  void AwaitHeld() {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](BlockingStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
          return s->held_ > 0;
        },
        this));
  }
  absl::Status Apply(const store::WriteBatch& batch) override {
    {
      absl::MutexLock l(&mu_);
      ++held_;
      mu_.Await(absl::Condition(
          +[](BlockingStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return !s->blocked_;
          },
          this));
      --held_;
    }
    return base_->Apply(batch);
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
  store::StoreLimits limits() const override { return base_->limits(); }

 private:
  store::Store* const base_;
  absl::Mutex mu_;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
};

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sqlite_ = *store::OpenSqliteStore({.path = dir_.path() + "/fabric.db"});
    store_ = std::make_unique<store::FaultInjectingStore>(sqlite_.get());
    Reopen();
  }

  void Reopen() {
    manager_.reset();
    auto m = FabricManager::Open(store_.get(), &clock_, opts_);
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = *std::move(m);
  }

  // Plays a well-behaved agent for every node of `fabric`: registers and
  // reports the current generation, attesting to what it holds.
  void AllAgentsApply(const std::string& fabric) {
    v1::ListNodesRequest ln;
    ln.set_fabric(fabric);
    auto nodes = manager_->ListNodes(ln);
    ASSERT_TRUE(nodes.ok());
    for (const auto& n : nodes->nodes()) {
      if (n.agent_state() != v1::Node::READY) {
        agentproto::v1::RegisterNodeRequest reg;
        reg.set_node(n.name());
        ASSERT_TRUE(manager_->RegisterNode(reg).ok());
      }
      auto cfg = manager_->DesiredConfigFor(n.name());
      ASSERT_TRUE(cfg.ok());
      agentproto::v1::ReportStatusRequest rep;
      rep.set_node(n.name());
      rep.set_applied_generation(cfg->generation());
      rep.set_held_config_digest(ConfigDigest(*cfg));
      ASSERT_TRUE(manager_->ReportStatus(rep).ok());
    }
  }

  static ManagerOptions TestOptions() {
    ManagerOptions opts;
    opts.sweep_interval = absl::ZeroDuration();  // tests call Sweep()
    opts.heartbeat_timeout = absl::Seconds(3);
    opts.request_retention = absl::Hours(1);
    return opts;
  }

  ManagerOptions opts_ = TestOptions();
  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<store::Store> sqlite_;
  std::unique_ptr<store::FaultInjectingStore> store_;
  std::unique_ptr<FabricManager> manager_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_TEST_UTIL_H_
