// Deliveries per second through InterruptRouter by path, next to a no-op
// baseline measured in the same run.
//
//   vf_interrupt_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one command line)
#include <string>

#include "agent/vf/interrupt_router.h"
#include "benchmark/benchmark.h"

namespace fabric::agent::vf {
namespace {

constexpr int kVectors = 64;

// What a caller pays without the router: the loop and one opaque call.
void BM_NoopBaseline(benchmark::State& state) {
  const std::string device = "vf0";
  int vector = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(device.data());
    benchmark::DoNotOptimize(vector = (vector + 1) % kVectors);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NoopBaseline);

// Policy::kDirect with the VM running: posted, no exit.
void BM_DeliverDirectVmRunning(benchmark::State& state) {
  InterruptRouter router;
  router.AddVm("vm").IgnoreError();
  router.AttachDevice("vf0", "vm", Policy::kDirect, kVectors).IgnoreError();
  router.SetVmRunning("vm", 1).IgnoreError();
  int vector = 0;
  for (auto _ : state) {
    DeliveryResult r = router.Deliver("vf0", vector);
    benchmark::DoNotOptimize(r);
    vector = (vector + 1) % kVectors;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DeliverDirectVmRunning);

// The VM is stopped: every delivery goes to the hypervisor queue. Every
// kVectors deliveries the VM enters and leaves again (injecting the queue),
// so each vector is queued afresh rather than coalesced; that entry/exit is
// inside the timing, as the injection is part of this path's cost.
void BM_DeliverViaHypervisorVmStopped(benchmark::State& state) {
  InterruptRouter router;
  router.AddVm("vm").IgnoreError();
  router.AttachDevice("vf0", "vm", Policy::kAuto, kVectors).IgnoreError();
  int vector = 0;
  for (auto _ : state) {
    DeliveryResult r = router.Deliver("vf0", vector);
    benchmark::DoNotOptimize(r);
    if (++vector == kVectors) {
      vector = 0;
      router.SetVmRunning("vm", 1).IgnoreError();
      router.SetVmStopped("vm").IgnoreError();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DeliverViaHypervisorVmStopped);

// Policy::kAuto while the VM alternates running / stopped every kVectors
// deliveries: half direct, half queued.
void BM_DeliverAutoVmToggling(benchmark::State& state) {
  InterruptRouter router;
  router.AddVm("vm").IgnoreError();
  router.AttachDevice("vf0", "vm", Policy::kAuto, kVectors).IgnoreError();
  int vector = 0;
  bool running = false;
  for (auto _ : state) {
    DeliveryResult r = router.Deliver("vf0", vector);
    benchmark::DoNotOptimize(r);
    if (++vector == kVectors) {
      vector = 0;
      running = !running;
      if (running) {
        router.SetVmRunning("vm", 1).IgnoreError();
      } else {
        router.SetVmStopped("vm").IgnoreError();
      }
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DeliverAutoVmToggling);

// Two threads delivering to two devices of one running VM: lock contention.
void BM_DeliverDirectContended(benchmark::State& state) {
  static InterruptRouter* router = nullptr;
  if (state.thread_index() == 0) {
    router = new InterruptRouter();
    router->AddVm("vm").IgnoreError();
    router->AttachDevice("vf0", "vm", Policy::kAuto, kVectors).IgnoreError();
    router->AttachDevice("vf1", "vm", Policy::kAuto, kVectors).IgnoreError();
    router->SetVmRunning("vm", 1).IgnoreError();
  }
  const std::string device = state.thread_index() % 2 ? "vf1" : "vf0";
  int vector = 0;
  for (auto _ : state) {
    DeliveryResult r = router->Deliver(device, vector);
    benchmark::DoNotOptimize(r);
    vector = (vector + 1) % kVectors;
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete router;
    router = nullptr;
  }
}
BENCHMARK(BM_DeliverDirectContended)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace fabric::agent::vf

BENCHMARK_MAIN();
