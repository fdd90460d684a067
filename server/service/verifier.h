// Proof by bytes: has the borrower's agent write a random pattern through an
// allocation's granted address and the target's agent read it back from the
// target range. Also relays VF-lending operations to the agents that carry
// them out (shadow config accesses, DMA proofs, interrupts, VM states).
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

  // The lent VF DMA-writes a random pattern at its DMA window (start and
  // end of the region) through the lender's agent; the borrower's agent
  // reads it back from its DMA region. Results and errors as Verify.
  absl::StatusOr<v1::VerifyResult> VerifyAttachment(
      const v1::VerifyAttachmentRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // Forwarded to the borrower's agent (the attachment must be READY).
  absl::StatusOr<v1::AccessShadowResponse> AccessShadow(
      const v1::AccessShadowRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // The lender's agent raises the vector; each message that lands on the
  // borrower is handed to the borrower's agent to deliver.
  absl::StatusOr<v1::RaiseVfInterruptResponse> RaiseVfInterrupt(
      const v1::RaiseVfInterruptRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::SetVmStateResponse> SetVmState(
      const v1::SetVmStateRequest& req) ABSL_LOCKS_EXCLUDED(mu_);

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
