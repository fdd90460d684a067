// Link flaps: a link of a six-node ring is toggled through SetLinkState
// every few milliseconds for two seconds while allocations are live and
// others are created and released. The manager and the simulated agents are
// processes. Afterwards routes must settle (every node READY at the final
// generation), nothing may leak (every simulated bridge holds exactly what
// the manager's desired configuration says, and no allocation entry at all
// once everything is released), and allocations that were DEGRADED while
// the flapping link partitioned the ring must be READY again and prove
// themselves by bytes.
#include <atomic>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_harness.h"

namespace fabric::faults {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int kNodes = 6;
constexpr uint64_t kMiB = 1ull << 20;
constexpr absl::Duration kFlapFor = absl::Seconds(2);
constexpr absl::Duration kFlapEvery = absl::Milliseconds(4);

// Partition sides once links n2--n3 and n5--n0 are down: {n0,n1,n2} and
// {n3,n4,n5}.
int Side(const std::string& node) {
  return node >= "nodes/n3" ? 1 : 0;
}

TEST(LinkFlapTest, FlappingLinkSettlesLeaksNothingAndDegradedComeBack) {
  FabricHarness h;
  ASSERT_TRUE(h.Start({.nodes = kNodes}).ok());

  // Live allocations: every ordered pair (i, i+1), (i, i+2), (i, i+3).
  std::vector<std::string> live;
  std::vector<std::string> crossing;  // across the partition
  for (int i = 0; i < kNodes; ++i) {
    for (int d = 1; d <= 3; ++d) {
      auto a = h.Create(i, (i + d) % kNodes, (d % 2 + 1) * kMiB,
                        absl::StrCat("live-", i, "-", d));
      ASSERT_TRUE(a.ok()) << a.status();
      live.push_back(a->name());
      if (Side(a->borrower()) != Side(a->target())) {
        crossing.push_back(a->name());
      }
    }
  }
  ASSERT_THAT(h.VerifyAll(live), IsEmpty());

  // One link down for good: the ring is a line, everything rerouted.
  ASSERT_TRUE(h.SetLink("links/n2--n3", false).ok());
  ASSERT_TRUE(h.WaitSettled().ok());
  ASSERT_THAT(h.VerifyAll(live), IsEmpty());

  // The flapping link down once, on purpose: the partition is real, the
  // crossing allocations are DEGRADED and say why.
  ASSERT_TRUE(h.SetLink("links/n5--n0", false).ok());
  ASSERT_FALSE(crossing.empty());
  for (const std::string& name : crossing) {
    ASSERT_TRUE(h.WaitState(name, v1::Allocation::DEGRADED)) << name;
    auto a = h.Get(name);
    ASSERT_TRUE(a.ok());
    EXPECT_THAT(a->state_reason(), HasSubstr("no path"));
  }

  // The storm: n5--n0 toggled every few ms; meanwhile a client creates and
  // releases allocations, and another watches a crossing allocation.
  std::atomic<bool> stop{false};
  std::atomic<int> churn_ok{0}, churn_unreachable{0}, churn_errors{0};
  std::atomic<int> seen_degraded{0}, seen_ready{0};
  std::string churn_error;  // first unexpected error; written once
  std::thread churn([&] {
    std::mt19937 rng(7);
    int i = 0;
    while (!stop.load()) {
      const int from = static_cast<int>(rng() % kNodes);
      const int to = (from + 1 + static_cast<int>(rng() % (kNodes - 1))) %
                     kNodes;
      auto a = h.Create(from, to, kMiB, absl::StrCat("churn-", i++));
      if (!a.ok()) {
        // Across a cut link there is no path to place a grant on.
        if (absl::IsUnavailable(a.status()) &&
            absl::StrContains(a.status().message(), "unreachable")) {
          ++churn_unreachable;
        } else if (churn_errors++ == 0) {
          churn_error = a.status().ToString();
        }
        continue;
      }
      if (absl::Status s = h.Delete(a->name()); !s.ok()) {
        if (churn_errors++ == 0) churn_error = s.ToString();
        continue;
      }
      ++churn_ok;
    }
  });
  std::thread watcher([&] {
    while (!stop.load()) {
      auto a = h.Get(crossing[0]);
      if (a.ok() && a->state() == v1::Allocation::DEGRADED) ++seen_degraded;
      if (a.ok() && a->state() == v1::Allocation::READY) ++seen_ready;
      // Samples the state through the storm; not a wait for one state.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  int flaps = 0;
  bool up = false;
  int64_t generation_before = 0;
  if (auto f = h.Nodes(); f.ok() && !f->empty()) {
    generation_before = (*f)[0].desired_generation();
  }
  const absl::Time storm_start = absl::Now();
  absl::Status flap_status;
  while (absl::Now() - storm_start < kFlapFor || !up) {
    up = !up;
    flap_status = h.SetLink("links/n5--n0", up);
    if (!flap_status.ok()) break;
    ++flaps;
    // The flap rate is the load this test applies: real time on purpose.
    std::this_thread::sleep_for(std::chrono::microseconds(
        absl::ToInt64Microseconds(kFlapEvery)));
  }
  const absl::Time last_flap = absl::Now();
  const absl::Duration storm = last_flap - storm_start;
  stop = true;
  churn.join();
  watcher.join();
  ASSERT_TRUE(flap_status.ok()) << flap_status;
  EXPECT_EQ(churn_errors.load(), 0) << churn_error;

  // Settled: every node at the final generation, everything READY.
  std::string unsettled;
  absl::StatusOr<absl::Duration> settled =
      h.WaitSettled(absl::Seconds(15), &unsettled);
  ASSERT_TRUE(settled.ok()) << settled.status();
  const absl::Duration settle = absl::Now() - last_flap;
  int64_t generation_after = 0;
  if (auto f = h.Nodes(); f.ok() && !f->empty()) {
    generation_after = (*f)[0].desired_generation();
  }
  auto all = h.List();
  ASSERT_TRUE(all.ok());
  // Churned allocations were all released: only the live ones remain.
  std::set<std::string> names;
  for (const auto& a : *all) names.insert(a.name());
  EXPECT_EQ(names, std::set<std::string>(live.begin(), live.end()));
  for (const auto& a : *all) {
    EXPECT_EQ(a.state(), v1::Allocation::READY)
        << a.name() << ": " << a.state_reason();
  }
  // The bridges hold exactly the desired configuration: no stale route, no
  // leaked or duplicated window or inbound grant.
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());
  // DEGRADED while cut, READY and proved by bytes now.
  EXPECT_THAT(h.VerifyAll(crossing), IsEmpty());
  EXPECT_THAT(h.VerifyAll(live), IsEmpty());

  // The static cut heals too; then everything is released and the bridges
  // hold routes only.
  ASSERT_TRUE(h.SetLink("links/n2--n3", true).ok());
  ASSERT_TRUE(h.WaitSettled().ok());
  EXPECT_THAT(h.VerifyAll(live), IsEmpty());
  for (const std::string& name : live) ASSERT_TRUE(h.Delete(name).ok());
  ASSERT_TRUE(h.WaitSettled().ok());
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());
  for (int i = 0; i < kNodes; ++i) {
    auto hw = h.Hardware(FabricHarness::Node(i));
    ASSERT_TRUE(hw.ok());
    EXPECT_THAT(hw->windows, IsEmpty()) << FabricHarness::Node(i);
    EXPECT_THAT(hw->inbound, IsEmpty()) << FabricHarness::Node(i);
  }

  std::cout << "link flaps: " << flaps << " SetLinkState calls in "
            << absl::FormatDuration(storm) << " ("
            << absl::StrFormat("%.1f", flaps / absl::ToDoubleSeconds(storm))
            << "/s), generations " << generation_before << " -> "
            << generation_after << " (+"
            << (generation_after - generation_before) << ")\n"
            << "  during the storm: " << churn_ok.load()
            << " allocations created and released, "
            << churn_unreachable.load()
            << " creates refused as unreachable; a crossing allocation was "
               "seen DEGRADED "
            << seen_degraded.load() << " and READY " << seen_ready.load()
            << " times\n"
            << "  settle time after the last flap: "
            << absl::FormatDuration(settle) << " ("
            << crossing.size() << " crossing allocations back to READY, "
            << live.size() << " verified by bytes); right after the "
            << "storm: " << (unsettled.empty() ? "settled" : unsettled)
            << "\n";
}

}  // namespace
}  // namespace fabric::faults
