// Fan-out of change events to Watch streams and of the desired-config
// generation to agent streams.
#ifndef FABRIC_SERVER_SERVICE_WATCH_HUB_H_
#define FABRIC_SERVER_SERVICE_WATCH_HUB_H_

#include <atomic>
#include <cstdint>
#include <deque>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric.pb.h"

namespace fabric::service {

// Keeps the last `capacity` events. Thread-safe.
class WatchHub {
 public:
  explicit WatchHub(size_t capacity = 65536) : capacity_(capacity) {}

  // Counts a Watch stream for as long as it lives. Publishers may skip
  // building events while nobody watches (has_watchers() is false).
  class Subscription {
   public:
    explicit Subscription(WatchHub* hub) : hub_(hub) { ++hub_->watchers_; }
    ~Subscription() { --hub_->watchers_; }
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    WatchHub* const hub_;
  };
  bool has_watchers() const { return watchers_.load() > 0; }

  // Stamps the event with the next sequence number and stores it.
  void Publish(fabric::v1::WatchEvent event) ABSL_LOCKS_EXCLUDED(mu_);

  // The sequence number of the newest event (0 before the first).
  int64_t last_sequence() const ABSL_LOCKS_EXCLUDED(mu_);

  enum class ReadResult { kOk, kTimeout, kFellBehind, kClosed };
  // Appends to `out` the events after `after` (up to 256), waiting up to
  // `timeout` for one to arrive. kFellBehind when events after `after` were
  // already dropped from the buffer.
  ReadResult Read(int64_t after, absl::Duration timeout,
                  std::vector<fabric::v1::WatchEvent>* out)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Publishes a new desired-config generation and wakes its waiters.
  void SetGeneration(int64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` for the generation to differ from `seen`, or for
  // Close(); returns the current generation.
  int64_t AwaitGeneration(int64_t seen, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes every waiter for good; used at shutdown.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  bool closed() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  std::atomic<int> watchers_{0};
  mutable absl::Mutex mu_;
  std::deque<fabric::v1::WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  int64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_WATCH_HUB_H_
