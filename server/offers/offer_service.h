// OfferService: the manager's OfferBook, fed from the manager (issue 15).
//
// It reads the fabric through FabricManager's public calls (each takes the
// manager's lock for that call only) into a FabricView, and does so again
// whenever the manager's WatchHub announces a change (new events or a new
// configuration generation); the Watch events it reads tell the book which
// devices were freed (DELETED attachments and allocations), for epochs.
// Grace periods are ended by a periodic hub call (WatchHub::kRecheckInterval)
// that only re-reads the fabric when something happened.
//
// The reading is done on a thread of its own, never on the hub's notifier
// thread: a read costs what the fabric holds, and the notifier also wakes
// every Watch and agent config stream, which must not wait for it. Reads
// are at least kReadSpacing times their own duration apart, so that under a
// storm of changes (each announced) the service takes a bounded share of a
// core: the changes in between are read together, and offers lag by about
// that much.
//
// Each recompute that changes anything moves offers_hub()'s generation, so
// WatchOffers streams (HubStreams on that hub) wake and send their node's
// new set.
//
// Thread-safe. `manager` is not owned and must outlive this; Shutdown()
// (idempotent, also run by the destructor) must run before the manager's
// hub is destroyed, and the streams on offers_hub() must be over before
// this is destroyed.
#ifndef FABRIC_SERVER_OFFERS_OFFER_SERVICE_H_
#define FABRIC_SERVER_OFFERS_OFFER_SERVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "fabric/v1/offers.pb.h"
#include "server/offers/offer_book.h"
#include "server/service/manager.h"
#include "server/service/watch_hub.h"

namespace fabric::offers {

class OfferService : private service::WatchHub::Listener {
 public:
  // A read that took d is followed by none for (kReadSpacing - 1) * d.
  static constexpr int kReadSpacing = 3;

  OfferService(service::FabricManager* manager, OfferBookOptions options);
  ~OfferService() override;

  OfferService(const OfferService&) = delete;
  OfferService& operator=(const OfferService&) = delete;

  // A WatchOffers stream of `node` opens / ends (OfferBook::Watch's
  // errors). Every successful Open needs one Close.
  absl::Status Open(absl::string_view node, uint64_t chunk_bytes)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Close(absl::string_view node) ABSL_LOCKS_EXCLUDED(mu_);

  // The node's offers now (generation unset).
  v1::OfferSet OffersFor(absl::string_view node) ABSL_LOCKS_EXCLUDED(mu_);

  // OfferBook::CheckVfClaim / CheckMemoryClaim against the current book.
  absl::Status CheckVfClaim(absl::string_view borrower, absl::string_view vf,
                            bool consumer) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CheckMemoryClaim(absl::string_view borrower,
                                absl::string_view lender, uint64_t size,
                                bool consumer) ABSL_LOCKS_EXCLUDED(mu_);

  // Moves whenever some node's offers may have changed; closed by
  // Shutdown.
  service::WatchHub& offers_hub() { return offers_hub_; }

  // Stops listening to the manager and closes offers_hub().
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Wakes the worker; returns at once.
  void OnHubChanged() override ABSL_LOCKS_EXCLUDED(wake_mu_);
  // The worker: waits to be woken, then Update().
  void Run() ABSL_LOCKS_EXCLUDED(mu_, wake_mu_);
  // Reads what changed since the last call (events, generation) and, if
  // anything did, the view, and recomputes; else ends grace periods due.
  // Returns when to call again without being woken: InfinitePast when
  // done, the end of the spacing when it is too soon to read.
  absl::Time Update() ABSL_LOCKS_EXCLUDED(mu_);
  // Reads the fabric from the manager (through its public calls, which take
  // the manager's lock per call), with the generation it read first; the
  // first error of those calls, never a partial view. Touches no member
  // that mu_ guards: called with or without it.
  absl::StatusOr<FabricView> ReadView() const;
  // Tells the streams that offers may have changed.
  void Announce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  service::FabricManager* const manager_;  // not owned
  service::WatchHub offers_hub_;
  // Keeps the manager publishing events while a node watches (or is in its
  // stream grace); reset when none is, and the next Open reads afresh.
  std::optional<service::WatchHub::Subscription> subscription_;

  absl::Mutex mu_;
  OfferBook book_ ABSL_GUARDED_BY(mu_);
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // The newest manager event read, and the generation last read.
  int64_t seen_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t announced_ ABSL_GUARDED_BY(mu_) = 0;
  // The last ReadView failed: the book holds an older view.
  bool read_failed_ ABSL_GUARDED_BY(mu_) = false;
  // No ReadView before this (kReadSpacing).
  absl::Time next_read_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  // The worker's wake-ups. Never held while mu_ is, nor mu_ while it is.
  absl::Mutex wake_mu_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread worker_;  // started by the first Open
};

}  // namespace fabric::offers

#endif  // FABRIC_SERVER_OFFERS_OFFER_SERVICE_H_
