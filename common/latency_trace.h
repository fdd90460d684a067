// Latency tracing across processes, for the benchmarks that time a change
// from the client through the manager and the agents (fabric-ready-bench,
// fabric-vf-bench).
//
// When the environment variable FABRIC_LATENCY_TRACE names a file, every
// LatencyTrace::Record appends one line to it:
//   <monotonic ns> <point> <key> <value>
// e.g. "81234567890 agent.applied n3 42". Processes on one host share the
// monotonic clock (CLOCK_MONOTONIC, which std::chrono::steady_clock reads
// on Linux), so the lines of the manager, the agents and the benchmark line
// up. Each line is one write(2) to a file opened O_APPEND, so lines of
// concurrent processes do not interleave. Without the variable (always, in
// production) Record is one load of a flag.
//
// Thread-safe.
#ifndef FABRIC_COMMON_LATENCY_TRACE_H_
#define FABRIC_COMMON_LATENCY_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fabric {

class LatencyTrace {
 public:
  // The environment variable naming the trace file.
  static constexpr char kEnv[] = "FABRIC_LATENCY_TRACE";

  // Whether this process traces (FABRIC_LATENCY_TRACE was set when first
  // asked, and the file could be opened).
  static bool enabled();

  // Appends "<now> <point> <key> <value>" when enabled. `point` and `key`
  // must hold no whitespace.
  static void Record(absl::string_view point, absl::string_view key,
                     int64_t value);

  // The monotonic clock the lines carry, in ns.
  static int64_t NowNs();

  // One line of a trace.
  struct Point {
    int64_t ns = 0;
    std::string point;
    std::string key;
    int64_t value = 0;
  };
  // The lines of a trace file's `text`, in file order; malformed lines are
  // skipped.
  static std::vector<Point> Parse(absl::string_view text);
};

}  // namespace fabric

#endif  // FABRIC_COMMON_LATENCY_TRACE_H_
