// DeadlineQueue: a priority queue of deadlines by key, so that timers (lease
// expiry, agent heartbeats) cost O(due · log n) per check instead of a scan
// of every key.
//
// Each key has at most one deadline; setting it again replaces the old one.
// Replaced and cleared deadlines are left in the heap and skipped when they
// surface (each entry carries a sequence number its key must still hold);
// the heap is rebuilt once stale entries outnumber live ones, so memory
// stays O(keys) and every operation is O(log n) amortized.
//
// Not thread-safe: its owner guards it with its own lock.
#ifndef FABRIC_SERVER_SERVICE_DEADLINE_QUEUE_H_
#define FABRIC_SERVER_SERVICE_DEADLINE_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fabric::service {

class DeadlineQueue {
 public:
  DeadlineQueue() = default;
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;

  // Sets `key`'s deadline to `deadline`, replacing any earlier one.
  void Set(absl::string_view key, absl::Time deadline);
  // Removes `key`'s deadline; a no-op when it has none.
  void Clear(absl::string_view key);
  // Removes every deadline at or before `now` and returns their keys,
  // earliest first (ties by key), at most `limit` of them; the rest stay
  // for the next call.
  std::vector<std::string> PopDue(
      absl::Time now, size_t limit = std::numeric_limits<size_t>::max());

  // `key`'s deadline, or nullopt.
  std::optional<absl::Time> Deadline(absl::string_view key) const;
  // The earliest deadline, or nullopt when empty.
  std::optional<absl::Time> Earliest();
  // Keys with a deadline.
  size_t size() const { return live_.size(); }
  bool empty() const { return live_.empty(); }
  // Every key with its deadline, in no particular order (for checks).
  std::vector<std::pair<std::string, absl::Time>> Entries() const;

 private:
  struct Live {
    absl::Time deadline;
    uint64_t seq;
  };
  struct Entry {
    absl::Time deadline;
    uint64_t seq;
    std::string key;
  };
  // Orders the heap so that the earliest deadline is on top.
  static bool Later(const Entry& a, const Entry& b);
  // Drops stale entries from the top of the heap.
  void SkipStale();
  // Rebuilds the heap from live_ once stale entries outnumber live ones.
  void MaybeCompact();

  absl::flat_hash_map<std::string, Live> live_;
  std::vector<Entry> heap_;  // a heap by Later
  uint64_t next_seq_ = 0;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_DEADLINE_QUEUE_H_
