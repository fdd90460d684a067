// An agent that applies half a generation and dies. The simulator's fault
// hook (fabric-agent --sim-crash-after-writes N, agent/hw/sim/sim_faults.h)
// makes the agent process _exit() once N register writes of its bridge have
// landed, in the middle of one ApplyState. The restarted agent must finish
// the job idempotently: the bridge ends exactly at the desired
// configuration, with no entry twice, and every allocation proves itself
// by bytes.
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/hw/sim/sim_faults.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_harness.h"

namespace fabric::faults {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace sim = ::fabric::agent::hw::sim_internal;

constexpr uint64_t kMiB = 1ull << 20;
constexpr int kVictim = 1;

// The register writes node's bridge still needs to reach its desired
// configuration, by entry name.
std::vector<std::string> PendingWrites(FabricHarness& h,
                                       const std::string& node) {
  auto config = h.Desired(node);
  auto have = h.Hardware(node);
  if (!config.ok() || !have.ok()) return {"cannot read"};
  std::vector<std::string> out;
  for (const auto& w :
       sim::RegisterWrites(*have, WantedState(*config, *have))) {
    out.push_back(w.entry);
  }
  return out;
}

TEST(AgentCrashTest, RestartedAgentFinishesAHalfAppliedGeneration) {
  FabricHarness h;
  ASSERT_TRUE(h.Start({.nodes = 4}).ok());
  const std::string victim = FabricHarness::Node(kVictim);

  std::vector<std::string> live;
  for (auto [from, to] : {std::pair{0, 1}, {1, 2}, {2, 3}, {3, 0}}) {
    auto a = h.Create(from, to, kMiB);
    ASSERT_TRUE(a.ok()) << a.status();
    live.push_back(a->name());
  }
  ASSERT_THAT(h.VerifyAll(live), IsEmpty());

  // Each round: the victim's agent is killed, the fabric changes under it
  // (new allocations lent to it and borrowed by it, one released, a link
  // toggled so its routes move), and it restarts with a crash armed after
  // `k` of the `total` register writes that change needs. k == total + 1
  // dies in the scratchpad write that records the applied fingerprint.
  enum Point { kFirst, kHalf, kLast, kFingerprint };
  bool link_down = false;
  int round = 0;
  for (Point point : {kFirst, kHalf, kLast, kFingerprint}) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    h.KillAgent(kVictim);
    for (auto [from, to] : {std::pair{kVictim, 3}, {0, kVictim},
                            {kVictim, 0}, {2, kVictim}}) {
      auto a = h.Create(from, to, (round % 2 + 1) * kMiB);
      ASSERT_TRUE(a.ok()) << a.status();
      live.push_back(a->name());
    }
    ASSERT_TRUE(h.Delete(live[0]).ok());
    live.erase(live.begin());
    link_down = !link_down;
    ASSERT_TRUE(h.SetLink("links/n1--n2", !link_down).ok());

    const std::vector<std::string> needed = PendingWrites(h, victim);
    const int total = static_cast<int>(needed.size());
    ASSERT_GE(total, 6) << absl::StrJoin(needed, ", ");
    const int k = point == kFirst         ? 1
                  : point == kHalf        ? total / 2
                  : point == kLast        ? total - 1
                                          : total + 1;
    h.StartAgent(kVictim, {"--sim-crash-after-writes", absl::StrCat(k)});
    const int code = h.WaitAgentExit(kVictim, absl::Seconds(10));
    ASSERT_EQ(code, sim::kSimCrashExitCode)
        << proctest::ReadFile(h.AgentLog(kVictim));
    EXPECT_THAT(proctest::ReadFile(h.AgentLog(kVictim)),
                HasSubstr("injected crash after"));
    // Exactly k writes landed: half a generation.
    const std::vector<std::string> left = PendingWrites(h, victim);
    if (point == kFingerprint) {
      EXPECT_THAT(left, IsEmpty());  // the apply itself was complete
    } else {
      EXPECT_EQ(static_cast<int>(left.size()), total - k)
          << "needed: " << absl::StrJoin(needed, ", ")
          << "\nleft: " << absl::StrJoin(left, ", ");
    }
    std::cout << "round " << round << ": crash after " << k << " of " << total
              << " register writes (" << absl::StrJoin(needed, ", ")
              << "); " << left.size() << " left for the restarted agent\n";

    // The restarted agent finishes it.
    const absl::Time restart = absl::Now();
    h.StartAgent(kVictim);
    ASSERT_TRUE(h.WaitRegistered(kVictim).ok());
    absl::StatusOr<absl::Duration> settled = h.WaitSettled();
    ASSERT_TRUE(settled.ok()) << settled.status();
    settled = absl::Now() - restart;
    EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());
    EXPECT_THAT(h.VerifyAll(live), IsEmpty());
    // Finishing a generation is not drift.
    auto node = h.GetNode(victim);
    ASSERT_TRUE(node.ok());
    EXPECT_EQ(node->repairs(), 0) << absl::StrJoin(node->recent_repairs(), "; ");
    std::cout << "  restarted agent: started to settled in "
              << absl::FormatDuration(*settled) << "; " << live.size()
              << " allocations verified by bytes\n";
    ++round;
  }

  // Released, nothing is left behind.
  for (const std::string& name : live) ASSERT_TRUE(h.Delete(name).ok());
  ASSERT_TRUE(h.WaitSettled().ok());
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());
  auto hw = h.Hardware(victim);
  ASSERT_TRUE(hw.ok());
  EXPECT_THAT(hw->windows, IsEmpty());
  EXPECT_THAT(hw->inbound, IsEmpty());
}

}  // namespace
}  // namespace fabric::faults
