#include "common/testing/manual_clock.h"

namespace fabric {

ManualClock::ManualClock(absl::Time start) : now_(start) {}

absl::Time ManualClock::Now() const {
  absl::MutexLock l(&mu_);
  return now_;
}

void ManualClock::Advance(absl::Duration d) {
  absl::MutexLock l(&mu_);
  now_ += d;
}

}  // namespace fabric
