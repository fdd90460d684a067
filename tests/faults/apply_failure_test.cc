// A hardware apply that fails. The simulator refuses to program entries
// named in <sim_dir>/<node>/faults (agent/hw/sim/sim_faults.h) and logs
// every refusal. An allocation whose window the borrower's bridge refuses
// must say so (GetAllocation: PENDING, the entry and the hardware's
// message), the agent must keep retrying with exponential backoff, and
// nothing else on the bridge may be disturbed: the other allocations stay
// READY and prove themselves by bytes. Once the fault is cleared the
// allocation turns READY by itself, and the retry that lands is not counted
// as a drift repair.
#include <fstream>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/hw/sim/sim_faults.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_harness.h"

namespace fabric::faults {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
namespace sim = ::fabric::agent::hw::sim_internal;

constexpr uint64_t kMiB = 1ull << 20;
constexpr absl::Duration kDriftInterval = absl::Milliseconds(200);
// Attempts to watch while the entry is refused: the first and five
// retries, whose gaps (100, 200, 400, 800, 800 ms) reach the backoff's cap.
constexpr int kObservedAttempts = 6;
// The agents' retry backoff: 100 ms doubling to 800 ms.
constexpr int64_t kRetryInitialMs = 100;
constexpr int64_t kRetryMaxMs = 800;

HarnessOptions Options() {
  HarnessOptions o;
  o.nodes = 4;
  o.drift_check_interval = absl::FormatDuration(kDriftInterval);
  o.agent_flags = {"--apply-retry-initial",
                   absl::StrCat(kRetryInitialMs, "ms"), "--apply-retry-max",
                   absl::StrCat(kRetryMaxMs, "ms")};
  return o;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// Times (unix micros) of the refusals logged so far.
std::vector<int64_t> Refusals(const std::string& log) {
  std::vector<int64_t> out;
  for (absl::string_view line :
       absl::StrSplit(proctest::ReadFile(log), '\n', absl::SkipEmpty())) {
    int64_t t = 0;
    if (absl::SimpleAtoi(line.substr(0, line.find(' ')), &t)) out.push_back(t);
  }
  return out;
}

// Attempt start times: one attempt is the whole-state apply and the
// entry-by-entry pass right after it (refusals within a few ms).
std::vector<int64_t> AttemptStarts(const std::vector<int64_t>& refusals) {
  std::vector<int64_t> starts;
  for (int64_t t : refusals) {
    if (starts.empty() || t - starts.back() > 50'000) starts.push_back(t);
  }
  return starts;
}

// Gaps between attempts must follow the backoff: the i-th gap (1-based) at
// least 100 ms << (i - 1), capped at the maximum, less a little for clocks.
void ExpectBackoff(const std::vector<int64_t>& starts) {
  for (size_t i = 1; i < starts.size(); ++i) {
    const int64_t want_ms =
        std::min(kRetryInitialMs << std::min<size_t>(i - 1, 20), kRetryMaxMs);
    const double gap_ms = (starts[i] - starts[i - 1]) / 1000.0;
    EXPECT_GE(gap_ms, 0.9 * want_ms) << "attempt " << i + 1 << " came early";
    EXPECT_LE(gap_ms, want_ms + 1000.0) << "attempt " << i + 1 << " was late";
  }
}

TEST(ApplyFailureTest, RefusedWindowIsReportedRetriedAndRecovers) {
  FabricHarness h;
  ASSERT_TRUE(h.Start(Options()).ok());
  // Live allocations through n0 (borrower, target and transit).
  std::vector<std::string> others;
  for (auto [from, to] : {std::pair{0, 1}, {2, 0}, {1, 3}, {0, 2}}) {
    auto a = h.Create(from, to, kMiB);
    ASSERT_TRUE(a.ok()) << a.status();
    others.push_back(a->name());
  }
  ASSERT_THAT(h.VerifyAll(others), IsEmpty());
  auto before = h.Hardware("n0");
  ASSERT_TRUE(before.ok());

  // n0's bridge stops taking window and LUT writes.
  const std::string faults = sim::FaultsPath(h.sim_dir(), "n0");
  const std::string log = sim::FaultLogPath(h.sim_dir(), "n0");
  WriteFile(faults, "fail window *\nfail lut slot *\n");
  auto victim = h.Create(0, 3, kMiB);
  ASSERT_TRUE(victim.ok()) << victim.status();
  const std::string slot =
      absl::StrCat(victim->slot_kind() == v1::LUT ? "lut slot " : "window ",
                   victim->slot());

  // The error is visible on the allocation and on the node.
  v1::Allocation seen;
  proctest::WaitFor(
      [&] {
        auto a = h.Get(victim->name());
        if (a.ok()) seen = *a;
        return a.ok() && absl::StrContains(seen.state_reason(),
                                           "could not apply");
      },
      absl::Seconds(10));
  EXPECT_EQ(seen.state(), v1::Allocation::PENDING);
  EXPECT_THAT(seen.state_reason(), HasSubstr("node n0 could not apply " + slot));
  EXPECT_THAT(seen.state_reason(), HasSubstr("injected fault"));
  auto node = h.GetNode("n0");
  ASSERT_TRUE(node.ok());
  ASSERT_THAT(node->apply_errors(), SizeIs(1));
  EXPECT_EQ(node->apply_errors(0).entry(), slot);
  EXPECT_EQ(node->apply_errors(0).allocation(), victim->name());
  EXPECT_GE(node->apply_errors(0).attempts(), 1);
  EXPECT_TRUE(node->apply_errors(0).has_retry_in());

  // Meanwhile the agent retries; the rest of the bridge is untouched and
  // every other allocation keeps working. Wait until the sim's fault log
  // shows the attempts to check and the node reports them (its count may
  // trail the log by the attempt in progress).
  std::vector<int64_t> refusals;
  const absl::Time observe_start = absl::Now();
  proctest::WaitFor(
      [&] {
        refusals = Refusals(log);
        const int logged = static_cast<int>(AttemptStarts(refusals).size());
        if (logged < kObservedAttempts) return false;
        auto n = h.GetNode("n0");
        return n.ok() && n->apply_errors_size() == 1 &&
               n->apply_errors(0).attempts() >= logged - 1;
      },
      absl::Seconds(15), absl::Milliseconds(20));
  const absl::Duration observed = absl::Now() - observe_start;
  EXPECT_THAT(h.VerifyAll(others), IsEmpty());
  auto during = h.Hardware("n0");
  ASSERT_TRUE(during.ok());
  EXPECT_TRUE(during->map == before->map);
  EXPECT_TRUE(during->windows == before->windows);
  EXPECT_TRUE(during->inbound == before->inbound);
  EXPECT_TRUE(during->ports == before->ports);
  // The only difference from the desired configuration is the refused slot.
  std::vector<std::string> diff = h.HardwareVsDesired("n0");
  ASSERT_THAT(diff, SizeIs(1));
  EXPECT_THAT(diff[0], HasSubstr("window missing: " + slot));
  for (int i = 1; i < h.nodes(); ++i) {
    EXPECT_THAT(h.HardwareVsDesired(FabricHarness::Node(i)), IsEmpty());
  }

  // Retried with backoff, not in a hot loop: 100, 200, 400, 800, 800 ms...
  const std::vector<int64_t> starts = AttemptStarts(refusals);
  const int attempts = static_cast<int>(starts.size());
  EXPECT_GE(attempts, 4) << "the refused entry was not retried";
  ExpectBackoff(starts);
  node = h.GetNode("n0");
  ASSERT_TRUE(node.ok());
  ASSERT_THAT(node->apply_errors(), SizeIs(1));
  EXPECT_GE(node->apply_errors(0).attempts(), attempts - 1);
  std::vector<double> gaps_ms;
  for (size_t i = 1; i < starts.size(); ++i) {
    gaps_ms.push_back((starts[i] - starts[i - 1]) / 1000.0);
  }
  std::sort(gaps_ms.begin(), gaps_ms.end());

  // Cleared: READY by itself, proved by bytes, bridge exactly as desired.
  std::remove(faults.c_str());
  const absl::Time cleared = absl::Now();
  ASSERT_TRUE(h.WaitState(victim->name(), v1::Allocation::READY,
                          absl::Seconds(10)))
      << h.Get(victim->name())->state_reason();
  const absl::Duration recovery = absl::Now() - cleared;
  std::vector<std::string> all = others;
  all.push_back(victim->name());
  EXPECT_THAT(h.VerifyAll(all), IsEmpty());
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());
  node = h.GetNode("n0");
  ASSERT_TRUE(node.ok());
  EXPECT_THAT(node->apply_errors(), IsEmpty());
  // Nothing drifted: putting in what never landed is not a repair.
  EXPECT_EQ(node->repairs(), 0)
      << absl::StrJoin(node->recent_repairs(), "; ");

  std::cout << "apply failure: " << slot << " of n0 refused "
            << refusals.size() << " times in " << attempts
            << " attempts over "
            << absl::FormatDuration(observed)
            << "; gaps between attempts (ms): min "
            << (gaps_ms.empty() ? 0 : gaps_ms.front()) << ", median "
            << (gaps_ms.empty() ? 0 : gaps_ms[gaps_ms.size() / 2]) << ", max "
            << (gaps_ms.empty() ? 0 : gaps_ms.back()) << " (backoff "
            << kRetryInitialMs << " ms doubling to " << kRetryMaxMs
            << " ms)\n"
            << "  state while refused: "
            << v1::Allocation::State_Name(seen.state()) << ": "
            << seen.state_reason() << "\n"
            << "  READY " << absl::FormatDuration(recovery)
            << " after the fault was cleared; " << all.size()
            << " allocations verified by bytes\n";
}

// An entry every allocation through the bridge needs (its map entries) is
// refused while a link goes down. The allocations through that bridge must
// say why while it lasts; the agent must retry the new generation with
// backoff, never roll the bridge back to the previous one; and once the
// fault is cleared it must finish the generation by itself: every node at
// the final generation, the bridge exactly as desired, everything READY.
TEST(ApplyFailureTest, RefusedMapEntriesAreRetriedUntilTheyLand) {
  FabricHarness h;
  ASSERT_TRUE(h.Start(Options()).ok());
  std::vector<std::string> live;
  for (auto [from, to] : {std::pair{0, 1}, {1, 2}, {2, 3}, {3, 0}, {0, 2}}) {
    auto a = h.Create(from, to, kMiB);
    ASSERT_TRUE(a.ok()) << a.status();
    live.push_back(a->name());
  }
  ASSERT_THAT(h.VerifyAll(live), IsEmpty());

  const std::string faults = sim::FaultsPath(h.sim_dir(), "n0");
  WriteFile(faults, "fail map entry *\n");
  // n0--n1 down: n0 must route everything out of its other port.
  ASSERT_TRUE(h.SetLink("links/n0--n1", false).ok());
  auto stuck = h.WaitSettled(absl::Seconds(2));
  EXPECT_FALSE(stuck.ok()) << "settled although n0 refuses its new routes";
  auto a = h.Get(live[0]);  // n0 -> n1, now the long way round
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->state(), v1::Allocation::PENDING);
  std::cout << "while map entries are refused: " << live[0] << " "
            << v1::Allocation::State_Name(a->state()) << ": "
            << a->state_reason() << "\n";
  EXPECT_THAT(a->state_reason(), HasSubstr("node n0 could not apply map"));
  const std::vector<int64_t> refused =
      Refusals(sim::FaultLogPath(h.sim_dir(), "n0"));
  const size_t refusals = refused.size();
  const std::vector<int64_t> starts = AttemptStarts(refused);
  EXPECT_GE(starts.size(), 3u) << "the refused generation was not retried";
  ExpectBackoff(starts);

  auto n0 = h.GetNode("n0");
  ASSERT_TRUE(n0.ok());
  // The new generation is the one being retried; the bridge is not rolled
  // back to the previous one (that would bring the link's port back up and
  // count it as a repair).
  EXPECT_LT(n0->applied_generation(), n0->desired_generation());
  ASSERT_GE(n0->apply_errors_size(), 1);
  EXPECT_EQ(n0->apply_errors(0).entry(), "map entries");
  EXPECT_GE(n0->apply_errors(0).attempts(), 2);
  EXPECT_EQ(n0->repairs(), 0) << absl::StrJoin(n0->recent_repairs(), "; ");
  auto hw = h.Hardware("n0");
  ASSERT_TRUE(hw.ok());
  for (const auto& port : hw->ports) {
    // Ring wiring: port 2 of n0 goes to port 1 of n1.
    if (port.number == 2) {
      EXPECT_FALSE(port.up) << "n0's port 2 rolled back";
    }
  }
  std::cout << "  n0 reports applied generation " << n0->applied_generation()
            << " of " << n0->desired_generation() << ", "
            << n0->apply_errors_size() << " apply errors, " << n0->repairs()
            << " repairs (" << absl::StrJoin(n0->recent_repairs(), "; ")
            << "); n0's bridge vs desired: "
            << absl::StrJoin(h.HardwareVsDesired("n0"), "; ") << "\n";

  std::remove(faults.c_str());
  absl::StatusOr<absl::Duration> settled = h.WaitSettled(absl::Seconds(5));
  ASSERT_TRUE(settled.ok())
      << settled.status() << "\nn0's bridge vs desired: "
      << absl::StrJoin(h.HardwareVsDesired("n0"), "; ");
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());
  EXPECT_THAT(h.VerifyAll(live), IsEmpty());
  n0 = h.GetNode("n0");
  ASSERT_TRUE(n0.ok());
  EXPECT_EQ(n0->applied_generation(), n0->desired_generation());
  EXPECT_EQ(n0->repairs(), 0) << absl::StrJoin(n0->recent_repairs(), "; ");
  std::cout << "map entries refused " << refusals
            << " times; settled " << absl::FormatDuration(*settled)
            << " after the fault was cleared\n";
}

}  // namespace
}  // namespace fabric::faults
