// The simulator's fault injection: register writes, refused entries named
// in the faults file, and a crash half-way through an ApplyState.
#include "agent/hw/sim/sim_faults.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/state_file.h"
#include "agent/hw/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent::hw {
namespace {

using ::fabric::agent::hw::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kMemBase = 0x1'0000'0000ull;
constexpr uint64_t kWinBase = 0x200'0000'0000ull;
constexpr uint64_t kFabric = 0x1000'0000'0000ull;

HardwareLimits SimLimits() {
  HardwareLimits l;
  l.profile = "sim";
  l.window_count = 8;
  l.lut_entries = 32;
  l.lut_entry_size = kMiB;
  l.xlat_align = 4 * kKiB;
  l.size_granularity = 4 * kKiB;
  l.min_window_size = 4 * kKiB;
  l.max_window_size = kGiB;
  l.mapping_entries = 64;
  l.doorbells = 32;
  l.scratchpads = 16;
  return l;
}

Window Direct(int slot, const std::string& tag) {
  return {SlotKind::kWindow, slot, kWinBase + slot * kGiB, 64 * kKiB,
          kFabric + kGiB + slot * kMiB, tag};
}

// A generation's worth of state: memory, two map entries, windows,
// inbound grants and two ports.
BridgeState Generation(int windows) {
  BridgeState s;
  s.memory = {kMemBase, 64 * kMiB, kWinBase};
  s.map = {{MapEntry::Kind::kClaim, kFabric, 64 * kMiB, 0, kMemBase},
           {MapEntry::Kind::kForward, kFabric + 64 * kMiB, 64 * kMiB, 1, 0}};
  for (int i = 0; i < windows; ++i) {
    s.windows.push_back(Direct(i, "a" + std::to_string(i)));
    s.inbound.push_back({kMemBase + i * kMiB, 64 * kKiB,
                         "b" + std::to_string(i)});
  }
  s.ports = {{1, "n1", 2, true}, {2, "n3", 1, true}};
  s.scratchpads.assign(16, 0);  // as a new chip has them
  return s;
}

// The state as the chip holds it (sorted, like SimBridge::Read).
BridgeState Normalized(BridgeState s) {
  std::sort(s.map.begin(), s.map.end(),
            [](const MapEntry& a, const MapEntry& b) { return a.base < b.base; });
  std::sort(s.windows.begin(), s.windows.end(),
            [](const Window& a, const Window& b) {
              return std::make_pair(a.kind, a.slot) <
                     std::make_pair(b.kind, b.slot);
            });
  std::sort(s.inbound.begin(), s.inbound.end(),
            [](const Inbound& a, const Inbound& b) {
              return std::make_pair(a.local_base, a.size) <
                     std::make_pair(b.local_base, b.size);
            });
  std::sort(s.ports.begin(), s.ports.end(),
            [](const Port& a, const Port& b) { return a.number < b.number; });
  return s;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RegisterWritesTest, OneWritePerChangedEntryAndAllOfThemReachTheTarget) {
  const BridgeState from = Generation(2);
  BridgeState to = Generation(3);
  to.windows[0].xlat += kMiB;           // reprogrammed
  to.map[1].port = 2;                   // rerouted: remove + add
  to.ports[1].up = false;               // link down
  std::vector<sim_internal::RegisterWrite> writes =
      sim_internal::RegisterWrites(from, to);
  std::vector<std::string> entries;
  for (const auto& w : writes) entries.push_back(w.entry);
  EXPECT_THAT(entries,
              ElementsAre("map entry 0x1000_0400_0000",
                          "map entry 0x1000_0400_0000", "window 0", "window 2",
                          "inbound 0x1_0020_0000", "port 2"));
  BridgeState s = from;
  for (const auto& w : writes) w.apply(s);
  EXPECT_TRUE(Normalized(s) == Normalized(to));
  EXPECT_TRUE(sim_internal::RegisterWrites(to, to).empty());
}

TEST(FaultsFileTest, RefusedEntryFailsTheWholeChangeAndIsLogged) {
  TempDir dir;
  auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*b)->ApplyState(Generation(1)).ok());
  const std::string faults = sim_internal::FaultsPath(dir.path(), "n0");
  WriteFile(faults, "# lent windows stick\nfail window *\n");

  const std::string before = ReadText(sim_internal::StatePath(dir.path(), "n0"));
  absl::Status s = (*b)->ApplyState(Generation(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_THAT(s.message(), HasSubstr("window 1"));
  EXPECT_THAT(s.message(), HasSubstr("injected fault"));
  EXPECT_EQ(ReadText(sim_internal::StatePath(dir.path(), "n0")), before);
  // Entry by entry: a window the chip already holds is no write; a new one
  // is refused; everything else goes through.
  EXPECT_TRUE((*b)->SetWindow(Direct(0, "a0")).ok());
  EXPECT_FALSE((*b)->SetWindow(Direct(1, "a1")).ok());
  EXPECT_TRUE((*b)->SetInbound(Generation(2).inbound).ok());
  const std::vector<std::string> log = absl::StrSplit(
      ReadText(sim_internal::FaultLogPath(dir.path(), "n0")), '\n',
      absl::SkipEmpty());
  ASSERT_EQ(log.size(), 2u);
  EXPECT_THAT(log[0], HasSubstr(" window 1"));

  WriteFile(faults, "frobnicate window 1\n");
  s = (*b)->SetWindow(Direct(1, "a1"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr(":1: unknown directive"));

  std::remove(faults.c_str());
  EXPECT_TRUE((*b)->ApplyState(Generation(2)).ok());
  auto read = (*b)->Read();
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->windows.size(), 2u);
}

// A crash after k register writes leaves exactly those k writes on the
// chip: half a generation, which a fresh process can read and finish.
TEST(CrashAfterWritesTest, DiesMidApplyLeavingExactlyTheWritesMade) {
  const BridgeState from = Generation(1);
  BridgeState to = Generation(4);
  to.ports[0].up = false;
  const size_t total = sim_internal::RegisterWrites(from, to).size();
  ASSERT_GE(total, 6u);
  for (size_t k : {size_t{0}, size_t{1}, total / 2, total - 1}) {
    SCOPED_TRACE(k);
    TempDir dir;
    {
      auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
      ASSERT_TRUE(b.ok()) << b.status();
      ASSERT_TRUE((*b)->ApplyState(from).ok());
    }
    EXPECT_EXIT(
        {
          auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
          if (!b.ok()) _exit(1);
          (*b)->CrashAfterWrites(static_cast<int>(k));
          (void)(*b)->ApplyState(to);
          _exit(0);  // not reached
        },
        ::testing::ExitedWithCode(sim_internal::kSimCrashExitCode),
        "injected crash after");
    auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
    ASSERT_TRUE(b.ok()) << b.status();
    auto half = (*b)->Read();
    ASSERT_TRUE(half.ok());
    // Exactly total - k writes remain to be made.
    EXPECT_EQ(sim_internal::RegisterWrites(*half, to).size(), total - k);
    ASSERT_TRUE((*b)->ApplyState(to).ok());
    auto done = (*b)->Read();
    ASSERT_TRUE(done.ok());
    EXPECT_TRUE(*done == Normalized(to));
  }
}

TEST(CrashAfterWritesTest, CountsAcrossChangesAndNoOpsAreNoWrites) {
  TempDir dir;
  const BridgeState from = Generation(1);
  {
    auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_TRUE((*b)->ApplyState(from).ok());
  }
  EXPECT_EXIT(
      {
        auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
        if (!b.ok()) _exit(1);
        (*b)->CrashAfterWrites(2);
        if (!(*b)->ApplyState(from).ok()) _exit(2);       // no writes
        if (!(*b)->WriteScratchpad(0, 7).ok()) _exit(3);  // 1 write
        (void)(*b)->SetWindow(Direct(5, "x"));            // the 2nd: dies
        _exit(0);
      },
      ::testing::ExitedWithCode(sim_internal::kSimCrashExitCode),
      "after 1 of 1 register writes");
  auto b = SimBridge::Open(dir.path(), "n0", SimLimits());
  ASSERT_TRUE(b.ok());
  auto s = (*b)->Read();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scratchpads[0], 7u);
  EXPECT_EQ(s->windows.size(), 2u);  // window 0 and the crashing write
}

}  // namespace
}  // namespace fabric::agent::hw
