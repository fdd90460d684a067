// The chaos campaign's checkers must be able to fail: each is fed a
// fabricated record of a lost, duplicated, resurrected or leaked resource (or
// misprogrammed hardware) and must report it, and reports nothing for a clean
// one.
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/testing/core_state.h"
#include "common/clock.h"
#include "common/profiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/convert.h"
#include "server/service/manager.h"
#include "server/store/sqlite_store.h"
#include "tests/chaos/campaign.h"
#include "tests/chaos/fabric_checks.h"
#include "tests/chaos/ledger.h"
#include "tests/process/process_util.h"

namespace fabric::chaos {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kSpec[] = "nodes/n0 -> nodes/n1, 1048576 bytes";

CreateRecord Created(const std::string& request_id, const std::string& name,
                     Outcome outcome = Outcome::kAcknowledged) {
  CreateRecord c;
  c.kind = "allocations";
  c.request_id = request_id;
  c.spec = kSpec;
  c.outcome = outcome;
  c.name = outcome == Outcome::kAcknowledged ? name : "";
  return c;
}

DeleteRecord Deleted(const std::string& name, Outcome outcome,
                     bool had_unknown_attempt = false) {
  DeleteRecord d;
  d.kind = "allocations";
  d.name = name;
  d.request_id = "del-" + name;
  d.outcome = outcome;
  d.had_unknown_attempt = had_unknown_attempt;
  return d;
}

ObservedResource Held(const std::string& name,
                      const std::string& spec = kSpec) {
  return {"allocations", name, spec, "READY"};
}

TEST(CheckLedgerTest, CleanRecordHasNoViolation) {
  LedgerFindings f = CheckLedger(
      {Created("r1", "allocations/a1"), Created("r2", "allocations/a2"),
       Created("r3", "", Outcome::kRejected)},
      {Deleted("allocations/a2", Outcome::kAcknowledged)},
      {Held("allocations/a1")});
  EXPECT_EQ(f.violations(), 0) << ::testing::PrintToString(f.details);
}

TEST(CheckLedgerTest, AcknowledgedCreateThatIsGoneIsLost) {
  LedgerFindings f = CheckLedger({Created("r1", "allocations/a1")}, {}, {});
  EXPECT_EQ(f.lost, 1);
  EXPECT_GT(f.violations(), 0);
  ASSERT_THAT(f.details, SizeIs(1));
  EXPECT_THAT(f.details[0], HasSubstr("allocations/a1"));
}

TEST(CheckLedgerTest, RefusedDeleteDoesNotExcuseALoss) {
  LedgerFindings f =
      CheckLedger({Created("r1", "allocations/a1")},
                  {Deleted("allocations/a1", Outcome::kRejected)}, {});
  EXPECT_EQ(f.lost, 1);
}

TEST(CheckLedgerTest, ResourceNobodyWasToldAboutIsDuplicated) {
  LedgerFindings f = CheckLedger(
      {Created("r1", "allocations/a1"), Created("r2", "", Outcome::kRejected)},
      {}, {Held("allocations/a1"), Held("allocations/phantom")});
  EXPECT_EQ(f.duplicated, 1);
  EXPECT_GT(f.violations(), 0);
}

TEST(CheckLedgerTest, RequestAnsweredWithTwoResourcesIsDuplicated) {
  CreateRecord c = Created("r1", "allocations/a1");
  c.other_names = {"allocations/a2"};
  LedgerFindings f = CheckLedger({c}, {}, {Held("allocations/a1")});
  EXPECT_EQ(f.duplicated, 1);
}

TEST(CheckLedgerTest, OneResourceAnsweredToTwoRequestsIsDuplicated) {
  LedgerFindings f = CheckLedger(
      {Created("r1", "allocations/a1"), Created("r2", "allocations/a1")}, {},
      {Held("allocations/a1")});
  EXPECT_EQ(f.duplicated, 1);
}

TEST(CheckLedgerTest, ReleasedResourceThatIsBackIsResurrected) {
  LedgerFindings f =
      CheckLedger({Created("r1", "allocations/a1")},
                  {Deleted("allocations/a1", Outcome::kAcknowledged)},
                  {Held("allocations/a1")});
  EXPECT_EQ(f.resurrected, 1);
  EXPECT_GT(f.violations(), 0);
}

TEST(CheckLedgerTest, ResourceUnlikeItsRequestIsMismatched) {
  LedgerFindings f = CheckLedger(
      {Created("r1", "allocations/a1")}, {},
      {Held("allocations/a1", "nodes/n0 -> nodes/n2, 1048576 bytes")});
  EXPECT_EQ(f.mismatched, 1);
}

TEST(CheckLedgerTest, DeleteRetryThatForgotItsFirstAttemptIsIdempotency) {
  DeleteRecord d = Deleted("allocations/a1", Outcome::kRejected,
                           /*had_unknown_attempt=*/true);
  d.error = "5 allocation not found";
  LedgerFindings f = CheckLedger({Created("r1", "allocations/a1")}, {d}, {});
  EXPECT_EQ(f.idempotency, 1);
  EXPECT_EQ(f.lost, 0);
}

TEST(CheckLedgerTest, UnknownOutcomesAllowEitherWayButAreUnresolved) {
  LedgerFindings f = CheckLedger(
      {Created("r1", "allocations/a1"), Created("r2", "", Outcome::kUnknown)},
      {Deleted("allocations/a1", Outcome::kUnknown)},
      {Held("allocations/maybe-r2")});
  EXPECT_EQ(f.lost, 0);
  EXPECT_EQ(f.duplicated, 0);
  EXPECT_EQ(f.unresolved, 2);
  EXPECT_GT(f.violations(), 0);
}

TEST(LedgerTest, RecordsEveryAttempt) {
  Ledger ledger;
  const size_t c = ledger.AddCreate(Created("r1", "", Outcome::kUnknown));
  ledger.NoteCreateAttempt(c, Outcome::kUnknown, "", "14 unavailable");
  ledger.NoteCreateAttempt(c, Outcome::kAcknowledged, "allocations/a1", "");
  ledger.NoteCreateAttempt(c, Outcome::kAcknowledged, "allocations/a9", "");
  const CreateRecord got = ledger.create(c);
  EXPECT_EQ(got.outcome, Outcome::kAcknowledged);
  EXPECT_EQ(got.attempts, 3);
  EXPECT_TRUE(got.had_unknown_attempt);
  EXPECT_EQ(got.name, "allocations/a1");
  EXPECT_THAT(got.other_names, ::testing::ElementsAre("allocations/a9"));
  // ... which the checker reports.
  EXPECT_EQ(
      CheckLedger(ledger.creates(), {}, {Held("allocations/a1")}).duplicated,
      1);
}

TEST(PlanKillTest, SameSeedSameSchedule) {
  for (int cycle = 0; cycle < 20; ++cycle) {
    const KillPlan a =
        PlanKill(42, cycle, 4, absl::Seconds(2), absl::Milliseconds(500));
    const KillPlan b =
        PlanKill(42, cycle, 4, absl::Seconds(2), absl::Milliseconds(500));
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.agent, b.agent);
    EXPECT_EQ(a.at, b.at);
    EXPECT_EQ(a.down_for, b.down_for);
    EXPECT_GE(a.at, absl::Milliseconds(200));
    EXPECT_LE(a.at, absl::Milliseconds(1800));
    EXPECT_LT(a.down_for, absl::Milliseconds(500));
  }
  int differ = 0;
  for (int cycle = 0; cycle < 20; ++cycle) {
    differ += PlanKill(42, cycle, 4, absl::Seconds(2), absl::Seconds(1)).at !=
              PlanKill(43, cycle, 4, absl::Seconds(2), absl::Seconds(1)).at;
  }
  EXPECT_GT(differ, 0);
}

TEST(PlanKillTest, EtcdKillsEveryKindAndTheSqliteScheduleStaysTheSame) {
  std::set<KillKind> kinds;
  for (int cycle = 0; cycle < 100; ++cycle) {
    const KillPlan p = PlanKill(7, cycle, 4, absl::Seconds(2),
                                absl::Milliseconds(500), StoreKind::kEtcd);
    kinds.insert(p.kind);
    const bool agent =
        p.kind == KillKind::kAgent || p.kind == KillKind::kBoth;
    if (agent) {
      EXPECT_GE(p.agent, 0);
      EXPECT_LT(p.agent, 4);
    } else {
      EXPECT_EQ(p.agent, -1) << KillKindName(p.kind);
    }
    if (p.kind == KillKind::kEtcdMember) {
      EXPECT_GE(p.member, 0);
      EXPECT_LT(p.member, 3);
    } else {
      EXPECT_EQ(p.member, -1) << KillKindName(p.kind);
    }
    // SQLite: only the three kinds it always had.
    const KillPlan q =
        PlanKill(7, cycle, 4, absl::Seconds(2), absl::Milliseconds(500));
    EXPECT_TRUE(q.kind == KillKind::kManager || q.kind == KillKind::kAgent ||
                q.kind == KillKind::kBoth);
  }
  EXPECT_EQ(kinds.size(), 5u);
  // Seed 2's first cycles, as the SQLite smoke test's comment names them.
  const auto kind = [](int cycle) {
    return PlanKill(2, cycle, 4, absl::Milliseconds(1500),
                    absl::Milliseconds(500))
        .kind;
  };
  EXPECT_EQ(kind(0), KillKind::kManager);
  EXPECT_EQ(kind(1), KillKind::kAgent);
  EXPECT_EQ(kind(2), KillKind::kBoth);
}

// A ring of four simulated bridges programmed as the core model says, with
// two grants.
class HardwareCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::Fabric fabric;
    fabric.set_name("fabrics/ring");
    fabric.mutable_spec()->set_name("ring");
    fabric.mutable_spec()->set_topology(v1::RING);
    fabric.mutable_spec()->set_default_export_size(256 << 20);
    for (int i = 0; i < 4; ++i) {
      fabric.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
    }
    fabric_ = fabric;
    auto spec = service::SpecFromProto(fabric.spec());
    ASSERT_TRUE(spec.ok());
    auto topo = core::Topology::Build(*spec);
    ASSERT_TRUE(topo.ok()) << topo.status();
    state_ = std::make_unique<core::FabricState>(*topo);
    for (auto [from, to, size] :
         {std::tuple{0, 2, 1 << 20}, std::tuple{3, 1, 4 << 20}}) {
      auto g = state_->PlanGrant(from, to, size);
      ASSERT_TRUE(g.ok()) << g.status();
      g->id = absl::StrCat("alloc-", from, to);
      ASSERT_TRUE(state_->AddGrant(*g).ok());
      v1::Allocation a;
      a.set_name("allocations/" + g->id);
      a.set_borrower(absl::StrCat("nodes/n", from));
      a.set_target(absl::StrCat("nodes/n", to));
      a.set_size(g->size);
      a.set_borrower_addr(g->borrower_addr);
      a.set_target_addr(g->target_addr);
      a.set_fabric_addr(g->fabric_addr);
      a.set_slot_kind(service::SlotKindToProto(g->slot_kind));
      a.set_slot(g->slot_index);
      a.set_slot_count(g->slot_count);
      allocations_.push_back(a);
    }
    for (int i = 0; i < 4; ++i) {
      hardware_[absl::StrCat("n", i)] =
          agent::hw::testing::StateFor(*state_, i);
    }
  }

  FabricModel Model() {
    auto m = ModelFromApi(fabric_, {}, allocations_);
    EXPECT_TRUE(m.ok()) << m.status();
    return *std::move(m);
  }

  v1::Fabric fabric_;
  std::unique_ptr<core::FabricState> state_;
  std::vector<v1::Allocation> allocations_;
  HardwareStates hardware_;
};

TEST_F(HardwareCheckTest, FaithfulHardwarePasses) {
  EXPECT_TRUE(CheckHardwareInvariants(Model(), hardware_).ok());
}

TEST_F(HardwareCheckTest, ModelFromApiRebuildsTheGrants) {
  const FabricModel m = Model();
  ASSERT_THAT(m.grants, SizeIs(2));
  for (const core::Grant& g : m.grants) {
    const core::Grant* want = state_->FindGrant(g.id);
    ASSERT_NE(want, nullptr) << g.id;
    EXPECT_TRUE(g == *want) << g.id;
  }
}

TEST_F(HardwareCheckTest, WindowOfAReleasedGrantIsAViolation) {
  allocations_.pop_back();  // released, but the hardware still holds it
  absl::Status s = CheckHardwareInvariants(Model(), hardware_);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("alloc-31"));
}

TEST_F(HardwareCheckTest, MissingWindowIsAViolation) {
  hardware_["n0"].windows.clear();
  EXPECT_FALSE(CheckHardwareInvariants(Model(), hardware_).ok());
}

TEST_F(HardwareCheckTest, MisdirectedWindowIsAViolation) {
  ASSERT_THAT(hardware_["n0"].windows, SizeIs(1));
  hardware_["n0"].windows[0].xlat += 1 << 20;
  EXPECT_FALSE(CheckHardwareInvariants(Model(), hardware_).ok());
}

TEST_F(HardwareCheckTest, DiffAgainstTheManagersMaps) {
  v1::AddressMap map;
  map.set_bridge("bridges/n0");
  for (const auto& e : hardware_["n0"].map) {
    v1::MapEntry* m = map.add_entries();
    m->set_kind(e.kind == agent::hw::MapEntry::Kind::kClaim
                    ? v1::MapEntry::CLAIM
                    : v1::MapEntry::FORWARD);
    m->set_base(e.base);
    m->set_size(e.size);
    m->set_port(e.port);
    m->set_local_base(e.local_base);
  }
  for (const auto& w : hardware_["n0"].windows) {
    v1::WindowEntry* m = map.add_windows();
    m->set_slot_kind(w.kind == agent::hw::SlotKind::kLut ? v1::LUT
                                                         : v1::WINDOW);
    m->set_slot(w.slot);
    m->set_local_base(w.local_base);
    m->set_size(w.size);
    m->set_translated_addr(w.xlat);
    m->set_allocation("allocations/" + w.tag);
  }
  EXPECT_THAT(DiffMapsAndHardware({map}, hardware_), IsEmpty());
  // Another grant took the same slot and range between two applies: the
  // agent left the window (same translation), the simulator its old tag.
  // Relabelled, that is no difference; a different translation still is.
  HardwareStates stale = hardware_;
  stale["n0"].windows[0].tag = "alloc-gone";
  EXPECT_THAT(DiffMapsAndHardware({map}, stale), SizeIs(2));
  EXPECT_THAT(DiffMapsAndHardware({map}, RelabelAsWanted({map}, stale)),
              IsEmpty());
  stale["n0"].windows[0].xlat += 1 << 20;
  EXPECT_THAT(DiffMapsAndHardware({map}, RelabelAsWanted({map}, stale)),
              SizeIs(2));
  hardware_["n0"].windows.clear();
  EXPECT_THAT(DiffMapsAndHardware({map}, hardware_), SizeIs(1));
  hardware_["n0"].inbound.push_back({0x1'0000'0000ull, 4096, "stray"});
  EXPECT_THAT(DiffMapsAndHardware({map}, hardware_), SizeIs(2));
}

TEST_F(HardwareCheckTest, LeftoversAfterReleaseAreLeaks) {
  // Two grants: one window on each borrower, one inbound entry on each
  // target.
  EXPECT_THAT(Leftovers(hardware_), SizeIs(4));
  for (auto& [node, s] : hardware_) {
    s.windows.clear();
    s.inbound.clear();
  }
  EXPECT_THAT(Leftovers(hardware_), IsEmpty());
}

TEST_F(HardwareCheckTest, ReadsTheSimulatorsStateFiles) {
  proctest::TempDir dir;
  const std::string sim = dir.path() + "/sim";
  const auto limits = agent::hw::LimitsFromProfile(*core::FindProfile("sim"));
  std::vector<std::string> nodes;
  for (const auto& [node, s] : hardware_) {
    auto bridge = agent::hw::SimBridge::Open(sim, node, limits);
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    ASSERT_TRUE((*bridge)->ApplyState(s).ok());
    nodes.push_back(node);
  }
  auto read = ReadSimBridges(sim, nodes);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(CheckHardwareInvariants(Model(), *read).ok());
  EXPECT_THAT(Leftovers(*read), SizeIs(4));
  // A bridge that was never programmed is reported, not created.
  EXPECT_FALSE(ReadSimBridges(sim, {"n9"}).ok());
}

TEST(DurableStateTest, LoadsWhatTheManagerWrote) {
  proctest::TempDir dir;
  const std::string db = dir.path() + "/fabric.db";
  std::string name;
  {
    store::SqliteOptions options;
    options.path = db;
    auto store = store::OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status();
    service::ManagerOptions manager_options;
    manager_options.sweep_interval = absl::ZeroDuration();
    auto manager = service::FabricManager::Open(store->get(), Clock::Real(),
                                                manager_options);
    ASSERT_TRUE(manager.ok()) << manager.status();
    v1::CreateFabricRequest fabric;
    fabric.mutable_spec()->set_name("ring");
    fabric.mutable_spec()->set_topology(v1::RING);
    for (int i = 0; i < 3; ++i) {
      fabric.mutable_spec()->add_nodes()->set_name(absl::StrCat("n", i));
    }
    ASSERT_TRUE((*manager)->CreateFabric(fabric).ok());
    v1::CreateAllocationRequest req;
    req.mutable_allocation()->set_borrower("n0");
    req.mutable_allocation()->set_target("n2");
    req.mutable_allocation()->set_size(1 << 20);
    auto a = (*manager)->CreateAllocation(req);
    ASSERT_TRUE(a.ok()) << a.status();
    name = a->name();
    (*manager)->Shutdown();
  }
  auto durable = LoadDurableState(db, dir.path() + "/copy.db");
  ASSERT_TRUE(durable.ok()) << durable.status();
  EXPECT_TRUE(durable->invariants.ok()) << durable->invariants;
  EXPECT_THAT(durable->resources, ::testing::ElementsAre(name));
  // No such database: an error, not an empty state.
  EXPECT_FALSE(
      LoadDurableState(dir.path() + "/absent.db", dir.path() + "/copy2.db")
          .ok());
}

}  // namespace
}  // namespace fabric::chaos
