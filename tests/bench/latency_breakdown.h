// Where the time of a change goes, from a latency trace (common/
// latency_trace.h) written by the manager, the agents and the benchmark
// into one file: a benchmark marks each sample's steps in order (request
// sent, generation committed, configuration streamed, ...) and gets the
// median and p99 of each phase between consecutive marks.
#ifndef FABRIC_TESTS_BENCH_LATENCY_BREAKDOWN_H_
#define FABRIC_TESTS_BENCH_LATENCY_BREAKDOWN_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/latency_trace.h"
#include "tests/bench/bench_util.h"

namespace fabric::bench {

// The points of a trace, by point and key, for lookups in time order.
class TraceIndex {
 public:
  explicit TraceIndex(const std::vector<LatencyTrace::Point>& points) {
    for (const LatencyTrace::Point& p : points) {
      // Node names come as "n3" or "nodes/n3".
      absl::string_view key = p.key;
      if (absl::StartsWith(key, "nodes/")) key.remove_prefix(6);
      by_[{p.point, std::string(key)}].push_back({p.ns, p.value});
    }
    for (auto& [k, v] : by_) std::sort(v.begin(), v.end());
  }

  // When `point` of `key` was first recorded at or after `after_ns` with a
  // value of at least `min_value`; -1 when it never was.
  int64_t First(const std::string& point, const std::string& key,
                int64_t min_value, int64_t after_ns) const {
    auto it = by_.find({point, key});
    if (it == by_.end()) return -1;
    const auto& v = it->second;
    for (auto p = std::lower_bound(v.begin(), v.end(),
                                   std::make_pair(after_ns, INT64_MIN));
         p != v.end(); ++p) {
      if (p->second >= min_value) return p->first;
    }
    return -1;
  }

 private:
  // (point, key) -> (ns, value), by ns.
  std::map<std::pair<std::string, std::string>,
           std::vector<std::pair<int64_t, int64_t>>>
      by_;
};

// Phases between consecutive marks, over many samples.
class PhaseTable {
 public:
  // `phases` names the gaps between the marks of a sample (one fewer name
  // than marks).
  explicit PhaseTable(std::vector<std::string> phases)
      : phases_(std::move(phases)), us_(phases_.size()) {}

  // One sample's marks (ns), in order; a sample with a missing (-1) or
  // out-of-order mark is counted as incomplete and left out.
  void Add(const std::vector<int64_t>& marks) {
    bool ok = marks.size() == phases_.size() + 1;
    for (size_t i = 0; ok && i < marks.size(); ++i) {
      ok = marks[i] >= 0 && (i == 0 || marks[i] >= marks[i - 1]);
    }
    if (!ok) {
      ++incomplete_;
      return;
    }
    for (size_t i = 0; i < phases_.size(); ++i) {
      us_[i].push_back((marks[i + 1] - marks[i]) / 1e3);
    }
    total_.push_back((marks.back() - marks.front()) / 1e3);
  }

  std::string Format() const {
    std::string out = absl::StrFormat(
        "phase breakdown (%zu samples, %d incomplete left out):\n"
        "  %-44s %10s %10s\n",
        total_.size(), incomplete_, "phase", "p50 us", "p99 us");
    for (size_t i = 0; i < phases_.size(); ++i) {
      absl::StrAppendFormat(&out, "  %-44s %10.0f %10.0f\n", phases_[i],
                            Percentile(us_[i], 50), Percentile(us_[i], 99));
    }
    absl::StrAppendFormat(&out, "  %-44s %10.0f %10.0f\n", "total",
                          Percentile(total_, 50), Percentile(total_, 99));
    return out;
  }

 private:
  const std::vector<std::string> phases_;
  std::vector<std::vector<double>> us_;
  std::vector<double> total_;
  int incomplete_ = 0;
};

}  // namespace fabric::bench

#endif  // FABRIC_TESTS_BENCH_LATENCY_BREAKDOWN_H_
