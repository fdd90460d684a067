// hw_sim_bench: how long SimBridge takes to apply a configuration of 1,000
// entries (map entries + windows + LUT slots + inbound grants), next to
// no-op baselines in the same run. No timed assertions.
//
//   hw_sim_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/testing/temp_dir.h"
#include "benchmark/benchmark.h"

namespace fabric::agent::hw {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kMemBase = 0x1'0000'0000ull;
constexpr uint64_t kWinBase = 0x200'0000'0000ull;
constexpr uint64_t kFabric = 0x1000'0000'0000ull;

constexpr int kMap = 200, kWindows = 64, kLut = 256, kInbound = 480;
static_assert(kMap + kWindows + kLut + kInbound == 1000);

// A chip big enough to hold 1,000 entries.
HardwareLimits BigLimits() {
  HardwareLimits l;
  l.profile = "bench";
  l.window_count = kWindows;
  l.lut_entries = kLut;
  l.lut_entry_size = 64 * kKiB;
  l.xlat_align = 4 * kKiB;
  l.size_granularity = 4 * kKiB;
  l.min_window_size = 4 * kKiB;
  l.max_window_size = kMiB;
  l.mapping_entries = kMap;
  l.doorbells = 32;
  l.scratchpads = 16;
  return l;
}

// 1,000 entries; `variant` shifts every translation so two variants differ
// in every window.
BridgeState Config(int variant) {
  const HardwareLimits l = BigLimits();
  BridgeState s;
  s.memory = {kMemBase, 1ull << 30, kWinBase};
  for (int i = 0; i < kMap; ++i) {
    s.map.push_back({MapEntry::Kind::kForward, kFabric + i * 16 * kMiB,
                     16 * kMiB, 1 + i % 2, 0});
  }
  const uint64_t shift = static_cast<uint64_t>(variant) * 64 * kKiB;
  for (int k = 0; k < kWindows; ++k) {
    s.windows.push_back({SlotKind::kWindow, k, kWinBase + k * l.max_window_size,
                         64 * kKiB, kFabric + k * kMiB + shift,
                         absl::StrCat("grant-", k)});
  }
  const uint64_t lut_base = kWinBase + kWindows * l.max_window_size;
  for (int k = 0; k < kLut; ++k) {
    s.windows.push_back({SlotKind::kLut, k, lut_base + k * l.lut_entry_size,
                         l.lut_entry_size,
                         kFabric + 0x100'0000'0000ull + k * kMiB + shift,
                         absl::StrCat("lut-grant-", k)});
  }
  for (int k = 0; k < kInbound; ++k) {
    s.inbound.push_back(
        {kMemBase + k * 64 * kKiB, 64 * kKiB, absl::StrCat("in-", k)});
  }
  s.ports.push_back({1, "left", 2, true});
  s.ports.push_back({2, "right", 1, true});
  return s;
}

std::unique_ptr<SimBridge> OpenBench(const testing::TempDir& dir) {
  auto b = SimBridge::Open(dir.path(), "bench", BigLimits());
  if (!b.ok()) abort();
  return *std::move(b);
}

// Baseline: an empty iteration.
void BM_Baseline_Empty(benchmark::State& state) {
  int x = 0;
  for (auto _ : state) benchmark::DoNotOptimize(x += 1);
}
BENCHMARK(BM_Baseline_Empty);

// Baseline: re-applying what is programmed (reads the file, validates,
// compares, writes nothing).
void BM_ApplyState1000_Unchanged(benchmark::State& state) {
  testing::TempDir dir;
  auto b = OpenBench(dir);
  const BridgeState s = Config(0);
  if (!b->ApplyState(s).ok()) abort();
  for (auto _ : state) {
    if (!b->ApplyState(s).ok()) abort();
  }
  state.SetLabel("no-op re-apply");
}
BENCHMARK(BM_ApplyState1000_Unchanged)->Unit(benchmark::kMillisecond);

// The target: a configuration of 1,000 entries applied in one ApplyState
// (every window changes each iteration; one atomic rewrite).
void BM_ApplyState1000(benchmark::State& state) {
  testing::TempDir dir;
  auto b = OpenBench(dir);
  const BridgeState a = Config(0), c = Config(1);
  int i = 0;
  for (auto _ : state) {
    if (!b->ApplyState(++i % 2 ? c : a).ok()) abort();
  }
}
BENCHMARK(BM_ApplyState1000)->Unit(benchmark::kMillisecond);

// One SetWindow on a bridge holding 1,000 entries: the per-call cost that
// 1,000 separate Set* calls would pay 1,000 times.
void BM_SetWindowOneCall_On1000(benchmark::State& state) {
  testing::TempDir dir;
  auto b = OpenBench(dir);
  const BridgeState a = Config(0);
  if (!b->ApplyState(a).ok()) abort();
  Window w = a.windows[0];
  int i = 0;
  for (auto _ : state) {
    w.xlat = kFabric + (++i % 2) * 64 * kKiB;
    if (!b->SetWindow(w).ok()) abort();
  }
}
BENCHMARK(BM_SetWindowOneCall_On1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fabric::agent::hw

BENCHMARK_MAIN();
