// OfferFeed: follows the manager's FabricService.WatchOffers stream for
// this node and hands every OfferSet to a sink (usually DeviceTable::Apply)
// (issue 15). The open stream is the node's lease on its offers, so it is
// kept open for as long as the feed runs:
//   - a stream that fails or ends is opened again, after a backoff that
//     doubles from retry_initial to retry_max and starts over once a set
//     arrives;
//   - with several managers (HA) it follows the leader as the client does
//     (common/leader_channel.h): a standby's answer moves it to the leader
//     it names, an unreachable manager to the next address.
// The sink keeps what it was last given while the stream is down: the held
// devices stay held, and the manager keeps the offers for a grace period.
//
// The sink is the seam for tests: a test feeds the plugin offer sets
// directly, without a manager.
//
// Thread-safe. The sink is called on the feed's thread, one set at a time.
#ifndef FABRIC_DEVICE_PLUGIN_OFFER_FEED_H_
#define FABRIC_DEVICE_PLUGIN_OFFER_FEED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/security/tls.h"
#include "fabric/v1/offers.pb.h"
#include "grpcpp/grpcpp.h"

namespace fabric::device_plugin {

struct OfferFeedOptions {
  // The managers, HOST:PORT each (ParseManagerList); at least one.
  std::vector<std::string> managers;
  security::TlsConfig tls;
  // This node ("n1").
  std::string node;
  // WatchOffersRequest.memory_chunk_bytes (0: the manager's 1 GiB).
  uint64_t memory_chunk_bytes = 0;
  absl::Duration retry_initial = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(5);
};

class OfferFeed {
 public:
  using Sink = std::function<void(const fabric::v1::OfferSet&)>;

  OfferFeed(OfferFeedOptions options, Sink sink);
  ~OfferFeed();  // Stop()s

  // Starts the thread that follows the stream. Called once.
  void Start();
  // Ends the stream and the thread; no sink call happens after it returns.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  struct Stats {
    // Streams opened, and sets received on all of them.
    int streams = 0;
    int sets = 0;
    // The manager the last stream was opened on.
    std::string manager;
  };
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();

  const OfferFeedOptions options_;
  const Sink sink_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::device_plugin

#endif  // FABRIC_DEVICE_PLUGIN_OFFER_FEED_H_
