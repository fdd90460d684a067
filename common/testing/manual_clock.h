// ManualClock: a Clock for tests that moves only when told to, so that
// leases, heartbeats and timeouts can be tested without sleeping.
//
//   ManualClock clock;                       // starts at a fixed instant
//   FabricManager manager(..., &clock);
//   clock.Advance(absl::Seconds(31));        // the lease has now expired
//
// Test-only (target fabric_common_testing): no production binary links it.
// Thread-safe: Now() and Advance() may be called from any thread.
#ifndef FABRIC_COMMON_TESTING_MANUAL_CLOCK_H_
#define FABRIC_COMMON_TESTING_MANUAL_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace fabric {

class ManualClock : public Clock {
 public:
  // Starts at `start`; by default a fixed instant (2023-11-14T22:13:20Z), so
  // that tests do not depend on the time they run.
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1700000000));

  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_);

  // Moves the clock by `d` (which may be negative; the clock does not check).
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric

#endif  // FABRIC_COMMON_TESTING_MANUAL_CLOCK_H_
