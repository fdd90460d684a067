#include "server/service/watch_hub.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/latency_trace.h"

namespace fabric::service {

WatchHub::~WatchHub() {
  std::thread notifier;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    notifier = std::move(notifier_);
  }
  if (notifier.joinable()) notifier.join();
}

void WatchHub::AddListener(Listener* listener, bool periodic,
                           std::string key) {
  absl::MutexLock l(&mu_);
  if (listeners_.contains(listener)) return;
  if (key.empty()) {
    unkeyed_.insert(listener);
  } else {
    keyed_[key].push_back(listener);
  }
  listeners_.emplace(listener, ListenerInfo{periodic, std::move(key)});
  if (periodic) ++periodic_listeners_;
  if (!notifier_.joinable() && !stopping_) {
    notifier_ = std::thread([this] { NotifierLoop(); });
  }
}

void WatchHub::RemoveListener(Listener* listener) {
  auto erase = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = listeners_.find(listener);
    if (it == listeners_.end()) return;
    if (it->second.periodic) --periodic_listeners_;
    if (it->second.key.empty()) {
      unkeyed_.erase(listener);
    } else {
      auto k = keyed_.find(it->second.key);
      std::vector<Listener*>& same = k->second;
      same.erase(std::find(same.begin(), same.end(), listener));
      if (same.empty()) keyed_.erase(k);
    }
    due_.erase(listener);
    listeners_.erase(it);
  };
  {
    absl::MutexLock l(&mu_);
    if (notifier_.get_id() == std::this_thread::get_id()) {
      // From within a listener's call (its stream ended inline): the
      // notifier holds delivery_mu_ on this very thread, and skips
      // listeners no longer in listeners_.
      erase();
      return;
    }
  }
  absl::MutexLock d(&delivery_mu_);
  absl::MutexLock l(&mu_);
  erase();
}

void WatchHub::NotifierLoop() {
  absl::Time next_recheck = absl::Now() + kRecheckInterval;
  std::vector<Listener*> batch;
  absl::flat_hash_set<Listener*> due;
  for (;;) {
    bool everyone;  // every listener
    bool unkeyed;   // the listeners without a key
    bool recheck;   // the periodic listeners
    due.clear();    // and these keyed ones
    {
      absl::MutexLock l(&mu_);
      const bool ticking = periodic_listeners_ > 0;
      auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return changed_ || unkeyed_changed_ || !due_.empty() || stopping_ ||
               (!ticking && periodic_listeners_ > 0);
      };
      if (ticking) {
        mu_.AwaitWithDeadline(absl::Condition(&woken), next_recheck);
      } else {
        mu_.Await(absl::Condition(&woken));
        next_recheck = absl::Now() + kRecheckInterval;
      }
      if (stopping_) return;
      const absl::Time now = absl::Now();
      recheck = periodic_listeners_ > 0 && now >= next_recheck;
      if (!changed_ && !unkeyed_changed_ && due_.empty() && !recheck) {
        continue;
      }
      if (recheck) next_recheck = now + kRecheckInterval;
      everyone = changed_;
      unkeyed = unkeyed_changed_;
      changed_ = unkeyed_changed_ = false;
      due.swap(due_);
    }
    // Taken before the batch is, so that a listener removed meanwhile is
    // not in it.
    absl::MutexLock d(&delivery_mu_);
    batch.clear();
    {
      absl::MutexLock l(&mu_);
      if (everyone || recheck) {
        for (const auto& [listener, info] : listeners_) {
          if (everyone || info.periodic || (unkeyed && info.key.empty()) ||
              due.contains(listener)) {
            batch.push_back(listener);
          }
        }
      } else {
        // Events and generations that name keys: the listeners without a
        // key and the keyed ones named, not a walk of every listener.
        if (unkeyed) batch.assign(unkeyed_.begin(), unkeyed_.end());
        for (Listener* listener : due) {
          if (listeners_.contains(listener)) batch.push_back(listener);
        }
      }
    }
    for (Listener* listener : batch) {
      {
        absl::MutexLock l(&mu_);
        // Removed by an earlier call of this round (see RemoveListener).
        if (!listeners_.contains(listener)) continue;
      }
      listener->OnHubChanged();
    }
  }
}

void WatchHub::Publish(fabric::v1::WatchEvent event) {
  absl::MutexLock l(&mu_);
  event.set_sequence(++last_sequence_);
  events_.push_back(std::move(event));
  while (events_.size() > capacity_) events_.pop_front();
  unkeyed_changed_ = true;  // keyed listeners read no events
}

int64_t WatchHub::last_sequence() const {
  absl::MutexLock l(&mu_);
  return last_sequence_;
}

WatchHub::ReadResult WatchHub::Read(int64_t after,
                                    std::vector<fabric::v1::WatchEvent>* out) {
  absl::MutexLock l(&mu_);
  if (closed_) return ReadResult::kClosed;
  if (last_sequence_ <= after) return ReadResult::kNothingNew;
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
  changed_ = true;
  LatencyTrace::Record("manager.generation", "-", generation);
}

void WatchHub::SetGeneration(int64_t generation,
                             absl::Span<const std::string> keys) {
  absl::MutexLock l(&mu_);
  generation_ = generation;
  unkeyed_changed_ = true;
  for (const std::string& key : keys) {
    auto it = keyed_.find(key);
    if (it == keyed_.end()) continue;
    due_.insert(it->second.begin(), it->second.end());
  }
  LatencyTrace::Record("manager.generation", "-", generation);
}

int64_t WatchHub::generation() const {
  absl::MutexLock l(&mu_);
  return generation_;
}

void WatchHub::Close() {
  absl::MutexLock l(&mu_);
  closed_ = true;
  changed_ = true;
}

bool WatchHub::closed() const {
  absl::MutexLock l(&mu_);
  return closed_;
}

}  // namespace fabric::service
