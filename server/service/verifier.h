// Proof by bytes: has the borrower's agent write a random pattern through an
// allocation's granted address and the target's agent read it back from the
// target range.
#ifndef FABRIC_SERVER_SERVICE_VERIFIER_H_
#define FABRIC_SERVER_SERVICE_VERIFIER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fabric/v1/fabric.grpc.pb.h"
#include "server/service/manager.h"

namespace fabric::service {

// Thread-safe. `manager` is not owned.
class Verifier {
 public:
  explicit Verifier(FabricManager* manager) : manager_(manager) {}

  // Writes probes at the start, middle and end of the allocation's range.
  // A fault or a mismatch is a result (ok=false with a summary naming the
  // hop), not an error. Errors: the allocation is unknown or not READY
  // (NOT_FOUND / FAILED_PRECONDITION), an agent cannot be reached
  // (UNAVAILABLE).
  absl::StatusOr<v1::VerifyResult> Verify(
      const v1::VerifyAllocationRequest& req) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  v1::NodeAgentService::Stub* StubFor(const std::string& address)
      ABSL_LOCKS_EXCLUDED(mu_);

  FabricManager* const manager_;  // not owned
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<v1::NodeAgentService::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_VERIFIER_H_
