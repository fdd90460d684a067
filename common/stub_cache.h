// One gRPC stub per peer address, made on first use and kept for the life
// of the cache (a channel reconnects by itself). Shared by the callers that
// dial agents by address: the agent's VF borrower (its lenders) and the
// manager's relay to agents.
//
//   StubCache<agentproto::v1::NodeAgentService> stubs;
//   agentproto::v1::NodeAgentService::Stub* s = stubs.Get("10.0.0.7:7071");
//
// Thread-safe. Get() returns a pointer owned by the cache that stays valid
// until the cache is destroyed.
#ifndef FABRIC_COMMON_STUB_CACHE_H_
#define FABRIC_COMMON_STUB_CACHE_H_

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fabric {

template <typename Service>
class StubCache {
 public:
  using Stub = typename Service::Stub;

  // The stub for `address` (HOST:PORT); never null.
  Stub* Get(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    std::unique_ptr<Stub>& stub = stubs_[address];
    if (stub == nullptr) {
      // Credentials are a seam: mTLS replaces these with the node's cert.
      stub = Service::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    }
    return stub.get();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Stub>> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric

#endif  // FABRIC_COMMON_STUB_CACHE_H_
