// Small helpers shared by the benchmark programs.
#ifndef FABRIC_TESTS_BENCH_BENCH_UTIL_H_
#define FABRIC_TESTS_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

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

// Failures seen by any client thread: counted, the first kMaxShown kept to
// print. Thread-safe.
class ErrorLog {
 public:
  static constexpr size_t kMaxShown = 5;

  // A failed RPC: `what`, then the status's code and message (grpc::Status
  // or anything with error_code() and error_message()).
  template <typename Status>
  void Add(absl::string_view what, const Status& s) {
    AddMessage(absl::StrCat(what, ": code ", s.error_code(), ": ",
                            s.error_message()));
  }
  // One failure described by `message`.
  void AddMessage(std::string message) {
    absl::MutexLock l(&mu_);
    ++count_;
    if (shown_.size() < kMaxShown) shown_.push_back(std::move(message));
  }
  // `n` failures described elsewhere.
  void AddUnshown(uint64_t n) {
    absl::MutexLock l(&mu_);
    count_ += n;
  }
  uint64_t count() const {
    absl::MutexLock l(&mu_);
    return count_;
  }
  std::vector<std::string> shown() const {
    absl::MutexLock l(&mu_);
    return shown_;
  }
  void Clear() {
    absl::MutexLock l(&mu_);
    count_ = 0;
    shown_.clear();
  }

 private:
  mutable absl::Mutex mu_;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> shown_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::bench

#endif  // FABRIC_TESTS_BENCH_BENCH_UTIL_H_
