// One gRPC stub per peer, made on first use and kept for the life of the
// cache (a channel reconnects by itself). Shared by the callers that dial
// agents by address: the agent's VF borrower (its lenders) and the
// manager's relay to agents.
//
// A peer is an address and the name the peer must prove (with mutual TLS,
// the node its certificate must name). The channel's credentials come from
// a factory given that name; without one, channels are plaintext.
//
//   StubCache<agentproto::v1::NodeAgentService> stubs(
//       [tls](const std::string& node) {
//         return security::ChannelCredentials(
//             tls, security::PeerRequirement::Node(node));
//       });
//   agentproto::v1::NodeAgentService::Stub* s = stubs.Get("10.0.0.7:7071",
//                                                         "n7");
//
// The same address with another expected name is another channel: an
// agent at an address whose certificate names another node fails its
// handshake (UNAVAILABLE), and a later agent at that address is not served
// the first one's channel.
//
// Thread-safe. Get() returns a pointer owned by the cache that stays valid
// until the cache is destroyed.
#ifndef FABRIC_COMMON_STUB_CACHE_H_
#define FABRIC_COMMON_STUB_CACHE_H_

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fabric {

template <typename Service>
class StubCache {
 public:
  using Stub = typename Service::Stub;
  // The credentials of a channel to a peer that must prove `peer_name`.
  // Called under the cache's lock; must not call back into the cache.
  using CredentialsFactory =
      std::function<std::shared_ptr<grpc::ChannelCredentials>(
          const std::string& peer_name)>;

  // Plaintext channels (--insecure, and tests).
  StubCache() : StubCache(nullptr) {}
  // Channels with `credentials`; null means plaintext.
  explicit StubCache(CredentialsFactory credentials)
      : credentials_(credentials != nullptr
                         ? std::move(credentials)
                         : CredentialsFactory([](const std::string&) {
                             return grpc::InsecureChannelCredentials();
                           })) {}

  // The stub for `address` (HOST:PORT) whose peer must prove `peer_name`
  // ("" when the credentials check no name); never null.
  Stub* Get(const std::string& address, const std::string& peer_name = "")
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    std::unique_ptr<Stub>& stub = stubs_[{address, peer_name}];
    if (stub == nullptr) {
      stub = Service::NewStub(
          grpc::CreateChannel(address, credentials_(peer_name)));
    }
    return stub.get();
  }

 private:
  const CredentialsFactory credentials_;
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric

#endif  // FABRIC_COMMON_STUB_CACHE_H_
