#include "server/service/manager.h"

#include <malloc.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "server/store/testing/fault_injecting_store.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

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

v1::CreateFabricRequest RingRequest(const std::string& name, int n,
                                    const std::string& prefix = "n") {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name(name);
  req.mutable_spec()->set_topology(v1::RING);
  for (int i = 0; i < n; ++i)
    req.mutable_spec()->add_nodes()->set_name(absl::StrCat(prefix, i));
  return req;
}

v1::CreateAllocationRequest AllocRequest(const std::string& from,
                                         const std::string& to, uint64_t size,
                                         const std::string& request_id = "") {
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(from);
  req.mutable_allocation()->set_target(to);
  req.mutable_allocation()->set_size(size);
  req.set_request_id(request_id);
  return req;
}

// Every (table, key, value) of the manager's tables, to prove that a
// rejected request changed nothing.
std::vector<std::string> Dump(store::Store* s) {
  std::vector<std::string> out;
  for (const char* t :
       {"fabrics", "links", "allocations", "attachments", "requests"}) {
    auto rows = s->Scan(t);
    EXPECT_TRUE(rows.ok());
    for (const auto& [k, v] : *rows)
      out.push_back(absl::StrCat(t, "/", k, "=", v));
  }
  return out;
}

// The keys of the requests table.
std::set<std::string> RequestRows(store::Store* s) {
  std::set<std::string> out;
  auto rows = s->Scan("requests");
  EXPECT_TRUE(rows.ok());
  if (rows.ok()) {
    for (const auto& [k, v] : *rows) out.insert(k);
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
  // reports the current generation.
  void AllAgentsApply(const std::string& fabric) {
    v1::ListNodesRequest ln;
    ln.set_fabric(fabric);
    auto nodes = manager_->ListNodes(ln);
    ASSERT_TRUE(nodes.ok());
    for (const auto& n : nodes->nodes()) {
      if (n.agent_state() != v1::Node::READY) {
        v1::RegisterNodeRequest reg;
        reg.set_node(n.name());
        ASSERT_TRUE(manager_->RegisterNode(reg).ok());
      }
      auto cfg = manager_->DesiredConfigFor(n.name());
      ASSERT_TRUE(cfg.ok());
      v1::ReportStatusRequest rep;
      rep.set_node(n.name());
      rep.set_applied_generation(cfg->generation());
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

TEST_F(ManagerTest, RingAllocationGetsWindowAndPath) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n3", 4 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->name(), HasSubstr("allocations/alloc-"));
  EXPECT_EQ(a->state(), v1::Allocation::PENDING);
  EXPECT_EQ(a->size(), 4u << 20);
  EXPECT_NE(a->borrower_addr(), 0u);
  // The shorter way from n0 to n3 on an 8-ring is clockwise.
  EXPECT_THAT(a->path(), testing::ElementsAre("bridges/n0", "bridges/n1",
                                              "bridges/n2", "bridges/n3"));
  auto map = manager_->GetAddressMap("bridges/n0/addressMap");
  ASSERT_TRUE(map.ok());
  ASSERT_EQ(map->windows_size(), 1);
  EXPECT_EQ(map->windows(0).local_base(), a->borrower_addr());
  EXPECT_EQ(map->windows(0).translated_addr(), a->fabric_addr());
  auto target_map = manager_->GetAddressMap("bridges/n3");
  ASSERT_TRUE(target_map.ok());
  ASSERT_EQ(target_map->inbound_size(), 1);
  EXPECT_EQ(target_map->inbound(0).local_base(), a->target_addr());
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, AllocationBecomesReadyWhenAgentsApply) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  AllAgentsApply("lab");
  auto got = manager_->GetAllocation(a->name());
  EXPECT_EQ(got->state(), v1::Allocation::READY) << got->state_reason();
  // A new allocation needs a new generation applied.
  auto b = manager_->CreateAllocation(AllocRequest("n2", "n1", 1 << 20));
  EXPECT_EQ(manager_->GetAllocation(b->name())->state(),
            v1::Allocation::PENDING);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

TEST_F(ManagerTest, RetriedRequestIdReturnsOriginalAndAllocatesOnce) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  auto first =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-1"));
  ASSERT_TRUE(first.ok());
  auto again =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->name(), again->name());
  EXPECT_EQ(first->borrower_addr(), again->borrower_addr());
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  // The memory of the request id survives a restart.
  Reopen();
  auto after =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-1"));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->name(), first->name());
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  // Reusing the id for another request is refused.
  auto other =
      manager_->CreateAllocation(AllocRequest("n1", "n2", 1 << 20, "r-1"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.status().message(), HasSubstr("request_id"));
}

TEST_F(ManagerTest, RequestIdsAreForgottenAfterRetention) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  ASSERT_TRUE(
      manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20, "r-9"))
          .ok());
  clock_.Advance(absl::Minutes(59));
  manager_->Sweep();
  EXPECT_EQ(manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-9"))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  clock_.Advance(absl::Minutes(2));
  manager_->Sweep();
  // Forgotten in memory and in the store: the id is free again, even after
  // a restart.
  EXPECT_FALSE(store_->Get("requests", "r-9").ok());
  Reopen();
  auto reused =
      manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20, "r-9"));
  EXPECT_TRUE(reused.ok()) << reused.status();
}

// --- The cap on remembered request ids (--max-request-ids)

// The request of the i-th allocation of the cap tests.
v1::CreateAllocationRequest NthAlloc(int i) {
  return AllocRequest(absl::StrCat("n", i % 8), absl::StrCat("n", (i + 3) % 8),
                      1 << 20, absl::StrCat("r-", i));
}

TEST_F(ManagerTest, MaxRequestIdsMustBeInRange) {
  for (int64_t bad : {int64_t{0}, int64_t{-1}, kMaxRequestIdsLimit + 1}) {
    ManagerOptions opts = TestOptions();
    opts.max_request_ids = bad;
    auto m = FabricManager::Open(store_.get(), &clock_, opts);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("max_request_ids"));
    EXPECT_THAT(m.status().message(),
                HasSubstr(absl::StrCat(kMaxRequestIdsLimit)));
  }
}

TEST_F(ManagerTest, OldestRequestIdsAreForgottenBeyondTheCap) {
  opts_.max_request_ids = 5;
  Reopen();
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(absl::Seconds(1));
    auto a = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(a.ok()) << i << ": " << a.status();
    names.push_back(a->name());
    // Bounded at every step, not only after a sweep.
    EXPECT_LE(manager_->RememberedRequestIds(), 5u) << i;
    EXPECT_LE(RequestRows(store_.get()).size(), 5u) << i;
  }
  const std::set<std::string> newest = {"r-10", "r-11", "r-7", "r-8", "r-9"};
  for (bool restarted : {false, true}) {
    SCOPED_TRACE(restarted ? "after a restart" : "before a restart");
    if (restarted) Reopen();
    EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
    EXPECT_EQ(RequestRows(store_.get()), newest);
    // The newest five are still recognized: same answer, nothing new.
    for (int i = 7; i < 12; ++i) {
      auto again = manager_->CreateAllocation(NthAlloc(i));
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(again->name(), names[i]) << i;
    }
    EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 12);
    EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  }
  // The oldest is forgotten: its retry is a new request, which makes a
  // second allocation and pushes out the oldest remembered id (r-7).
  auto retry = manager_->CreateAllocation(NthAlloc(0));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_NE(retry->name(), names[0]);
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 13);
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"r-0", "r-10", "r-11", "r-8", "r-9"}));
  // A delete's id counts the same way.
  v1::DeleteAllocationRequest del;
  del.set_name(retry->name());
  del.set_request_id("d-0");
  ASSERT_TRUE(manager_->DeleteAllocation(del).ok());
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"d-0", "r-0", "r-10", "r-11", "r-9"}));
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, RestartRestoresAtMostMaxRequestIds) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(absl::Seconds(1));
    auto a = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(a.ok()) << a.status();
    names.push_back(a->name());
  }
  EXPECT_EQ(RequestRows(store_.get()).size(), 12u);
  // Restarted with a lower cap: the newest five are kept, the older rows
  // deleted, so that a later restart with a higher cap does not bring them
  // back.
  opts_.max_request_ids = 5;
  Reopen();
  const std::set<std::string> newest = {"r-10", "r-11", "r-7", "r-8", "r-9"};
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()), newest);
  opts_.max_request_ids = 100;
  Reopen();
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()), newest);
  for (int i = 7; i < 12; ++i) {
    auto again = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->name(), names[i]) << i;
  }
  auto retry = manager_->CreateAllocation(NthAlloc(6));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_NE(retry->name(), names[6]);
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 13);
}

TEST_F(ManagerTest, FailedForgetKeepsRequestIdsAndIsRetried) {
  opts_.max_request_ids = 5;
  Reopen();
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    auto a = manager_->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(a.ok()) << a.status();
    names.push_back(a->name());
  }
  // The write that would record r-5 and forget r-0 fails: neither happens.
  const auto before = Dump(store_.get());
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  EXPECT_EQ(manager_->CreateAllocation(NthAlloc(5)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Dump(store_.get()), before);
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  store_->Heal();
  auto r0 = manager_->CreateAllocation(NthAlloc(0));
  ASSERT_TRUE(r0.ok()) << r0.status();
  EXPECT_EQ(r0->name(), names[0]);
  // Tried again with the next new id.
  ASSERT_TRUE(manager_->CreateAllocation(NthAlloc(5)).ok());
  EXPECT_EQ(RequestRows(store_.get()),
            (std::set<std::string>{"r-1", "r-2", "r-3", "r-4", "r-5"}));
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);

  // The sweep's delete (past retention) fails: still remembered in memory
  // as in the store, and forgotten by the next sweep.
  clock_.Advance(absl::Hours(2));
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  manager_->Sweep();
  EXPECT_EQ(manager_->RememberedRequestIds(), 5u);
  EXPECT_EQ(RequestRows(store_.get()).size(), 5u);
  store_->Heal();
  manager_->Sweep();
  EXPECT_EQ(manager_->RememberedRequestIds(), 0u);
  EXPECT_TRUE(RequestRows(store_.get()).empty());
  Reopen();
  EXPECT_EQ(manager_->RememberedRequestIds(), 0u);
}

TEST_F(ManagerTest, InFlightRequestIdsAreNeverForgotten) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  manager_.reset();
  BlockingStore blocking(store_.get());
  ManagerOptions opts = TestOptions();
  opts.max_request_ids = 3;
  auto opened = FabricManager::Open(&blocking, &clock_, opts);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<FabricManager> m = *std::move(opened);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(m->CreateAllocation(NthAlloc(i)).ok());
  }
  // r-3 holds the store; r-4..r-9 queue behind it, in flight, and so does
  // a retry of r-4 (answered with r-4's result).
  blocking.Block();
  absl::StatusOr<v1::Allocation> first;
  std::thread leader([&] { first = m->CreateAllocation(NthAlloc(3)); });
  blocking.AwaitHeld();
  absl::Mutex mu;
  std::map<std::string, std::vector<std::string>> answers;  // id -> names
  absl::BlockingCounter pending(7);
  auto send = [&](int i) {
    const auto req = NthAlloc(i);
    m->CreateAllocationAsync(req, [&, id = req.request_id()](
                                      absl::StatusOr<v1::Allocation> a) {
      absl::MutexLock l(&mu);
      answers[id].push_back(a.ok() ? a->name() : a.status().ToString());
      pending.DecrementCount();
    });
  };
  for (int i = 4; i < 10; ++i) send(i);
  // Seven ids in flight, over a cap of three: none is forgotten.
  EXPECT_GE(m->RememberedRequestIds(), 7u);
  send(4);
  blocking.Unblock();
  leader.join();
  pending.Wait();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(answers["r-4"].size(), 2u);
  EXPECT_EQ(answers["r-4"][0], answers["r-4"][1]);
  EXPECT_THAT(answers["r-4"][0], HasSubstr("allocations/"));
  // 3 before, r-3, r-4..r-9: ten allocations, not eleven.
  EXPECT_EQ(m->ListAllocations({})->allocations_size(), 10);
  // The ids pushed over the cap while in flight are still recognized once
  // done (until newer ids or a sweep forget them).
  for (int i = 3; i < 10; ++i) {
    auto again = m->CreateAllocation(NthAlloc(i));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->name(),
              i == 3 ? first->name() : answers[absl::StrCat("r-", i)][0])
        << i;
  }
  EXPECT_EQ(m->ListAllocations({})->allocations_size(), 10);
  // At most the cap plus what was in flight, and the cap after a sweep.
  EXPECT_LE(m->RememberedRequestIds(), 3u + 7u);
  m->Sweep();
  EXPECT_EQ(m->RememberedRequestIds(), 3u);
  EXPECT_EQ(RequestRows(&blocking),
            (std::set<std::string>{"r-7", "r-8", "r-9"}));
  m.reset();
}

// A Store that accepts every write and keeps nothing, so that a
// measurement sees the manager's own memory only.
class DiscardingStore : public store::Store {
 public:
  absl::Status Apply(const store::WriteBatch&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Get(absl::string_view,
                                  absl::string_view) override {
    return absl::NotFoundError("discarding store");
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      absl::string_view) override {
    return std::vector<std::pair<std::string, std::string>>();
  }
  store::StoreStats stats() const override { return {}; }
};

// Measures what one remembered request id costs the manager in heap (glibc
// malloc), to back the --max-request-ids default and the README: ids like
// the overload bench's, on create and delete.
TEST_F(ManagerTest, RequestIdHeapCost) {
  manager_.reset();
  DiscardingStore discarding;
  auto opened = FabricManager::Open(&discarding, &clock_, TestOptions());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<FabricManager> m = *std::move(opened);
  ASSERT_TRUE(m->CreateFabric(RingRequest("lab", 16)).ok());
  size_t response_bytes = 0;
  auto churn = [&](int n, bool with_ids) {
    for (int i = 0; i < n; ++i) {
      v1::CreateAllocationRequest req =
          AllocRequest(absl::StrCat("n", i % 16),
                       absl::StrCat("n", (i + 5) % 16), 1 << 20,
                       with_ids ? absl::StrCat("c", i % 400, "-", i) : "");
      req.mutable_allocation()->set_owner("overload");
      auto a = m->CreateAllocation(req);
      ASSERT_TRUE(a.ok()) << a.status();
      response_bytes = a->ByteSizeLong();
      v1::DeleteAllocationRequest del;
      del.set_name(a->name());
      if (with_ids) del.set_request_id(absl::StrCat("c", i % 400, "-", i, "d"));
      ASSERT_TRUE(m->DeleteAllocation(del).ok());
    }
  };
  constexpr int kN = 4000;
  churn(kN, false);  // warms every cache but the ids'
  const size_t heap0 = mallinfo2().uordblks;
  if (heap0 == 0) GTEST_SKIP() << "no glibc malloc statistics";
  churn(kN, true);
  const size_t heap1 = mallinfo2().uordblks;
  ASSERT_EQ(m->RememberedRequestIds(), 2u * kN);
  const double per_id = (static_cast<double>(heap1) - heap0) / (2 * kN);
  std::cout << "heap per remembered request id: " << per_id
            << " bytes (a serialized Allocation response: " << response_bytes
            << " bytes)\n";
  // The figure quoted for --max-request-ids: about 1 KiB.
  EXPECT_GT(per_id, 256);
  EXPECT_LT(per_id, 1536);
  m.reset();
}

TEST_F(ManagerTest, BadInputIsRejectedAndChangesNothing) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  ASSERT_TRUE(
      manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20)).ok());
  const auto before = Dump(store_.get());
  struct Case {
    absl::StatusCode code;
    std::string substr;
    std::function<absl::Status()> call;
  };
  std::vector<Case> cases = {
      {absl::StatusCode::kNotFound, "allocation.borrower",
       [&] {
         return manager_->CreateAllocation(AllocRequest("zz", "n1", 4096))
             .status();
       }},
      {absl::StatusCode::kNotFound, "allocation.target",
       [&] {
         return manager_->CreateAllocation(AllocRequest("n0", "zz", 4096))
             .status();
       }},
      {absl::StatusCode::kInvalidArgument, "allocation.size",
       [&] {
         return manager_->CreateAllocation(AllocRequest("n0", "n1", 0))
             .status();
       }},
      {absl::StatusCode::kInvalidArgument, "granularity",
       [&] {
         return manager_->CreateAllocation(AllocRequest("n0", "n1", 5000))
             .status();
       }},
      {absl::StatusCode::kResourceExhausted, "size",
       [&] {
         return manager_->CreateAllocation(AllocRequest("n0", "n1", 4ull << 30))
             .status();
       }},
      {absl::StatusCode::kInvalidArgument, "borrower",
       [&] {
         return manager_->CreateAllocation(AllocRequest("n0", "n0", 4096))
             .status();
       }},
      {absl::StatusCode::kInvalidArgument, "at least 2",
       [&] {
         return manager_->CreateFabric(RingRequest("solo", 1, "s")).status();
       }},
      {absl::StatusCode::kAlreadyExists, "spec.name",
       [&] {
         return manager_->CreateFabric(RingRequest("lab", 2, "x")).status();
       }},
      {absl::StatusCode::kAlreadyExists, "n0",
       [&] { return manager_->CreateFabric(RingRequest("lab2", 2)).status(); }},
      {absl::StatusCode::kInvalidArgument, "duplicate",
       [&] {
         auto req = RingRequest("dup", 2, "d");
         req.mutable_spec()->mutable_nodes(1)->set_name("d0");
         return manager_->CreateFabric(req).status();
       }},
      {absl::StatusCode::kNotFound, "link",
       [&] {
         v1::SetLinkStateRequest req;
         req.set_name("links/n0--n2");
         return manager_->SetLinkState(req).status();
       }},
      {absl::StatusCode::kNotFound, "allocation",
       [&] {
         v1::DeleteAllocationRequest req;
         req.set_name("allocations/alloc-nope");
         return manager_->DeleteAllocation(req).status();
       }},
      {absl::StatusCode::kInvalidArgument, "allocation.ttl",
       [&] {
         auto req = AllocRequest("n0", "n1", 4096);
         req.mutable_allocation()->mutable_ttl()->set_seconds(-5);
         return manager_->CreateAllocation(req).status();
       }},
      {absl::StatusCode::kInvalidArgument, "page_size",
       [&] {
         v1::ListAllocationsRequest req;
         req.set_page_size(-1);
         return manager_->ListAllocations(req).status();
       }},
  };
  for (const auto& c : cases) {
    absl::Status s = c.call();
    EXPECT_EQ(s.code(), c.code) << c.substr << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.substr)) << s;
  }
  EXPECT_EQ(Dump(store_.get()), before);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, StoreFailureIsUnavailableAndLeavesNoTrace) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  const auto before = Dump(store_.get());
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20, "r-7"));
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(a.status().message(), HasSubstr("disk full"));
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  EXPECT_EQ(manager_->SetLinkState(down).status().code(),
            absl::StatusCode::kUnavailable);
  // Reads keep working and show nothing of the failed writes.
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 0);
  EXPECT_TRUE(manager_->GetLink("links/n0--n1")->up());
  EXPECT_EQ(manager_->GetAddressMap("bridges/n0")->windows_size(), 0);
  EXPECT_EQ(Dump(store_.get()), before);
  // The manager recovers by itself when the store does, and the request id
  // of the failed request may be used again.
  store_->Heal();
  auto retry =
      manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20, "r-7"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, RestartRestoresMapsAllocationsAndLinks) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<v1::Allocation> made;
  for (int i = 0; i < 8; ++i) {
    auto a = manager_->CreateAllocation(AllocRequest(
        absl::StrCat("n", i), absl::StrCat("n", (i + 3) % 8), (i + 1) << 20));
    ASSERT_TRUE(a.ok()) << a.status();
    made.push_back(*a);
  }
  v1::SetLinkStateRequest down;
  down.set_name("links/n2--n3");
  ASSERT_TRUE(manager_->SetLinkState(down).ok());
  auto maps_before = manager_->ListAddressMaps({});
  auto allocs_before = manager_->ListAllocations({});
  const int64_t gen_before = manager_->GetFabric("lab")->generation();
  Reopen();
  auto maps_after = manager_->ListAddressMaps({});
  auto allocs_after = manager_->ListAllocations({});
  ASSERT_EQ(maps_after->address_maps_size(), 8);
  for (int i = 0; i < 8; ++i) {
    v1::AddressMap a = maps_before->address_maps(i),
                   b = maps_after->address_maps(i);
    a.clear_generation();
    b.clear_generation();
    EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString()) << a.name();
  }
  ASSERT_EQ(allocs_after->allocations_size(), 8);
  for (int i = 0; i < 8; ++i) {
    const auto& a = allocs_before->allocations(i);
    const auto& b = allocs_after->allocations(i);
    EXPECT_EQ(a.name(), b.name());
    EXPECT_EQ(a.borrower_addr(), b.borrower_addr());
    EXPECT_EQ(a.target_addr(), b.target_addr());
    EXPECT_EQ(a.fabric_addr(), b.fabric_addr());
  }
  EXPECT_FALSE(manager_->GetLink("links/n2--n3")->up());
  // Generations never go backwards across restarts.
  EXPECT_GT(manager_->GetFabric("lab")->generation(), gen_before);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}

TEST_F(ManagerTest, LinkDownDegradesCutAllocationsAndLinkUpRestores) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 6)).ok());
  auto across = manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20));
  auto near = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(across.ok() && near.ok());
  AllAgentsApply("lab");
  v1::SetLinkStateRequest req;
  req.set_name("links/n1--n2");
  req.set_up(false);
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  // One break: the ring is a line, everything still routes (the long way).
  auto rerouted = manager_->GetAllocation(across->name());
  EXPECT_NE(rerouted->state(), v1::Allocation::DEGRADED);
  EXPECT_THAT(rerouted->path(),
              testing::ElementsAre("bridges/n0", "bridges/n5", "bridges/n4",
                                   "bridges/n3", "bridges/n2"));
  // Two breaks partition it into {n5, n0, n1} and {n2, n3, n4}.
  req.set_name("links/n4--n5");
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  AllAgentsApply("lab");
  auto cut = manager_->GetAllocation(across->name());
  EXPECT_EQ(cut->state(), v1::Allocation::DEGRADED);
  EXPECT_THAT(cut->state_reason(), HasSubstr("n1--n2"));
  EXPECT_EQ(manager_->GetAllocation(near->name())->state(),
            v1::Allocation::READY);
  EXPECT_TRUE(manager_->CheckInvariants().ok());
  req.set_up(true);
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  req.set_name("links/n1--n2");
  ASSERT_TRUE(manager_->SetLinkState(req).ok());
  AllAgentsApply("lab");
  auto back = manager_->GetAllocation(across->name());
  EXPECT_EQ(back->state(), v1::Allocation::READY) << back->state_reason();
  EXPECT_THAT(back->path(),
              testing::ElementsAre("bridges/n0", "bridges/n1", "bridges/n2"));
}

// Fabric and link mutations are decided one at a time: one called while
// another is being written waits for its turn (on no thread), and is then
// decided on the state the other left.
TEST_F(ManagerTest, FabricMutationsAreDecidedOneAtATime) {
  manager_.reset();
  BlockingStore blocking(store_.get());
  auto opened = FabricManager::Open(&blocking, &clock_, TestOptions());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<FabricManager> m = *std::move(opened);
  blocking.Block();
  absl::StatusOr<v1::Fabric> first;
  std::thread leader([&] { first = m->CreateFabric(RingRequest("lab", 4)); });
  blocking.AwaitHeld();

  absl::Mutex mu;
  std::vector<std::string> answers;
  absl::BlockingCounter pending(2);
  auto answer = [&](absl::string_view what, const absl::Status& s) {
    absl::MutexLock l(&mu);
    answers.push_back(absl::StrCat(what, ": ", s.ToString()));
    pending.DecrementCount();
  };
  // The same name again: decided once "lab" exists, so refused rather than
  // written over it.
  m->CreateFabricAsync(
      RingRequest("lab", 2, "x"),
      [&](absl::StatusOr<v1::Fabric> f) { answer("create", f.status()); });
  // A link of the fabric being written: found once it is.
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  m->SetLinkStateAsync(
      down, [&](absl::StatusOr<v1::Link> l) { answer("link", l.status()); });
  {
    absl::MutexLock l(&mu);
    EXPECT_TRUE(answers.empty());
  }
  blocking.Unblock();
  leader.join();
  pending.Wait();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_THAT(answers[0], HasSubstr("create: ALREADY_EXISTS"));
  EXPECT_THAT(answers[0], HasSubstr("spec.name"));
  EXPECT_EQ(answers[1], "link: OK");
  EXPECT_EQ(m->GetFabric("lab")->spec().nodes_size(), 4);
  EXPECT_FALSE(m->GetLink("links/n0--n1")->up());
  EXPECT_TRUE(m->CheckInvariants().ok());
  m.reset();
}

// A fabric or link mutation that fails passes the turn on.
TEST_F(ManagerTest, FailedFabricMutationLetsTheNextOneRun) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  v1::SetLinkStateRequest down;
  down.set_name("links/n0--n1");
  store_->FailWrites(absl::UnavailableError("disk full (injected)"));
  EXPECT_EQ(manager_->SetLinkState(down).status().code(),
            absl::StatusCode::kUnavailable);
  store_->Heal();
  ASSERT_TRUE(manager_->SetLinkState(down).ok());
  EXPECT_FALSE(manager_->GetLink("links/n0--n1")->up());
  v1::DeleteFabricRequest del;
  del.set_name("nope");
  EXPECT_EQ(manager_->DeleteFabric(del).status().code(),
            absl::StatusCode::kNotFound);
  del.set_name("lab");
  EXPECT_TRUE(manager_->DeleteFabric(del).ok());
}

TEST_F(ManagerTest, ExpiredLeaseIsReclaimed) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto req = AllocRequest("n0", "n1", 1 << 20);
  req.mutable_allocation()->set_owner("scheduler-a");
  req.mutable_allocation()->mutable_ttl()->set_seconds(30);
  auto leased = manager_->CreateAllocation(req);
  auto kept = manager_->CreateAllocation(AllocRequest("n0", "n2", 1 << 20));
  ASSERT_TRUE(leased.ok() && kept.ok());
  clock_.Advance(absl::Seconds(29));
  manager_->Sweep();
  EXPECT_TRUE(manager_->GetAllocation(leased->name()).ok());
  clock_.Advance(absl::Seconds(2));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetAllocation(leased->name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(manager_->GetAllocation(kept->name()).ok());
  // Its window and target range are free again, and durably so.
  Reopen();
  EXPECT_EQ(manager_->ListAllocations({})->allocations_size(), 1);
  EXPECT_EQ(manager_->GetAddressMap("bridges/n1")->inbound_size(), 0);
}

TEST_F(ManagerTest, SilentAgentGoesNotReady) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  AllAgentsApply("lab");
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
  clock_.Advance(absl::Seconds(4));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  AllAgentsApply("lab");
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

// A late heartbeat from an agent whose config stream is open (a live
// transport, e.g. an agent starved of CPU under load) does not flip its
// node; once the stream closes, or stream_grace passes, it does.
TEST_F(ManagerTest, OpenConfigStreamKeepsALateAgentReady) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  AllAgentsApply("lab");
  const int64_t s0 = manager_->GetNode("n0")->agent_session();
  const int64_t s1 = manager_->GetNode("n1")->agent_session();
  ASSERT_TRUE(manager_->ConfigStreamOpened("n0", s0).ok());
  ASSERT_TRUE(manager_->ConfigStreamOpened("nodes/n1", s1).ok());
  // A reader's stream (no session) proves nothing of n2's agent.
  ASSERT_TRUE(manager_->ConfigStreamOpened("n2", 0).ok());
  clock_.Advance(absl::Seconds(4));  // past heartbeat_timeout (3 s)
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetNode("n2")->agent_state(), v1::Node::NOT_READY);

  // The stream of n0 ends (the agent died): its late heartbeat counts, and
  // its address is not kept.
  manager_->ConfigStreamClosed("n0", s0);
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);

  // n1's stream stays open, but past stream_grace (30 s) it is silent too.
  clock_.Advance(absl::Seconds(27));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::NOT_READY);
  manager_->ConfigStreamClosed("n1", s1);
  manager_->ConfigStreamClosed("n2", 0);
  // Unknown and unregistered nodes have no stream.
  EXPECT_EQ(manager_->ConfigStreamOpened("nope", 0).code(),
            absl::StatusCode::kFailedPrecondition);
}

// One session per node: a newer registration fences the older one, whose
// reports and streams are refused (ABORTED); the takeover is shown; the
// address of a session whose stream ended is not kept.
TEST_F(ManagerTest, NewerRegistrationFencesTheOlderSession) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  v1::RegisterNodeRequest reg;
  reg.set_node("n1");
  reg.set_control_address("127.0.0.1:1001");
  auto first = manager_->RegisterNode(reg);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_NE(first->session(), 0);
  ASSERT_TRUE(manager_->ConfigStreamOpened("n1", first->session()).ok());

  reg.set_control_address("127.0.0.1:1002");
  auto second = manager_->RegisterNode(reg);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->session(), first->session());
  v1::Node n1 = *manager_->GetNode("n1");
  EXPECT_EQ(n1.agent_session(), second->session());
  EXPECT_EQ(n1.agent_address(), "127.0.0.1:1002");
  EXPECT_THAT(n1.agent_takeover(), HasSubstr("127.0.0.1:1001"));
  EXPECT_THAT(n1.agent_takeover(), HasSubstr("127.0.0.1:1002"));

  v1::ReportStatusRequest rep;
  rep.set_node("n1");
  rep.set_session(first->session());
  auto refused = manager_->ReportStatus(rep);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(refused.status().message(), HasSubstr("fenced"));
  EXPECT_EQ(manager_->ConfigStreamOpened("n1", first->session()).code(),
            absl::StatusCode::kAborted);
  // The fenced session's stream ending changes nothing of the new one.
  manager_->ConfigStreamClosed("n1", first->session());
  EXPECT_EQ(manager_->GetNode("n1")->agent_address(), "127.0.0.1:1002");
  rep.set_session(second->session());
  EXPECT_TRUE(manager_->ReportStatus(rep).ok());

  // The current session's transport ends: its address is forgotten until
  // the agent registers again.
  ASSERT_TRUE(manager_->ConfigStreamOpened("n1", second->session()).ok());
  manager_->ConfigStreamClosed("n1", second->session());
  EXPECT_EQ(manager_->GetNode("n1")->agent_address(), "");
}

// Reports travel on two threads of the agent (heartbeats, and the report
// after each apply) and may arrive out of order: an older one is ignored,
// so the applied generation never goes backwards.
TEST_F(ManagerTest, OvertakenReportIsIgnored) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 2)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok());
  for (const char* n : {"n0", "n1"}) {
    v1::RegisterNodeRequest reg;
    reg.set_node(n);
    auto registered = manager_->RegisterNode(reg);
    ASSERT_TRUE(registered.ok());
    const int64_t generation = manager_->DesiredConfigFor(n)->generation();
    v1::ReportStatusRequest fresh;
    fresh.set_node(n);
    fresh.set_session(registered->session());
    fresh.set_sequence(2);
    fresh.set_applied_generation(generation);
    ASSERT_TRUE(manager_->ReportStatus(fresh).ok());
    // A heartbeat built before the apply arrives after it.
    v1::ReportStatusRequest stale = fresh;
    stale.set_sequence(1);
    stale.set_applied_generation(0);
    ASSERT_TRUE(manager_->ReportStatus(stale).ok());
    EXPECT_EQ(manager_->GetNode(n)->applied_generation(), generation);
  }
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

// A node in no fabric: its agent is accepted with an empty desired
// configuration (it clears its bridge), GetNode shows it without a fabric,
// and it joins when a fabric names it.
TEST_F(ManagerTest, AgentOfANodeInNoFabricGetsAnEmptyConfiguration) {
  v1::RegisterNodeRequest reg;
  reg.set_node("loose");
  reg.set_control_address("127.0.0.1:1003");
  auto registered = manager_->RegisterNode(reg);
  ASSERT_TRUE(registered.ok()) << registered.status();
  EXPECT_EQ(registered->node().fabric(), "");
  auto cfg = manager_->DesiredConfigFor("loose");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->address_map().entries_size(), 0);
  EXPECT_EQ(cfg->address_map().windows_size(), 0);
  EXPECT_EQ(cfg->address_map().inbound_size(), 0);
  EXPECT_EQ(cfg->export_size(), 0u);
  v1::ReportStatusRequest rep;
  rep.set_node("loose");
  rep.set_session(registered->session());
  rep.set_applied_generation(cfg->generation());
  ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  v1::Node n = *manager_->GetNode("loose");
  EXPECT_EQ(n.fabric(), "");
  EXPECT_EQ(n.agent_state(), v1::Node::READY);
  EXPECT_EQ(n.applied_generation(), n.desired_generation());
  // A node nobody registered is still unknown.
  EXPECT_EQ(manager_->GetNode("ghost").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->DesiredConfigFor("ghost").status().code(),
            absl::StatusCode::kNotFound);

  // A fabric that names it: the next configuration is the real one.
  v1::CreateFabricRequest create = RingRequest("lab", 2);
  create.mutable_spec()->add_nodes()->set_name("loose");
  ASSERT_TRUE(manager_->CreateFabric(create).ok());
  cfg = manager_->DesiredConfigFor("loose");
  ASSERT_TRUE(cfg.ok());
  EXPECT_GT(cfg->address_map().entries_size(), 0);
  EXPECT_EQ(manager_->GetNode("loose")->fabric(), "fabrics/lab");

  // Its fabric deleted, it is in no fabric again; once silent, forgotten.
  v1::DeleteFabricRequest del;
  del.set_name("lab");
  del.set_force(true);
  ASSERT_TRUE(manager_->DeleteFabric(del).ok());
  cfg = manager_->DesiredConfigFor("loose");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->address_map().entries_size(), 0);
  clock_.Advance(absl::Seconds(4));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("loose").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ManagerTest, ConcurrentAllocateReleaseKeepsInvariants) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        auto a = manager_->CreateAllocation(AllocRequest(
            absl::StrCat("n", t),
            absl::StrCat("n",
                         (t + 1 + i) % 8 == t ? (t + 1) % 8 : (t + 1 + i) % 8),
            ((i % 4) + 1) << 20));
        if (!a.ok()) {
          ++failures;
          continue;
        }
        if (i % 3 != 0) {
          v1::DeleteAllocationRequest del;
          del.set_name(a->name());
          if (!manager_->DeleteAllocation(del).ok()) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(manager_->CheckInvariants().ok()) << manager_->CheckInvariants();
  v1::ListAllocationsRequest all;
  all.set_page_size(1000);
  const int live = manager_->ListAllocations(all)->allocations_size();
  EXPECT_EQ(live, 8 * 14);
  // Concurrent mutations share transactions (group commit): fewer durable
  // commits than mutations (the fabric, 320 creates, 208 releases; the
  // store also saw the manager's epoch record at open).
  EXPECT_LT(store_->stats().commits, 1u + 1 + 8 * 40 + 8 * 26);
  Reopen();
  EXPECT_EQ(manager_->ListAllocations(all)->allocations_size(), live);
}

TEST_F(ManagerTest, ListPagination) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 5)).ok());
  v1::ListNodesRequest req;
  req.set_page_size(2);
  std::vector<std::string> names;
  for (;;) {
    auto page = manager_->ListNodes(req);
    ASSERT_TRUE(page.ok());
    EXPECT_LE(page->nodes_size(), 2);
    for (const auto& n : page->nodes()) names.push_back(n.name());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  EXPECT_THAT(names, testing::ElementsAre("nodes/n0", "nodes/n1", "nodes/n2",
                                          "nodes/n3", "nodes/n4"));
}

// A page token the server did not write is an error naming the field, not
// an empty (or shifted) page.
TEST_F(ManagerTest, MalformedPageTokenIsInvalidArgument) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 5)).ok());
  v1::ListNodesRequest req;
  req.set_page_size(2);
  auto first = manager_->ListNodes(req);
  ASSERT_TRUE(first.ok());
  const std::string good = first->next_page_token();
  ASSERT_FALSE(good.empty());
  for (const std::string& bad :
       {std::string("abc"), std::string("!!not-base64!!"),
        good.substr(0, good.size() - 2), std::string("x") + good}) {
    req.set_page_token(bad);
    auto page = manager_->ListNodes(req);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument)
        << bad << ": " << page.status();
    EXPECT_THAT(page.status().message(), HasSubstr("page_token"));
    v1::ListAllocationsRequest allocs;
    allocs.set_page_token(bad);
    EXPECT_EQ(manager_->ListAllocations(allocs).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  req.set_page_token(good);
  EXPECT_EQ(manager_->ListNodes(req)->nodes(0).name(), "nodes/n2");
}

TEST_F(ManagerTest, StarRoutesThroughHub) {
  v1::CreateFabricRequest req;
  req.mutable_spec()->set_name("star");
  req.mutable_spec()->set_topology(v1::STAR);
  req.mutable_spec()->set_hub("m");
  for (const char* n : {"m", "s1", "s2", "s3"})
    req.mutable_spec()->add_nodes()->set_name(n);
  ASSERT_TRUE(manager_->CreateFabric(req).ok());
  auto a = manager_->CreateAllocation(AllocRequest("s1", "s3", 1 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->path(),
              testing::ElementsAre("bridges/s1", "bridges/m", "bridges/s3"));
  EXPECT_TRUE(manager_->CheckInvariants().ok());
}


// --- VF lending ----------------------------------------------------------

constexpr uint64_t kMmio = 0x300'0000'0000ull;

// A ring n0 n1 n2 whose n1 lends devices; n0 may use another profile.
v1::CreateFabricRequest VfRing(const std::string& n0_profile = "") {
  v1::CreateFabricRequest req = RingRequest("vf", 3);
  req.mutable_spec()->mutable_nodes(0)->set_profile(n0_profile);
  req.mutable_spec()->mutable_nodes(1)->set_mmio_base(kMmio);
  req.mutable_spec()->mutable_nodes(1)->set_mmio_size(1ull << 30);
  return req;
}

// n1's inventory: PF 3b:00.0 with VFs 3b:02.0..3, each with a 64 KiB BAR0
// and a 16 KiB BAR3.
v1::NodeInventory LenderInventory() {
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

v1::CreateAttachmentRequest AttachRequest(const std::string& vf,
                                          const std::string& to,
                                          const std::string& request_id = "") {
  v1::CreateAttachmentRequest req;
  req.mutable_attachment()->set_vf(vf);
  req.mutable_attachment()->set_borrower(to);
  req.set_request_id(request_id);
  return req;
}

class ManagerVfTest : public ManagerTest {
 protected:
  void StartFabric(const std::string& n0_profile = "") {
    ASSERT_TRUE(manager_->CreateFabric(VfRing(n0_profile)).ok());
    RegisterAll();
  }
  void RegisterAll() {
    for (int i = 0; i < 3; ++i) {
      v1::RegisterNodeRequest reg;
      reg.set_node(absl::StrCat("n", i));
      if (i == 1) *reg.mutable_inventory() = LenderInventory();
      ASSERT_TRUE(manager_->RegisterNode(reg).ok());
    }
  }
  // Every agent applies the current generation; `shadows` are reported
  // ready by their borrowers.
  void Report(const std::vector<v1::Attachment>& shadows = {},
              const std::string& unhealthy_vf = "") {
    for (int i = 0; i < 3; ++i) {
      const std::string node = absl::StrCat("n", i);
      auto cfg = manager_->DesiredConfigFor(node);
      ASSERT_TRUE(cfg.ok());
      v1::ReportStatusRequest rep;
      rep.set_node(node);
      rep.set_applied_generation(cfg->generation());
      for (const auto& a : shadows) {
        if (a.borrower() != absl::StrCat("nodes/", node)) continue;
        v1::ShadowStatus* sh = rep.add_shadows();
        sh->set_attachment(a.name());
        sh->set_ready(true);
      }
      if (i == 1 && !unhealthy_vf.empty()) {
        v1::VfHealthReport* h = rep.add_vf_health();
        h->set_vf_address(unhealthy_vf);
        h->set_healthy(false);
        h->set_reason("vendor id reads 0xffff");
      }
      ASSERT_TRUE(manager_->ReportStatus(rep).ok());
    }
  }
};

TEST_F(ManagerVfTest, BadAttachmentsChangeNothing) {
  StartFabric();
  const std::vector<std::string> before = Dump(store_.get());
  struct Case {
    v1::CreateAttachmentRequest req;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases = {
      {AttachRequest("n1/0000:3b:00.0", "n0"),
       absl::StatusCode::kInvalidArgument, "physical function"},
      {AttachRequest("n1/0000:3b:09.0", "n0"), absl::StatusCode::kNotFound,
       "reports no function 0000:3b:09.0"},
      {AttachRequest("n1/0000:3b:02.0", "n1"),
       absl::StatusCode::kInvalidArgument, "cannot borrow its own VF"},
      {AttachRequest("n1/0000:3b:02.0", "n9"), absl::StatusCode::kNotFound,
       "attachment.borrower"},
      {AttachRequest("nope", "n0"), absl::StatusCode::kInvalidArgument,
       "attachment.vf"},
      {AttachRequest("", "n0"), absl::StatusCode::kInvalidArgument,
       "attachment.vf: required"},
  };
  Case dma{AttachRequest("n1/0000:3b:02.0", "n0"),
           absl::StatusCode::kInvalidArgument, "attachment.dma_size"};
  dma.req.mutable_attachment()->set_dma_size(4097);
  cases.push_back(dma);
  Case policy{AttachRequest("n1/0000:3b:02.0", "n0"),
              absl::StatusCode::kInvalidArgument, "attachment.interrupts"};
  policy.req.mutable_attachment()->set_interrupts(
      static_cast<v1::Attachment::InterruptPolicy>(42));
  cases.push_back(policy);
  for (const Case& c : cases) {
    auto r = manager_->CreateAttachment(c.req);
    EXPECT_EQ(r.status().code(), c.code) << c.req.ShortDebugString();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message));
  }
  // A borrower whose agent is gone: UNAVAILABLE.
  clock_.Advance(absl::Seconds(10));
  manager_->Sweep();
  auto r = manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.0", "n0"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(Dump(store_.get()), before);
}

TEST_F(ManagerVfTest, MalformedInventoryAddressesAreRefused) {
  StartFabric();
  const std::vector<std::string> before = Dump(store_.get());
  const auto vfs_before = manager_->ListVirtualFunctions({});
  ASSERT_TRUE(vfs_before.ok());
  // Each would list a VF under a name that does not resolve.
  for (const std::string& bad :
       {std::string(""), std::string("0000-3b:02.0"), std::string("3b:02.0"),
        std::string("0000:3b:20.0"), std::string("0000:3b:02.8"),
        std::string("0000:3b:0g.0")}) {
    v1::NodeInventory inv = LenderInventory();
    inv.mutable_functions(2)->set_address(bad);
    v1::RegisterNodeRequest reg;
    reg.set_node("n1");
    *reg.mutable_inventory() = inv;
    auto r = manager_->RegisterNode(reg);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("inventory.functions[2].address"));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("DDDD:BB:DD.F"));
    v1::ReportStatusRequest rep;
    rep.set_node("n1");
    *rep.mutable_inventory() = inv;
    auto s = manager_->ReportStatus(rep);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  v1::NodeInventory inv = LenderInventory();
  inv.mutable_functions(1)->set_pf_address("0000-3b-00.0");
  v1::RegisterNodeRequest reg;
  reg.set_node("n1");
  *reg.mutable_inventory() = inv;
  EXPECT_THAT(std::string(manager_->RegisterNode(reg).status().message()),
              HasSubstr("inventory.functions[1].pf_address"));
  // Nothing was taken in: the pool and the store are as they were.
  const auto vfs_after = manager_->ListVirtualFunctions({});
  ASSERT_TRUE(vfs_after.ok());
  EXPECT_EQ(vfs_after->SerializeAsString(), vfs_before->SerializeAsString());
  EXPECT_EQ(Dump(store_.get()), before);
}

TEST_F(ManagerVfTest, AttachIsPendingUntilTheShadowExistsAndSurvivesRestart) {
  StartFabric();
  auto a = manager_->CreateAttachment(
      AttachRequest("nodes/n1/vfs/0000-3b-02.1", "n0", "r1"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->lender(), "nodes/n1");
  EXPECT_EQ(a->vf_address(), "0000:3b:02.1");
  ASSERT_EQ(a->windows_size(), 4);
  // Retried request id: the same attachment; the VF is now taken.
  auto again = manager_->CreateAttachment(
      AttachRequest("nodes/n1/vfs/0000-3b-02.1", "n0", "r1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->name(), a->name());
  auto taken = manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.1", "n2"));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(taken.status().message()),
              HasSubstr("already lent to nodes/n0"));
  // The MMIO window lands on the VF's BAR in the lender's device range.
  for (const auto& w : a->windows()) {
    if (w.role() == "mmio-bar0") EXPECT_EQ(w.target_addr(), kMmio + (64 << 10));
  }
  ASSERT_TRUE(manager_->CheckInvariants().ok()) << manager_->CheckInvariants();

  Report();
  auto got = manager_->GetAttachment(a->name());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::Attachment::PENDING);
  EXPECT_THAT(got->state_reason(), HasSubstr("shadow device on n0"));
  Report({*a});
  EXPECT_EQ(manager_->GetAttachment(a->name())->state(),
            v1::Attachment::READY);
  // Both agents are told their part.
  auto cfg0 = manager_->DesiredConfigFor("n0");
  ASSERT_EQ(cfg0->vf_assignments_size(), 1);
  EXPECT_EQ(cfg0->vf_assignments(0).role(), v1::VfAssignment::BORROWER);
  auto cfg1 = manager_->DesiredConfigFor("n1");
  ASSERT_EQ(cfg1->vf_assignments_size(), 1);
  EXPECT_EQ(cfg1->vf_assignments(0).role(), v1::VfAssignment::LENDER);
  EXPECT_EQ(cfg1->mmio_base(), kMmio);
  // An unhealthy VF degrades it, and the pool says so.
  Report({*a}, "0000:3b:02.1");
  got = manager_->GetAttachment(a->name());
  EXPECT_EQ(got->state(), v1::Attachment::DEGRADED);
  EXPECT_EQ(got->vf_health(), v1::VirtualFunction::UNHEALTHY);
  auto vf = manager_->GetVirtualFunction("n1/0000:3b:02.1");
  ASSERT_TRUE(vf.ok());
  EXPECT_EQ(vf->state(), v1::VirtualFunction::LENT);
  EXPECT_EQ(vf->borrower(), "nodes/n0");

  // Restart: the attachment and its windows are back.
  Reopen();
  RegisterAll();
  Report({*a});
  got = manager_->GetAttachment(a->name());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), v1::Attachment::READY) << got->state_reason();
  ASSERT_EQ(got->windows_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got->windows(i).SerializeAsString(),
              a->windows(i).SerializeAsString());
  }
  ASSERT_TRUE(manager_->CheckInvariants().ok());

  // Detach frees everything.
  v1::DeleteAttachmentRequest del;
  del.set_name(a->name());
  auto gone = manager_->DeleteAttachment(del);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->state(), v1::Attachment::DETACHED);
  auto maps = manager_->ListAddressMaps({});
  for (const auto& m : maps->address_maps()) {
    EXPECT_EQ(m.windows_size(), 0) << m.name();
  }
  EXPECT_EQ(manager_->GetVirtualFunction("n1/0000:3b:02.1")->state(),
            v1::VirtualFunction::FREE);
}

TEST_F(ManagerVfTest, NoWindowLeftHalfAttached) {
  // n0 has 2 windows (intel-xeon-gen4): one VF's two BARs use both.
  StartFabric("intel-xeon-gen4");
  auto first = manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.0", "n0"));
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<std::string> before = Dump(store_.get());
  auto maps_before = manager_->ListAddressMaps({});
  auto second =
      manager_->CreateAttachment(AttachRequest("n1/0000:3b:02.1", "n0"));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted)
      << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("mmio-bar"));
  EXPECT_EQ(Dump(store_.get()), before);
  auto maps_after = manager_->ListAddressMaps({});
  EXPECT_EQ(maps_after->SerializeAsString(), maps_before->SerializeAsString());
  ASSERT_TRUE(manager_->CheckInvariants().ok());

  // Here the MMIO windows (on n2) and the DMA window (1 GiB: all of n2's
  // export region) are planned before the MSI-X window finds no room; the
  // ones already planned are undone.
  auto third = AttachRequest("n1/0000:3b:02.2", "n2");
  third.mutable_attachment()->set_dma_size(1ull << 30);
  auto failed = manager_->CreateAttachment(third);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted)
      << failed.status();
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("msix window"));
  EXPECT_EQ(Dump(store_.get()), before);
  EXPECT_EQ(manager_->ListAddressMaps({})->SerializeAsString(),
            maps_before->SerializeAsString());
  // With room, the same VF attaches.
  third.mutable_attachment()->set_dma_size(1ull << 20);
  EXPECT_TRUE(manager_->CreateAttachment(third).ok());
  ASSERT_TRUE(manager_->CheckInvariants().ok());
}

}  // namespace
}  // namespace fabric::service
