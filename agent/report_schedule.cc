#include "agent/report_schedule.h"

namespace fabric::agent {

void ReportSchedule::Start(absl::Duration interval) {
  absl::MutexLock l(&mu_);
  running_ = true;
  interval_ = interval;
  next_ = clock_->Now() + interval;
}

void ReportSchedule::Stop() {
  absl::MutexLock l(&mu_);
  running_ = false;
}

void ReportSchedule::Request() {
  absl::MutexLock l(&mu_);
  requested_ = true;
}

bool ReportSchedule::Wait() {
  absl::MutexLock l(&mu_);
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requested_ || !running_;
  };
  for (;;) {
    if (!running_) return false;
    const absl::Time now = clock_->Now();
    if (requested_ || now >= next_) {
      requested_ = false;
      next_ = now + interval_;
      return true;
    }
    // Wakes for a request or Stop, else when the heartbeat is due (a clock
    // that is not the real one is looked at again then).
    mu_.AwaitWithTimeout(absl::Condition(&woken), next_ - now);
  }
}

}  // namespace fabric::agent
