// The reconcile state machine over a simulated bridge, driven by a
// ManualClock: nothing runs before it is due, drift is repaired when the
// check is due, refusals are retried with backoff.
#include "agent/reconciler.h"

#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/bridge_state.h"
#include "agent/hw/profile_limits.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/testing/temp_dir.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kMmioBase = 0xf000'0000;
constexpr uint64_t kMmioSize = 1 << 20;

// Host memory, an MMIO range and one port: what a bridge holds before any
// allocation.
agentproto::v1::DesiredConfig Config(int64_t generation) {
  agentproto::v1::DesiredConfig c;
  c.set_generation(generation);
  c.set_export_base(1 << 20);
  c.set_export_size(1 << 20);
  c.set_mmio_base(kMmioBase);
  c.set_mmio_size(kMmioSize);
  auto *p = c.add_ports();
  p->set_number(1);
  p->set_peer_bridge("bridges/n1");
  p->set_peer_port(1);
  p->set_up(true);
  return c;
}

class ReconcilerTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto bridge = hw::SimBridge::Open(dir_.path(), "n0",
                                      *hw::LimitsForProfile("p", "sim"));
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    bridge_ = *std::move(bridge);
    reconciler_ = std::make_unique<Reconciler>("n0", options_, bridge_.get(),
                                               &clock_, [this] { ++news_; });
  }

  hw::testing::TempDir dir_;
  ReconcilerOptions options_;
  ManualClock clock_;
  std::unique_ptr<hw::SimBridge> bridge_;
  std::unique_ptr<Reconciler> reconciler_;
  int news_ = 0;
};

TEST_F(ReconcilerTest, NothingRunsBeforeTheFirstConfiguration) {
  clock_.Advance(absl::Hours(1));
  reconciler_->RunDue();
  const ReconcileStats stats = reconciler_->stats();
  EXPECT_EQ(stats.applies, 0);
  EXPECT_EQ(stats.next_drift_check, absl::InfiniteFuture());
  EXPECT_EQ(news_, 0);
}

TEST_F(ReconcilerTest, AppliesAndSchedulesTheDriftCheck) {
  ASSERT_TRUE(reconciler_->Apply(Config(7)).ok());
  const ReconcileStats stats = reconciler_->stats();
  EXPECT_EQ(stats.desired_generation, 7);
  EXPECT_EQ(stats.applied_generation, 7);
  EXPECT_EQ(stats.applies, 1);
  EXPECT_EQ(stats.repairs, 0);
  EXPECT_EQ(stats.next_retry, absl::InfiniteFuture());
  EXPECT_EQ(stats.next_drift_check,
            clock_.Now() + options_.drift_check_interval);
  EXPECT_TRUE(DiffEntries(*bridge_->Read(), DesiredState(Config(7))).empty());
}

TEST_F(ReconcilerTest, DriftIsRepairedWhenTheCheckIsDueNotBefore) {
  ASSERT_TRUE(reconciler_->Apply(Config(1)).ok());
  hw::Port down{1, "n1", 1, false};
  ASSERT_TRUE(bridge_->SetPort(down).ok()); // behind the reconciler's back

  clock_.Advance(options_.drift_check_interval - absl::Milliseconds(1));
  reconciler_->RunDue();
  EXPECT_EQ(reconciler_->stats().repairs, 0);
  EXPECT_FALSE(bridge_->Read()->ports[0].up);

  clock_.Advance(absl::Milliseconds(1));
  reconciler_->RunDue();
  const ReconcileStats stats = reconciler_->stats();
  EXPECT_EQ(stats.repairs, 1);
  ASSERT_FALSE(stats.recent_repairs.empty());
  EXPECT_EQ(stats.recent_repairs.back(), "generation 1: restored port 1");
  EXPECT_TRUE(bridge_->Read()->ports[0].up);
  EXPECT_EQ(news_, 1);
  EXPECT_EQ(stats.next_drift_check,
            clock_.Now() + options_.drift_check_interval);

  // Without drift there is nothing to repair, and nothing to tell.
  clock_.Advance(options_.drift_check_interval);
  reconciler_->RunDue();
  EXPECT_EQ(reconciler_->stats().repairs, 1);
  EXPECT_EQ(news_, 1);
}

// A new generation that asks this bridge for what it already holds (made
// for other nodes' changes) is applied without touching the hardware, and
// does not put off the drift check, which still repairs on time.
TEST_F(ReconcilerTest, ANewGenerationOfWhatLandedLeavesTheHardwareAlone) {
  ASSERT_TRUE(reconciler_->Apply(Config(1)).ok());
  const absl::Time check = reconciler_->stats().next_drift_check;
  hw::Port down{1, "n1", 1, false};
  ASSERT_TRUE(bridge_->SetPort(down).ok());  // behind the reconciler's back

  clock_.Advance(options_.drift_check_interval / 2);
  ASSERT_TRUE(reconciler_->Apply(Config(2)).ok());
  ReconcileStats stats = reconciler_->stats();
  EXPECT_EQ(stats.applied_generation, 2);
  EXPECT_EQ(stats.applies, 2);
  EXPECT_EQ(stats.next_drift_check, check);
  EXPECT_FALSE(bridge_->Read()->ports[0].up);  // not read back, not written

  clock_.Advance(options_.drift_check_interval / 2);
  reconciler_->RunDue();
  stats = reconciler_->stats();
  EXPECT_EQ(stats.repairs, 1);
  EXPECT_TRUE(bridge_->Read()->ports[0].up);
  ASSERT_FALSE(stats.recent_repairs.empty());
  EXPECT_EQ(stats.recent_repairs.back(), "generation 2: restored port 1");

  // A generation that asks for something else is applied at once.
  agentproto::v1::DesiredConfig other = Config(3);
  other.mutable_ports(0)->set_up(false);
  ASSERT_TRUE(reconciler_->Apply(other).ok());
  EXPECT_FALSE(bridge_->Read()->ports[0].up);
  EXPECT_EQ(reconciler_->stats().applied_generation, 3);
}

// Drift in the MMIO range alone (the rest of the host memory as given) is
// drift like any other: the check repairs it.
TEST_F(ReconcilerTest, MmioRangeDriftIsRepaired) {
  ASSERT_TRUE(reconciler_->Apply(Config(1)).ok());
  hw::HostMemory memory = bridge_->Read()->memory;
  ASSERT_EQ(memory.mmio_base, kMmioBase);
  memory.mmio_base = 0xe000'0000;
  memory.mmio_size = 2 * kMmioSize;
  ASSERT_TRUE(bridge_->SetHostMemory(memory).ok());

  clock_.Advance(options_.drift_check_interval);
  reconciler_->RunDue();
  const ReconcileStats stats = reconciler_->stats();
  EXPECT_EQ(stats.repairs, 1);
  ASSERT_FALSE(stats.recent_repairs.empty());
  EXPECT_THAT(stats.recent_repairs.back(), HasSubstr("host memory"));
  const hw::HostMemory repaired = bridge_->Read()->memory;
  EXPECT_EQ(repaired.mmio_base, kMmioBase);
  EXPECT_EQ(repaired.mmio_size, kMmioSize);
}

TEST_F(ReconcilerTest, RefusalIsRetriedWithBackoffUntilItLands) {
  // Every change is refused, twice over: the whole apply and each entry.
  bridge_->InjectApplyFailure(absl::UnavailableError("bridge busy"), 1000);
  absl::Status applied = reconciler_->Apply(Config(3));
  EXPECT_EQ(applied.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(applied.message(), HasSubstr("bridge busy"));
  ReconcileStats stats = reconciler_->stats();
  ASSERT_THAT(stats.errors, ::testing::Not(IsEmpty()));
  EXPECT_EQ(stats.errors[0].attempts(), 1);
  EXPECT_EQ(stats.applied_generation, 0); // the port holds it back
  EXPECT_EQ(stats.next_retry, clock_.Now() + options_.apply_retry_initial);

  // Not due yet.
  reconciler_->RunDue();
  EXPECT_EQ(reconciler_->stats().apply_retries, 0);

  // Due: refused again, and the backoff doubles.
  clock_.Advance(options_.apply_retry_initial);
  reconciler_->RunDue();
  stats = reconciler_->stats();
  EXPECT_EQ(stats.apply_retries, 1);
  ASSERT_THAT(stats.errors, ::testing::Not(IsEmpty()));
  EXPECT_EQ(stats.errors[0].attempts(), 2);
  EXPECT_EQ(stats.next_retry, clock_.Now() + 2 * options_.apply_retry_initial);
  EXPECT_EQ(news_, 1);

  // The hardware takes it: landed, a retry, not a repair.
  bridge_->InjectApplyFailure(absl::UnavailableError("unused"), 0);
  clock_.Advance(2 * options_.apply_retry_initial);
  reconciler_->RunDue();
  stats = reconciler_->stats();
  EXPECT_EQ(stats.apply_retries, 2);
  EXPECT_THAT(stats.errors, IsEmpty());
  EXPECT_EQ(stats.applied_generation, 3);
  EXPECT_EQ(stats.repairs, 0);
  EXPECT_EQ(stats.next_retry, absl::InfiniteFuture());
  EXPECT_TRUE(DiffEntries(*bridge_->Read(), DesiredState(Config(3))).empty());
}

// What the reconciler records in the agent's metrics: every attempt at a
// configuration (not the drift checks), the generation that landed, each
// refused entry by kind, each repaired entry.
TEST_F(ReconcilerTest, RecordsAppliesRefusalsAndRepairsInTheMetrics) {
  AgentMetrics metrics(&clock_);
  Reconciler r(
      "n0", options_, bridge_.get(), &clock_, [] {}, &metrics);
  auto sample = [&](absl::string_view series) {
    for (absl::string_view line : absl::StrSplit(metrics.Render(), '\n')) {
      if (absl::ConsumePrefix(&line, series) &&
          absl::ConsumePrefix(&line, " ")) {
        double v = 0;
        return absl::SimpleAtod(line, &v) ? v : -1;
      }
    }
    return -1.0;
  };
  bridge_->InjectApplyFailure(absl::UnavailableError("bridge busy"), 1000);
  EXPECT_FALSE(r.Apply(Config(3)).ok());
  EXPECT_EQ(sample("fabric_agent_apply_duration_seconds_count"), 1);
  EXPECT_EQ(sample("fabric_agent_applied_generation"), 0);
  EXPECT_EQ(sample("fabric_agent_refused_entries_total{kind=\"port\"}"), 1);
  EXPECT_EQ(sample("fabric_agent_refused_entries_total{kind=\"window\"}"), 0);

  bridge_->InjectApplyFailure(absl::UnavailableError("unused"), 0);
  clock_.Advance(options_.apply_retry_initial);
  r.RunDue();
  EXPECT_EQ(sample("fabric_agent_apply_duration_seconds_count"), 2);
  EXPECT_EQ(sample("fabric_agent_applied_generation"), 3);
  EXPECT_EQ(sample("fabric_agent_drift_repairs_total"), 0);

  ASSERT_TRUE(bridge_->SetPort(hw::Port{1, "n1", 1, false}).ok());
  clock_.Advance(options_.drift_check_interval);
  r.RunDue();
  EXPECT_EQ(sample("fabric_agent_drift_repairs_total"), 1);
  EXPECT_EQ(sample("fabric_agent_apply_duration_seconds_count"), 2);
}

TEST_F(ReconcilerTest, AFencedReconcilerLeavesTheHardwareAlone) {
  ASSERT_TRUE(reconciler_->Apply(Config(1)).ok());
  ASSERT_TRUE(bridge_->SetPort({1, "n1", 1, false}).ok());
  reconciler_->Fence();
  clock_.Advance(options_.drift_check_interval);
  reconciler_->RunDue();
  EXPECT_EQ(reconciler_->stats().repairs, 0);
  EXPECT_FALSE(bridge_->Read()->ports[0].up);
}

TEST_F(ReconcilerTest, RecordsTheFingerprintInTheScratchpads) {
  ASSERT_TRUE(reconciler_->Apply(Config(1)).ok());
  reconciler_->RecordFingerprint(Config(1));
  EXPECT_EQ(RecordedFingerprint(*bridge_->Read()),
            Fingerprint(DesiredState(Config(1))));
}

// The thread runs what is due by the injected clock.
TEST_F(ReconcilerTest, StartedThreadRunsTheDueCheck) {
  ASSERT_TRUE(reconciler_->Apply(Config(1)).ok());
  ASSERT_TRUE(bridge_->SetPort({1, "n1", 1, false}).ok());
  reconciler_->Start();
  clock_.Advance(options_.drift_check_interval);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (reconciler_->stats().repairs == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  reconciler_->Stop();
  EXPECT_EQ(reconciler_->stats().repairs, 1);
  EXPECT_TRUE(bridge_->Read()->ports[0].up);
}

} // namespace
} // namespace fabric::agent
