// Overload: hundreds of concurrent clients hammering the real fabric-manager
// (a child process) with CreateAllocation/DeleteAllocation, Ping and
// ListAllocations, every call with a deadline. Each client behaves as a
// well-written one does: a create or delete that is shed
// (RESOURCE_EXHAUSTED) or runs out of time is retried with backoff and the
// same request id, and everything a client created is released. Reports
// what came back (OK, RESOURCE_EXHAUSTED split by cause, DEADLINE_EXCEEDED,
// anything else), latency, and the manager's resident memory before, during
// and after, from /proc/<pid>/status.
//
// Used by fabric-overload-bench (overload_bench.cc) and by the ctest
// faults_overload_test (overload_test.cc).
#ifndef FABRIC_TESTS_FAULTS_OVERLOAD_H_
#define FABRIC_TESTS_FAULTS_OVERLOAD_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fabric::faults {

struct OverloadOptions {
  int clients = 400;
  absl::Duration duration = absl::Seconds(5);
  // Ring size; each borrower has 40 slots (sim profile), so 16 nodes hold
  // 640 allocations at once.
  int nodes = 16;
  // Deadline of every call.
  absl::Duration deadline = absl::Seconds(2);
  // HTTP/2 connections the clients share.
  int channels = 8;
  // Relative weights of the operations a client picks: a create (followed
  // by the delete of what it created), a Ping, a ListAllocations.
  int create_weight = 2;
  int ping_weight = 1;
  int list_weight = 1;
  // Creates and deletes carry request ids (and are retried with them); the
  // manager remembers every id for its retention time.
  bool request_ids = true;
  // Extra fabric-manager flags, e.g. {"--max-inflight", "64"}.
  std::vector<std::string> manager_flags;
};

// Outcomes of one kind of call.
struct OpReport {
  uint64_t requests = 0;
  uint64_t ok = 0;
  uint64_t shed = 0;      // RESOURCE_EXHAUSTED: admission or thread limit
  uint64_t capacity = 0;  // RESOURCE_EXHAUSTED: the fabric is full
  uint64_t deadline = 0;  // DEADLINE_EXCEEDED
  uint64_t other = 0;     // anything else: a bug
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

struct OverloadReport {
  int clients = 0;
  double seconds = 0;
  // By operation ("create", "delete", "ping", "list") and "all".
  std::map<std::string, OpReport> ops;
  // A few examples of each unexpected status, "CODE: message".
  std::vector<std::string> other_examples;
  // The shed messages seen (one example per distinct cause).
  std::vector<std::string> shed_examples;
  // Manager memory in KiB: before the load, the highest VmRSS sampled
  // during it, VmHWM at the end, VmRSS after the load and the cleanup.
  long rss_before_kib = -1;
  long rss_peak_kib = -1;
  long hwm_kib = -1;
  long rss_after_kib = -1;
  // VmRSS sampled during the load: (seconds since the load started, KiB).
  std::vector<std::pair<double, long>> rss_timeline;
  // Least-squares slope of VmRSS over the second half of the load, in
  // KiB/s: steady growth there is memory that the load leaves behind.
  double rss_growth_kib_per_s = 0;
  bool manager_alive = false;   // not exited during or after the load
  bool ping_after_ok = false;   // answers a Ping afterwards
  int leftover_allocations = -1;  // after every client released its own
};

absl::StatusOr<OverloadReport> RunOverload(const OverloadOptions& options);

std::string FormatTable(const OverloadReport& report);
std::string FormatJson(const OverloadReport& report);

}  // namespace fabric::faults

#endif  // FABRIC_TESTS_FAULTS_OVERLOAD_H_
