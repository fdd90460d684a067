// HubStream: a server stream fed by a WatchHub, on gRPC's callback API
// (Watch, agent config streams, WatchOffers), and FailedStream, a stream
// refused before it started.
#ifndef FABRIC_SERVER_SERVICE_HUB_STREAM_H_
#define FABRIC_SERVER_SERVICE_HUB_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/stream_metadata.h"
#include "server/service/watch_hub.h"

namespace fabric::service {

// A stream refused before it started: it ends at once with `status`.
template <typename Response>
grpc::ServerWriteReactor<Response>* FailedStream(const absl::Status& status) {
  class Failed final : public grpc::ServerWriteReactor<Response> {
   public:
    explicit Failed(const absl::Status& status) {
      this->Finish(ToGrpcStatus(status));
    }
    void OnDone() override { delete this; }
  };
  return new Failed(status);
}

// A server stream fed by the WatchHub, on gRPC's callback API: it writes
// when the hub tells it something may be new (WatchHub::Listener) or when
// its previous write is done, and holds no thread while it waits.
//
// At most one write is in flight. What to write next is the subclass's
// decision (NextLocked), taken only once the previous write is done, so
// the subclass queues or coalesces what comes meanwhile. The stream ends
// with the error NextLocked returns, or with CANCELLED once the client has
// gone (OnCancel, or a write that failed).
//
// Thread-safety: gRPC's reactions (OnWriteDone, OnCancel) and the hub's
// calls (OnHubChanged) come on different threads, possibly at once; they
// meet under mu_. gRPC is never called with mu_ held.
//
// Lifetime: a handler creates the stream, calls Start() and returns it to
// gRPC. The stream deletes itself in OnDone, after it has left the hub (so
// the hub never calls it again). `hub` must outlive it: GrpcServer::Shutdown
// waits for every OnDone, and the server is shut down before the manager
// that owns the hub is destroyed.
template <typename Response>
class HubStream : public grpc::ServerWriteReactor<Response>,
                  private WatchHub::Listener {
 public:
  // Sends the initial metadata that says the stream is open
  // (kStreamOpenKey, common/stream_metadata.h), starts listening to the hub
  // and writes what is due. Call once, from the handler, before returning
  // the stream; `ctx` is the handler's.
  void Start(grpc::CallbackServerContext* ctx) ABSL_LOCKS_EXCLUDED(mu_) {
    ctx->AddInitialMetadata(kStreamOpenKey, "open");
    this->StartSendInitialMetadata();
    hub_->AddListener(this, periodic_, key_);
    Pump();
  }

 protected:
  // `periodic`: NextLocked is also called every
  // WatchHub::kRecheckInterval, for state the hub does not announce.
  // `key`: the stream listens as the hub's listener keyed by it (a node's
  // config stream: only generations that name the node wake it); empty to
  // be told of every change.
  HubStream(WatchHub* hub, bool periodic, std::string key = "")
      : hub_(hub), periodic_(periodic), key_(std::move(key)) {}
  ~HubStream() override = default;

  // The stream's next step, decided with mu_ held and no write in flight:
  // true to write *out, false to wait for the hub, an error to end the
  // stream with it (not called again after an error).
  virtual absl::StatusOr<bool> NextLocked(Response* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Called once, in OnDone, after the stream has left the hub: whatever
  // ended it, the stream is over.
  virtual void Ended() {}

  WatchHub* hub() const { return hub_; }

  // Guards the stream's state, the subclass's too. Taken before the hub's
  // and the manager's locks, never after them.
  absl::Mutex mu_;

 private:
  void OnHubChanged() final { Pump(); }

  void OnWriteDone(bool ok) final {
    {
      absl::MutexLock l(&mu_);
      writing_ = false;
      // Not kept while the stream idles: an open stream costs what gRPC
      // needs, the stream's state and the events it has yet to write.
      writing_message_ = Response();
      if (!ok) cancelled_ = true;  // the stream is broken: the client is gone
    }
    Pump();
  }

  void OnCancel() final {
    {
      absl::MutexLock l(&mu_);
      cancelled_ = true;
    }
    Pump();
  }

  void OnDone() final {
    hub_->RemoveListener(this);
    Ended();
    delete this;
  }

  // Starts the next write, or Finish, when one is due and no write is in
  // flight. Its last act is the call into gRPC: once Finish is called, OnDone
  // may delete the stream at any moment, so neither Pump nor its callers
  // touch it afterwards.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_) {
    bool finishing = false;
    absl::Status end;
    {
      absl::MutexLock l(&mu_);
      if (writing_ || finishing_) return;
      absl::StatusOr<bool> next =
          cancelled_ ? absl::CancelledError() : NextLocked(&writing_message_);
      if (!next.ok()) {
        finishing = finishing_ = true;
        end = next.status();
      } else if (*next) {
        writing_ = true;
      } else {
        return;  // nothing to write yet
      }
    }
    if (finishing) {
      this->Finish(ToGrpcStatus(end));
    } else {
      this->StartWrite(&writing_message_);
    }
  }

  WatchHub* const hub_;  // not owned
  const bool periodic_;
  const std::string key_;
  // The message in flight: NextLocked fills it under mu_ while no write is
  // in flight; gRPC reads it, without mu_, until OnWriteDone empties it.
  Response writing_message_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;  // Finish is called or due
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_HUB_STREAM_H_
