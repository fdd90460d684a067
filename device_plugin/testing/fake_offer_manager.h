// FakeOfferManager: a manager's FabricService.WatchOffers on 127.0.0.1
// (plaintext), for the device plugin's tests. Every other RPC is
// UNIMPLEMENTED.
//   - With `leader` set it is a standby: every stream ends at once with the
//     standby's answer naming that leader (common/leader_channel.h).
//   - Otherwise each stream sends one OfferSet (generation = the stream's
//     number, from 1): `offers`, or when empty one VF offer
//     "vf-<stream number>". The first `failing_streams` streams then end
//     UNAVAILABLE; the others stay open until the client cancels or the
//     fake is destroyed.
// Thread-safe.
#ifndef FABRIC_DEVICE_PLUGIN_TESTING_FAKE_OFFER_MANAGER_H_
#define FABRIC_DEVICE_PLUGIN_TESTING_FAKE_OFFER_MANAGER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace fabric::device_plugin::testing {

class FakeOfferManager final : public fabric::v1::FabricService::Service {
 public:
  struct Options {
    std::string leader;
    int failing_streams = 0;
    std::vector<fabric::v1::Offer> offers;
  };

  explicit FakeOfferManager(Options options);
  ~FakeOfferManager() override;

  std::string address() const;
  // Every WatchOffers request so far, in order.
  std::vector<fabric::v1::WatchOffersRequest> requests() const
      ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status WatchOffers(
      grpc::ServerContext* ctx, const fabric::v1::WatchOffersRequest* req,
      grpc::ServerWriter<fabric::v1::OfferSet>* writer) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const Options options_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable absl::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<fabric::v1::WatchOffersRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::device_plugin::testing

#endif  // FABRIC_DEVICE_PLUGIN_TESTING_FAKE_OFFER_MANAGER_H_
