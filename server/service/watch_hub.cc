#include "server/service/watch_hub.h"

namespace fabric::service {

void WatchHub::Publish(fabric::v1::WatchEvent event) {
  absl::MutexLock l(&mu_);
  event.set_sequence(++last_sequence_);
  events_.push_back(std::move(event));
  while (events_.size() > capacity_) events_.pop_front();
}

int64_t WatchHub::last_sequence() const {
  absl::MutexLock l(&mu_);
  return last_sequence_;
}

WatchHub::ReadResult WatchHub::Read(int64_t after, absl::Duration timeout,
                                    std::vector<fabric::v1::WatchEvent>* out) {
  absl::MutexLock l(&mu_);
  auto ready = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || last_sequence_ > after;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (closed_) return ReadResult::kClosed;
  if (last_sequence_ <= after) return ReadResult::kTimeout;
  const int64_t first =
      events_.empty() ? last_sequence_ + 1 : events_.front().sequence();
  if (first > after + 1) return ReadResult::kFellBehind;
  for (size_t i = static_cast<size_t>(after + 1 - first);
       i < events_.size() && out->size() < 256; ++i) {
    out->push_back(events_[i]);
  }
  return ReadResult::kOk;
}

void WatchHub::SetGeneration(int64_t generation) {
  absl::MutexLock l(&mu_);
  generation_ = generation;
}

int64_t WatchHub::AwaitGeneration(int64_t seen, absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || generation_ != seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return generation_;
}

void WatchHub::Close() {
  absl::MutexLock l(&mu_);
  closed_ = true;
}

bool WatchHub::closed() const {
  absl::MutexLock l(&mu_);
  return closed_;
}

}  // namespace fabric::service
