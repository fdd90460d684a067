// What one small Apply costs on SqliteStore (WAL, synchronous=FULL, a file
// in a temporary directory) and on EtcdStore (a 1-member etcd on loopback,
// tests/etcd/etcd_cluster.h), at 1 and 8 threads, in one run. Each thread
// applies one batch of two puts (~100 bytes) per iteration; concurrent
// threads are grouped into one fsync / one Txn by both stores.
//
//   store_etcd_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one command line)
//
// The no-op baseline is BM_Noop (the loop and the batch alone).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "server/store/etcd/etcd_store.h"
#include "server/store/sqlite_store.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/process/process_util.h"

namespace fabric::store {
namespace {

Store* g_sqlite = nullptr;
Store* g_etcd = nullptr;
std::atomic<int> g_next_thread{0};

void ApplyLoop(benchmark::State& state, Store* store) {
  const std::string thread = absl::StrCat(g_next_thread++);
  const std::string value(80, 'v');
  const StoreStats before = store != nullptr ? store->stats() : StoreStats{};
  int64_t i = 0;
  for (auto _ : state) {
    WriteBatch batch;
    batch.Put("bench", absl::StrCat(thread, "-", i++), value);
    batch.Put("bench-index", thread, value);
    if (store == nullptr) {
      benchmark::DoNotOptimize(batch);
      continue;
    }
    absl::Status status = store->Apply(batch);
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (store != nullptr && state.thread_index() == 0) {
    // Approximate: the other threads may start before thread 0's snapshot.
    const StoreStats after = store->stats();
    state.counters["batches_per_commit"] =
        static_cast<double>(after.batches - before.batches) /
        std::max<uint64_t>(1, after.commits - before.commits);
  }
}

void BM_Noop(benchmark::State& state) { ApplyLoop(state, nullptr); }
void BM_SqliteApply(benchmark::State& state) { ApplyLoop(state, g_sqlite); }
void BM_EtcdApply(benchmark::State& state) { ApplyLoop(state, g_etcd); }

BENCHMARK(BM_Noop)->Threads(1)->Threads(8)->UseRealTime();
BENCHMARK(BM_SqliteApply)->Threads(1)->Threads(8)->UseRealTime();
BENCHMARK(BM_EtcdApply)->Threads(1)->Threads(8)->UseRealTime();

}  // namespace
}  // namespace fabric::store

int main(int argc, char** argv) {
  using namespace fabric;  // NOLINT
  benchmark::Initialize(&argc, argv);
  proctest::TempDir dir;
  absl::StatusOr<std::unique_ptr<store::Store>> sqlite =
      store::OpenSqliteStore({.path = dir.path() + "/bench.db"});
  if (!sqlite.ok()) {
    fprintf(stderr, "sqlite: %s\n", sqlite.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<etcdtest::EtcdCluster>> etcd =
      etcdtest::EtcdCluster::Start(1);
  if (!etcd.ok()) {
    fprintf(stderr, "etcd: %s\n", etcd.status().ToString().c_str());
    return 1;
  }
  store::EtcdStoreOptions options;
  options.client.endpoints = {(*etcd)->ClientAddress(0)};
  options.prefix = "/bench";
  absl::StatusOr<std::unique_ptr<store::EtcdStore>> etcd_store =
      store::EtcdStore::Open(options);
  if (!etcd_store.ok()) {
    fprintf(stderr, "etcd store: %s\n", etcd_store.status().ToString().c_str());
    return 1;
  }
  store::g_sqlite = sqlite->get();
  store::g_etcd = etcd_store->get();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
