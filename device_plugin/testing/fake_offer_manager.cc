#include "device_plugin/testing/fake_offer_manager.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/leader_channel.h"
#include "device_plugin/device_plugin_test_util.h"

namespace fabric::device_plugin::testing {

FakeOfferManager::FakeOfferManager(Options options)
    : options_(std::move(options)) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
}

FakeOfferManager::~FakeOfferManager() {
  {
    absl::MutexLock l(&mu_);
    closing_ = true;
  }
  server_->Shutdown();
}

std::string FakeOfferManager::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::vector<fabric::v1::WatchOffersRequest> FakeOfferManager::requests()
    const {
  absl::MutexLock l(&mu_);
  return requests_;
}

grpc::Status FakeOfferManager::WatchOffers(
    grpc::ServerContext* ctx, const fabric::v1::WatchOffersRequest* req,
    grpc::ServerWriter<fabric::v1::OfferSet>* writer) {
  int stream;
  {
    absl::MutexLock l(&mu_);
    requests_.push_back(*req);
    stream = static_cast<int>(requests_.size());
  }
  if (!options_.leader.empty()) {
    ctx->AddTrailingMetadata(kLeaderMetadataKey, options_.leader);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        StandbyMessage(options_.leader));
  }
  fabric::v1::OfferSet set;
  set.set_node(req->node());
  set.set_generation(stream);
  for (const auto& o : options_.offers) *set.add_offers() = o;
  if (options_.offers.empty()) {
    *set.add_offers() = VfOffer(absl::StrCat("vf-", stream));
  }
  writer->Write(set);
  if (stream <= options_.failing_streams) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream lost");
  }
  absl::MutexLock l(&mu_);
  auto done = [this, ctx]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closing_ || ctx->IsCancelled();
  };
  // IsCancelled is not guarded by mu_: look again now and then.
  while (!done()) {
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(20));
  }
  return grpc::Status::OK;
}

}  // namespace fabric::device_plugin::testing
