// AgentRelay: the manager's calls into node agents (NodeAgentService).
//
// Two kinds of call, both on behalf of a FabricService RPC:
//   - proofs by bytes of a data path: Verify has the borrower's agent write
//     a random pattern through an allocation's granted address and the
//     target's agent read it back from the target range; VerifyAttachment
//     has the lent VF DMA a pattern through the lender's agent and the
//     borrower's agent read it back;
//   - relayed VF-lending operations, carried out by the agents: shadow
//     config accesses (AccessShadow), interrupts (RaiseVfInterrupt) and VM
//     states (SetVmState).
// Which agents to call, and whether the allocation or attachment is in a
// state to be called on, comes from a RelayTargets (the FabricManager in
// production; a fake in tests).
//
// Errors: the RelayTargets' own (NOT_FOUND, FAILED_PRECONDITION) unchanged;
// an agent that cannot be reached or does not answer within the agent
// deadline is UNAVAILABLE naming the node and the agent's address; any
// other status an agent returns is passed on with its code.
#ifndef FABRIC_SERVER_SERVICE_AGENT_RELAY_H_
#define FABRIC_SERVER_SERVICE_AGENT_RELAY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/security/tls.h"
#include "common/stub_cache.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "server/service/manager.h"

namespace fabric::service {

// Where a relayed call goes: the resource it acts on and the agents to ask.
// Implementations must be thread-safe.
class RelayTargets {
 public:
  virtual ~RelayTargets() = default;
  // As FabricManager::PrepareVerify.
  virtual absl::StatusOr<FabricManager::VerifyTarget> PrepareVerify(
      absl::string_view allocation) = 0;
  // As FabricManager::PrepareAttachmentOp.
  virtual absl::StatusOr<FabricManager::AttachmentTarget> PrepareAttachmentOp(
      absl::string_view attachment, bool need_ready) = 0;
  // As FabricManager::AgentAddress.
  virtual absl::StatusOr<std::string> AgentAddress(absl::string_view node) = 0;
};

struct AgentRelayOptions {
  // Deadline of each call to an agent; past it the call is UNAVAILABLE.
  absl::Duration agent_deadline = absl::Seconds(5);
  // The credentials of the channel to the agent of a node (its name, "n1"):
  // with mutual TLS, the manager's certificate and a check that the agent's
  // names that node (AgentCredentials). Null: plaintext.
  StubCache<agentproto::v1::NodeAgentService>::CredentialsFactory
      agent_credentials;
};

// The manager's credentials towards agents: mutual TLS with `tls`'s
// certificate, refusing an agent whose certificate does not name the node
// it is dialled for (its calls end UNAVAILABLE). Null when tls.insecure
// (plaintext).
StubCache<agentproto::v1::NodeAgentService>::CredentialsFactory
AgentCredentials(const security::TlsConfig& tls);

// Thread-safe.
class AgentRelay {
 public:
  // Targets from `manager`, which is not owned and must outlive this.
  explicit AgentRelay(FabricManager* manager, AgentRelayOptions options = {});
  // Targets from `targets`, which is not owned and must outlive this.
  explicit AgentRelay(RelayTargets* targets, AgentRelayOptions options = {});
  ~AgentRelay();

  AgentRelay(const AgentRelay&) = delete;
  AgentRelay& operator=(const AgentRelay&) = delete;

  // Writes probes at the start, middle and end of the allocation's range.
  // A fault or a mismatch is a result (ok=false with a summary naming the
  // hop), not an error. Errors: the allocation is unknown or not READY
  // (NOT_FOUND / FAILED_PRECONDITION), an agent fails the write or the read
  // or cannot be reached (UNAVAILABLE).
  absl::StatusOr<v1::VerifyResult> Verify(
      const v1::VerifyAllocationRequest& req);

  // The lent VF DMA-writes a random pattern at its DMA window (start and
  // end of the region) through the lender's agent; the borrower's agent
  // reads it back from its DMA region. A DMA the lender's agent refuses is
  // a result (ok=false), as is a fault or a mismatch. Errors as Verify, plus
  // INTERNAL for an attachment without a dma window; a failed read back
  // keeps the borrower agent's code.
  absl::StatusOr<v1::VerifyResult> VerifyAttachment(
      const v1::VerifyAttachmentRequest& req);
  // Forwarded to the borrower's agent (the attachment must be READY), with
  // the attachment's canonical name.
  absl::StatusOr<v1::AccessShadowResponse> AccessShadow(
      const v1::AccessShadowRequest& req);
  // The lender's agent raises the vector `count` times (0 means once; more
  // than 100000 or negative is INVALID_ARGUMENT); each message that lands on
  // the borrower is handed to the borrower's agent to deliver.
  absl::StatusOr<v1::RaiseVfInterruptResponse> RaiseVfInterrupt(
      const v1::RaiseVfInterruptRequest& req);
  // Forwarded to the agent of `req.node()`.
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> SetVmState(
      const hypervisor::v1::SetVmStateRequest& req);

 private:
  // The stub for the agent of `node` ("n1" or "nodes/n1") at `address`.
  agentproto::v1::NodeAgentService::Stub* AgentStub(const std::string& address,
                                                    absl::string_view node);

  const std::unique_ptr<RelayTargets> owned_targets_;  // May be null.
  RelayTargets* const targets_;  // owned_targets_ or borrowed; never null.
  const AgentRelayOptions options_;
  StubCache<agentproto::v1::NodeAgentService> stubs_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_AGENT_RELAY_H_
