// Fan-out of change events to Watch streams and of the desired-config
// generation to agent streams.
//
// Publishers (the manager, under its own lock) store events and the
// generation here and never wait for a reader. Readers are streams served
// on gRPC's callback API: a Listener is told when something may have
// changed and reads what is new; an open stream keeps no thread while it
// waits. One notifier thread per hub (started by the first AddListener)
// tells the listeners, outside the publishers' locks.
#ifndef FABRIC_SERVER_SERVICE_WATCH_HUB_H_
#define FABRIC_SERVER_SERVICE_WATCH_HUB_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/types/span.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric_service.pb.h"

namespace fabric::service {

// Keeps the last `capacity` events. Thread-safe.
class WatchHub {
 public:
  // How often a listener added with `periodic` is called when nothing
  // changes.
  static constexpr absl::Duration kRecheckInterval = absl::Milliseconds(200);

  explicit WatchHub(size_t capacity = 65536) : capacity_(capacity) {}
  // REQUIRES: every listener was removed. Stops the notifier thread.
  ~WatchHub();

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

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

  // Told that the hub may have changed.
  class Listener {
   public:
    virtual ~Listener() = default;
    // Something may have changed since the last call: new events, a new
    // generation, or Close(). Calls are hints, and may be spurious: the
    // listener reads what it needs (Read, generation(), closed()). A
    // listener added with `periodic` is also called every
    // kRecheckInterval, changes or not.
    //
    // Runs on the hub's notifier thread, one listener at a time, with no
    // hub lock held: it may call any hub method but AddListener. It must
    // not block for long (every other listener waits) nor wait for
    // anything a publisher holds.
    virtual void OnHubChanged() = 0;
  };
  // Starts calling `listener` (not owned) until RemoveListener. Events
  // published before this call are not announced to it: a listener reads
  // what it missed itself once added.
  //
  // A listener with a `key` (a node's config stream, keyed by the node's
  // id) is told only of generations that name its key or name none
  // (SetGeneration), of Close, and of periodic ticks; not of events. So a
  // commit that changes a few nodes wakes their streams alone, however
  // many agents are connected. Several listeners may share a key.
  void AddListener(Listener* listener, bool periodic = false,
                   std::string key = "") ABSL_LOCKS_EXCLUDED(mu_);
  // Stops calling `listener`. Once this returns, `listener` is not being
  // called and never will be again, so its owner may destroy it; this may
  // wait for the notifier to finish telling the other listeners.
  void RemoveListener(Listener* listener)
      ABSL_LOCKS_EXCLUDED(mu_, delivery_mu_);

  // Stamps the event with the next sequence number, stores it and wakes
  // the listeners. Never waits for them.
  void Publish(fabric::v1::WatchEvent event) ABSL_LOCKS_EXCLUDED(mu_);

  // The sequence number of the newest event (0 before the first).
  int64_t last_sequence() const ABSL_LOCKS_EXCLUDED(mu_);

  enum class ReadResult { kOk, kNothingNew, kFellBehind, kClosed };
  // Appends to `out` the events after `after` (up to 256) without waiting.
  // kClosed after Close(); kFellBehind when events after `after` were
  // already dropped from the buffer; kNothingNew when there is none yet.
  ReadResult Read(int64_t after, std::vector<fabric::v1::WatchEvent>* out)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Publishes a new desired-config generation and wakes the listeners.
  void SetGeneration(int64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  // The same, for a generation in which only the nodes `keys` may want a
  // new configuration: wakes the listeners without a key and those keyed
  // by one of `keys`.
  void SetGeneration(int64_t generation, absl::Span<const std::string> keys)
      ABSL_LOCKS_EXCLUDED(mu_);
  int64_t generation() const ABSL_LOCKS_EXCLUDED(mu_);

  // Ends the streams for good (their listeners see closed()); used at
  // shutdown. Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  bool closed() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Tells the listeners of every change until the hub is destroyed.
  void NotifierLoop() ABSL_LOCKS_EXCLUDED(mu_, delivery_mu_);

  const size_t capacity_;
  std::atomic<int> watchers_{0};

  // Held by the notifier while it calls listeners, so that RemoveListener
  // can wait for a call in progress. Taken before mu_ (and before whatever
  // a listener takes).
  absl::Mutex delivery_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::deque<fabric::v1::WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  int64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  struct ListenerInfo {
    bool periodic = false;
    std::string key;  // empty: told of every change
  };
  absl::flat_hash_map<Listener*, ListenerInfo> listeners_ ABSL_GUARDED_BY(mu_);
  // The listeners without a key.
  absl::flat_hash_set<Listener*> unkeyed_ ABSL_GUARDED_BY(mu_);
  // The listeners with a key, by key.
  absl::flat_hash_map<std::string, std::vector<Listener*>> keyed_
      ABSL_GUARDED_BY(mu_);
  int periodic_listeners_ ABSL_GUARDED_BY(mu_) = 0;
  // Something changed that every listener is to be told of, and has not
  // been yet.
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  // Something changed for the listeners without a key (an event, a
  // generation that names keys).
  bool unkeyed_changed_ ABSL_GUARDED_BY(mu_) = false;
  // Keyed listeners named by a generation since they were last told.
  absl::flat_hash_set<Listener*> due_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread notifier_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_WATCH_HUB_H_
