// FabricService.WatchOffers: the thin edge over offers::OfferService.
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/strip.h"
#include "common/security/grpc_auth.h"
#include "server/offers/offer_service.h"
#include "server/service/access_scope.h"
#include "server/service/grpc_services.h"
#include "server/service/hub_stream.h"

namespace fabric::service {
namespace {

// One node's offer sets: the whole set first, then a new one whenever it
// changes (the OfferService moves its hub's generation on every recompute;
// an unchanged set is not sent again). The open stream is the node's lease
// on its offers: its end is told to the OfferService exactly once.
class OffersStream final : public HubStream<v1::OfferSet> {
 public:
  // REQUIRES: offers->Open(node, ...) succeeded.
  OffersStream(offers::OfferService* offers, std::string node)
      : HubStream(&offers->offers_hub(), /*periodic=*/false),
        offers_(offers),
        node_(std::move(node)) {}

 private:
  absl::StatusOr<bool> NextLocked(v1::OfferSet* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) override {
    if (hub()->closed()) {
      return absl::UnavailableError("the manager is shutting down");
    }
    const int64_t generation = hub()->generation();
    if (fetched_ && generation == fetched_generation_) return false;
    fetched_ = true;
    fetched_generation_ = generation;
    v1::OfferSet set = offers_->OffersFor(node_);
    std::string bytes;
    set.SerializeToString(&bytes);
    if (sent_ > 0 && bytes == last_) return false;
    last_ = std::move(bytes);
    set.set_generation(++sent_);
    *out = std::move(set);
    return true;
  }

  void Ended() override { offers_->Close(node_); }

  offers::OfferService* const offers_;  // not owned
  const std::string node_;
  bool fetched_ ABSL_GUARDED_BY(mu_) = false;
  int64_t fetched_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_ ABSL_GUARDED_BY(mu_);  // the set last sent, serialized
  int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;  // sets sent: OfferSet.generation
};

}  // namespace

grpc::ServerWriteReactor<v1::OfferSet>* FabricServiceImpl::WatchOffers(
    grpc::CallbackServerContext* ctx, const v1::WatchOffersRequest* r) {
  if (offers_ == nullptr) {
    return FailedStream<v1::OfferSet>(
        absl::UnimplementedError("WatchOffers: this server keeps no offers"));
  }
  if (absl::Status s =
          CheckNodeBinding(security::CallerOf(*ctx), "node", r->node());
      !s.ok()) {
    return FailedStream<v1::OfferSet>(s);
  }
  const std::string node(absl::StripPrefix(r->node(), "nodes/"));
  if (node.empty()) {
    return FailedStream<v1::OfferSet>(
        absl::InvalidArgumentError("node: required"));
  }
  if (absl::Status s = offers_->Open(node, r->memory_chunk_bytes());
      !s.ok()) {
    return FailedStream<v1::OfferSet>(s);
  }
  auto* stream = new OffersStream(offers_, node);
  stream->Start(ctx);
  return stream;
}

}  // namespace fabric::service
