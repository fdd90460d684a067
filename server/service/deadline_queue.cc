#include "server/service/deadline_queue.h"

#include <algorithm>
#include <tuple>
#include <utility>

namespace fabric::service {

bool DeadlineQueue::Later(const Entry& a, const Entry& b) {
  return std::tie(a.deadline, a.key) > std::tie(b.deadline, b.key);
}

void DeadlineQueue::Set(absl::string_view key, absl::Time deadline) {
  const uint64_t seq = next_seq_++;
  auto [it, added] = live_.try_emplace(key, Live{deadline, seq});
  if (!added) {
    if (it->second.deadline == deadline) return;  // already in the heap
    it->second = Live{deadline, seq};
  }
  heap_.push_back(Entry{deadline, seq, std::string(key)});
  std::push_heap(heap_.begin(), heap_.end(), Later);
  MaybeCompact();
}

void DeadlineQueue::Clear(absl::string_view key) {
  auto it = live_.find(key);
  if (it == live_.end()) return;
  live_.erase(it);
  MaybeCompact();
}

void DeadlineQueue::SkipStale() {
  while (!heap_.empty()) {
    const Entry& top = heap_.front();
    auto it = live_.find(top.key);
    if (it != live_.end() && it->second.seq == top.seq) return;
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    heap_.pop_back();
  }
}

std::vector<std::string> DeadlineQueue::PopDue(absl::Time now, size_t limit) {
  std::vector<std::string> out;
  while (out.size() < limit) {
    SkipStale();
    if (heap_.empty() || heap_.front().deadline > now) break;
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    live_.erase(heap_.back().key);
    out.push_back(std::move(heap_.back().key));
    heap_.pop_back();
  }
  return out;
}

std::optional<absl::Time> DeadlineQueue::Deadline(absl::string_view key) const {
  auto it = live_.find(key);
  if (it == live_.end()) return std::nullopt;
  return it->second.deadline;
}

std::optional<absl::Time> DeadlineQueue::Earliest() {
  SkipStale();
  if (heap_.empty()) return std::nullopt;
  return heap_.front().deadline;
}

std::vector<std::pair<std::string, absl::Time>> DeadlineQueue::Entries()
    const {
  std::vector<std::pair<std::string, absl::Time>> out;
  out.reserve(live_.size());
  for (const auto& [key, l] : live_) out.emplace_back(key, l.deadline);
  return out;
}

void DeadlineQueue::MaybeCompact() {
  if (heap_.size() <= 2 * live_.size() + 64) return;
  std::vector<Entry> fresh;
  fresh.reserve(live_.size());
  for (const auto& [key, l] : live_) fresh.push_back(Entry{l.deadline, l.seq, key});
  std::make_heap(fresh.begin(), fresh.end(), Later);
  heap_ = std::move(fresh);
}

}  // namespace fabric::service
