// Small helpers shared by the benchmark programs.
#ifndef FABRIC_TESTS_BENCH_BENCH_UTIL_H_
#define FABRIC_TESTS_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <vector>

namespace fabric::bench {

using Clock = std::chrono::steady_clock;

inline double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// The p-th percentile (0-100) by nearest rank; 0 for no samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace fabric::bench

#endif  // FABRIC_TESTS_BENCH_BENCH_UTIL_H_
