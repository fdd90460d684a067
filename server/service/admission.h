// Admission control at the RPC edge: a bound on mutations in flight.
//
// A mutation holds memory from the moment its handler runs until its group
// commit is durable: the request, the planned reservation, the queued plan
// and the pending RPC (a fabric or link mutation also while it waits for
// its turn, manager.h). Without a bound, a flood of clients
// (or clients that give up and retry) grows that queue without limit, and
// every queued request waits behind all the others. AdmissionControl caps
// the mutations in flight; one over the cap is refused at once with
// RESOURCE_EXHAUSTED naming the limit, so that the caller backs off and
// retries (with the same request id) instead of queueing past its deadline.
// A call whose deadline has already passed when its handler runs is refused
// with DEADLINE_EXCEEDED before it costs a plan or a write.
//
//   AdmissionControl admission(1024);
//   // in a callback handler:
//   if (!AdmitCall(&admission, "CreateAllocation", ctx, reactor))
//     return reactor;
//   manager->CreateAllocationAsync(
//       *req, ReleasingSlot(&admission, FinishWith(reactor, out)));
//
// Thread-safe. Reads (Get/List) are not counted: they are bounded by the
// server's thread quota (ServerOptions::max_threads, server.h). Ping and the
// agents' calls are not counted either: they are answered at once, in
// memory.
#ifndef FABRIC_SERVER_SERVICE_ADMISSION_H_
#define FABRIC_SERVER_SERVICE_ADMISSION_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::service {

class AdmissionControl {
 public:
  // `max_inflight` <= 0 admits everything (counts only).
  explicit AdmissionControl(int max_inflight = 0)
      : max_inflight_(max_inflight) {}

  AdmissionControl(const AdmissionControl&) = delete;
  AdmissionControl& operator=(const AdmissionControl&) = delete;

  // Takes a slot for one `method` call: OK, or RESOURCE_EXHAUSTED naming
  // the limit and the method. Every OK must be paired with one Release().
  absl::Status Acquire(absl::string_view method);
  void Release();

  int limit() const { return max_inflight_; }
  int inflight() const { return inflight_.load(std::memory_order_relaxed); }
  uint64_t admitted() const { return admitted_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  const int max_inflight_;
  std::atomic<int> inflight_{0};
  std::atomic<uint64_t> admitted_{0};
  std::atomic<uint64_t> rejected_{0};
};

// The edge's gate for one callback mutation. Returns true when the call may
// proceed (it then holds a slot of `admission`, released by the callback
// ReleasingSlot wraps); otherwise finishes `reactor` with
// DEADLINE_EXCEEDED (the caller's deadline passed before the handler ran)
// or RESOURCE_EXHAUSTED (the limit) and returns false. A null `admission`
// admits everything.
bool AdmitCall(AdmissionControl* admission, absl::string_view method,
               grpc::CallbackServerContext* ctx,
               grpc::ServerUnaryReactor* reactor);

// Wraps a manager callback so that the slot AdmitCall took is released
// before `done` runs. A null `admission` returns `done` as is.
template <typename T>
std::function<void(absl::StatusOr<T>)> ReleasingSlot(
    AdmissionControl* admission, std::function<void(absl::StatusOr<T>)> done) {
  if (admission == nullptr) return done;
  return [admission, done = std::move(done)](absl::StatusOr<T> result) {
    admission->Release();
    done(std::move(result));
  };
}

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_ADMISSION_H_
