// How the programs set up absl::Mutex.
#ifndef FABRIC_COMMON_MUTEX_MODE_H_
#define FABRIC_COMMON_MUTEX_MODE_H_

#include "absl/synchronization/mutex.h"

namespace fabric {

// Turns off absl::Mutex's lock-order (deadlock) detection for this process.
// Debian's Abseil is built without NDEBUG, so by default every Mutex::Lock
// registers the mutex in a process-wide lock graph, under one spinlock that
// all threads share, and a destroyed mutex is removed from it: a cost on
// every lock that grows with the mutexes alive (thousands of streams).
// The programs (fabric-manager, fabric-agent, the benchmarks that host
// them) call this first thing in main; the tests do not, so they keep
// checking the lock order.
inline void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace fabric

#endif  // FABRIC_COMMON_MUTEX_MODE_H_
