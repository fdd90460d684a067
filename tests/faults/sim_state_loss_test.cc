// A running agent's simulated bridge state lost behind its back: random
// bytes (invalid UTF-8 among them) written into its bridge.json, then the
// file deleted. Each time the agent's drift check must find the state
// unreadable, rebuild the bridge from the desired configuration and count
// the repair; its reports must keep reaching the manager (protobuf refuses
// a report carrying invalid UTF-8), so the node stays READY, and every
// allocation through the bridge must prove itself by bytes again. The
// manager and the simulated agents are processes.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/hw/sim/state_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_harness.h"

namespace fabric::faults {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace sim = ::fabric::agent::hw::sim_internal;

constexpr uint64_t kMiB = 1ull << 20;

// Waits until `node` is READY at its desired generation without apply
// errors, having reported more than `repairs` repairs, the last one
// `expected`. Returns the node as last seen.
v1::Node WaitRepaired(FabricHarness& h, const std::string& node,
                      int64_t repairs, const std::string& expected) {
  v1::Node seen;
  proctest::WaitFor(
      [&] {
        auto n = h.GetNode(node);
        if (!n.ok()) return false;
        seen = *n;
        return seen.agent_state() == v1::Node::READY &&
               seen.apply_errors_size() == 0 &&
               seen.applied_generation() == seen.desired_generation() &&
               seen.repairs() > repairs && seen.recent_repairs_size() > 0 &&
               absl::StrContains(
                   seen.recent_repairs(seen.recent_repairs_size() - 1),
                   expected);
      },
      absl::Seconds(10));
  return seen;
}

TEST(SimStateLossTest, CorruptOrDeletedStateIsRebuiltAndTheNodeStaysReady) {
  FabricHarness h;
  HarnessOptions options;
  options.nodes = 3;
  ASSERT_TRUE(h.Start(options).ok());
  std::vector<std::string> live;
  for (auto [from, to] : {std::pair{0, 1}, {2, 0}, {1, 2}}) {
    auto a = h.Create(from, to, kMiB);
    ASSERT_TRUE(a.ok()) << a.status();
    live.push_back(a->name());
  }
  ASSERT_THAT(h.VerifyAll(live), IsEmpty());
  const std::string state = sim::StatePath(h.sim_dir(), "n0");

  std::string noise = "\xff\xfe";
  std::mt19937 gen(42);
  for (int i = 0; i < 4096; ++i) noise.push_back(static_cast<char>(gen()));
  std::ofstream(state, std::ios::binary | std::ios::trunc) << noise;
  v1::Node n0 = WaitRepaired(h, "n0", 0, "; rebuilt from generation ");
  ASSERT_GE(n0.repairs(), 1) << n0.DebugString();
  const std::string corrupt = n0.recent_repairs(n0.recent_repairs_size() - 1);
  EXPECT_THAT(corrupt, HasSubstr("bridge state unreadable ("));
  EXPECT_THAT(corrupt, HasSubstr("does not parse"));
  EXPECT_THAT(h.VerifyAll(live), IsEmpty());
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());

  ASSERT_EQ(unlink(state.c_str()), 0);
  n0 = WaitRepaired(h, "n0", n0.repairs(), "No such file or directory");
  const std::string deleted = n0.recent_repairs(n0.recent_repairs_size() - 1);
  EXPECT_THAT(deleted, HasSubstr("bridge state unreadable ("));
  EXPECT_THAT(deleted, HasSubstr("; rebuilt from generation "));
  EXPECT_THAT(h.VerifyAll(live), IsEmpty());
  EXPECT_THAT(h.AllHardwareVsDesired(), IsEmpty());

  // No report was refused for what the file held (protobuf logs "String
  // field ... contains invalid UTF-8 data" for each it would refuse).
  const std::string log = proctest::ReadFile(h.AgentLog(0));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("invalid UTF-8")));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("status report failed")));
  std::cout << "n0 repaired " << n0.repairs() << " times:\n  "
            << absl::StrJoin(n0.recent_repairs(), "\n  ") << "\n";
}

}  // namespace
}  // namespace fabric::faults
