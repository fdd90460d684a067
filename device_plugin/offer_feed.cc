#include "device_plugin/offer_feed.h"

#include <algorithm>
#include <iostream>
#include <utility>

#include "common/leader_channel.h"
#include "fabric/v1/fabric_service.grpc.pb.h"

namespace fabric::device_plugin {

OfferFeed::OfferFeed(OfferFeedOptions options, Sink sink)
    : options_(std::move(options)), sink_(std::move(sink)) {}

OfferFeed::~OfferFeed() { Stop(); }

void OfferFeed::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OfferFeed::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

OfferFeed::Stats OfferFeed::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

void OfferFeed::Run() {
  std::shared_ptr<grpc::ChannelCredentials> creds =
      security::ChannelCredentials(options_.tls,
                                   security::PeerRequirement::AnyManager());
  // Reconnect quickly after a failover (as FabricClient does).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  LeaderChannel leader(options_.managers, [creds, args](const std::string& t) {
    return grpc::CreateCustomChannel(t, creds, args);
  });
  fabric::v1::WatchOffersRequest req;
  req.set_node(options_.node);
  req.set_memory_chunk_bytes(options_.memory_chunk_bytes);
  absl::Duration backoff = options_.retry_initial;
  bool failing = false;  // the last stream failed (logged once)
  while (true) {
    const LeaderChannel::Endpoint endpoint = leader.Current();
    auto stub = fabric::v1::FabricService::NewStub(endpoint.channel);
    grpc::ClientContext ctx;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
      stream_ctx_ = &ctx;
      ++stats_.streams;
      stats_.manager = endpoint.target;
    }
    auto reader = stub->WatchOffers(&ctx, req);
    fabric::v1::OfferSet set;
    while (reader->Read(&set)) {
      if (failing) {
        failing = false;
        std::cerr << "fabric-device-plugin: receiving offers from "
                  << endpoint.target << " again" << std::endl;
      }
      backoff = options_.retry_initial;
      {
        absl::MutexLock l(&mu_);
        if (stopping_) break;
        ++stats_.sets;
      }
      sink_(set);
    }
    const grpc::Status s = reader->Finish();
    bool stopping;
    {
      absl::MutexLock l(&mu_);
      stream_ctx_ = nullptr;
      stopping = stopping_;
    }
    if (stopping) return;
    const LeaderChannel::Endpoint next = leader.Observe(endpoint, s, ctx);
    if (!failing) {
      failing = true;
      std::cerr << "fabric-device-plugin: the offer stream from "
                << endpoint.target << " ended (will reopen it on "
                << next.target << "): " << s.error_message() << std::endl;
    }
    // A standby that named the leader: go there at once; anything else
    // (an unreachable manager too) waits for the backoff first.
    const bool to_leader =
        IsStandbyAnswer(s) && LeaderOf(ctx).has_value() &&
        next.target != endpoint.target;
    absl::MutexLock l(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_;
    };
    if (!to_leader) {
      mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
      backoff = std::min(backoff * 2, options_.retry_max);
    }
  }
}

}  // namespace fabric::device_plugin
