// Sequencer: runs asynchronous operations one at a time, in the order they
// were submitted, without a thread waiting for any of them.
//
// An operation is started with a `finished` callback and is over when it
// calls it (on any thread, possibly before it returns). The next operation
// starts only then, on the thread that called `finished` (or on the
// submitting thread when nothing was running). Operations that finish
// before they return are run in a loop, not recursively, so a long queue
// of them does not grow the stack.
//
// FabricManager runs fabric and link mutations through one, so that each is
// planned only once the one before it is durable (or has failed); see
// manager.h.
//
//   Sequencer seq;
//   seq.Run([](Sequencer::Finished finished) {
//     StartSomething(/*on_done=*/[finished] { finished(); });
//   });
//
// Thread-safe. Operations run without the sequencer's lock held, so they
// may call Run. `finished` must be called exactly once per operation; an
// operation that never calls it stalls every later one. The destructor
// does not wait: the owner must make sure nothing is running or queued.
#ifndef FABRIC_SERVER_SERVICE_SEQUENCER_H_
#define FABRIC_SERVER_SERVICE_SEQUENCER_H_

#include <cstddef>
#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fabric::service {

class Sequencer {
 public:
  // Tells the sequencer that the operation it was given to is over.
  using Finished = std::function<void()>;
  using Operation = std::function<void(Finished finished)>;

  Sequencer() = default;
  Sequencer(const Sequencer&) = delete;
  Sequencer& operator=(const Sequencer&) = delete;

  // Starts `op` now when no operation is running or queued; otherwise
  // queues it behind them.
  void Run(Operation op) ABSL_LOCKS_EXCLUDED(mu_);

  // Operations queued and not started yet (the running one excluded).
  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether an operation is running or queued.
  bool busy() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The bookkeeping of one started operation: whichever of "it returned"
  // and "it finished" comes second goes on with the queue.
  struct Started {
    bool returned = false;
    bool finished = false;
  };

  // Starts queued operations one by one until one is still running when it
  // returns, or the queue is empty. REQUIRES: this caller set busy_.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::deque<Operation> queue_ ABSL_GUARDED_BY(mu_);
  // An operation is running, or a caller is draining the queue.
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_SEQUENCER_H_
