// Injectable time source, so that leases and heartbeats can be tested
// without sleeping. Tests use ManualClock (common/testing/manual_clock.h).
#ifndef FABRIC_COMMON_CLOCK_H_
#define FABRIC_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fabric {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The process-wide real clock; never deleted.
  static Clock* Real();
};

}  // namespace fabric

#endif  // FABRIC_COMMON_CLOCK_H_
