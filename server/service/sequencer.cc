#include "server/service/sequencer.h"

#include <memory>
#include <utility>

namespace fabric::service {

void Sequencer::Run(Operation op) {
  {
    absl::MutexLock l(&mu_);
    queue_.push_back(std::move(op));
    if (busy_) return;  // started when those before it are over
    busy_ = true;
  }
  Drain();
}

void Sequencer::Drain() {
  for (;;) {
    Operation op;
    // Read and written under mu_ only.
    auto started = std::make_shared<Started>();
    {
      absl::MutexLock l(&mu_);
      if (queue_.empty()) {
        busy_ = false;
        return;
      }
      op = std::move(queue_.front());
      queue_.pop_front();
    }
    op([this, started] {
      {
        absl::MutexLock l(&mu_);
        started->finished = true;
        // Still inside op: the loop below goes on once it returns.
        if (!started->returned) return;
      }
      Drain();
    });
    absl::MutexLock l(&mu_);
    started->returned = true;
    // Still running: its `finished` goes on with the queue.
    if (!started->finished) return;
  }
}

size_t Sequencer::queued() const {
  absl::MutexLock l(&mu_);
  return queue_.size();
}

bool Sequencer::busy() const {
  absl::MutexLock l(&mu_);
  return busy_;
}

}  // namespace fabric::service
