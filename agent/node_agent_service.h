// NodeAgentService: the host's data path, for the manager's proofs by bytes
// (HostWrite, HostRead through the bridge) and VF lending's diagnostics and
// hypervisor input (VfAccess, AccessShadow, ShadowInterrupt, SetVmState).
// Errors are the units' absl::Status, converted at this edge.
//
// Who may call which method is decided before a handler runs, by the
// server's AuthProcessor (common/security/grpc_auth.h): only the manager,
// except VfAccess, which a node may call for itself. This edge applies what
// the caller was admitted with: HostRead and HostWrite reach only memory
// the GrantGuard says is granted now (for every caller, TLS or not), and
// VfAccess acts for the borrower the caller's certificate names
// (ResolveBorrower), never for one a node names in its request.
//
// Thread-safe: the hardware is reached through the Reconciler, which
// serializes it with reconciliation.
#ifndef FABRIC_AGENT_NODE_AGENT_SERVICE_H_
#define FABRIC_AGENT_NODE_AGENT_SERVICE_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/grant_guard.h"
#include "agent/reconciler.h"
#include "agent/vf_lending.h"
#include "common/security/grpc_auth.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/diagnostics.pb.h"

namespace fabric::agent {

// The borrower a VfAccess call acts for, as `caller` (the admitted caller,
// security::CallerOf) may act; `requested` is the request's borrower
// ("n0" or "nodes/n0").
//   - A node acts only for itself: the node its certificate names. An empty
//     `requested` is filled with it; naming another node is
//     PERMISSION_DENIED (naming both).
//   - The manager acts for the borrower it names (its VerifyAttachment and
//     RaiseVfInterrupt make the borrower's VF DMA and raise vectors).
//   - Any other identity, or a TLS caller no AuthProcessor admitted, is
//     PERMISSION_DENIED.
//   - An unauthenticated caller (an --insecure agent, on loopback only) gets
//     `requested` unchanged, as before identities existed.
absl::StatusOr<std::string> ResolveBorrower(const security::Caller& caller,
                                            absl::string_view requested);

class NodeAgentService final
    : public agentproto::v1::NodeAgentService::Service {
 public:
  // `reconciler`, `vf` and `grants` are not owned and must outlive the
  // service.
  NodeAgentService(Reconciler* reconciler, VfLending* vf,
                   const GrantGuard* grants);

  // Writes or reads host memory through the bridge. HostRead: at most
  // 16 MiB (INVALID_ARGUMENT over it). PERMISSION_DENIED (GrantGuard::Check)
  // unless the whole access lies inside one range granted now.
  grpc::Status HostWrite(grpc::ServerContext*,
                         const agentproto::v1::HostWriteRequest* req,
                         v1::AccessResult* out) override;
  grpc::Status HostRead(grpc::ServerContext*,
                        const agentproto::v1::HostReadRequest* req,
                        agentproto::v1::HostReadResponse* out) override;

  // Delegated to VfLending; VfAccess with the borrower ResolveBorrower
  // gives (PERMISSION_DENIED when it refuses).
  grpc::Status VfAccess(grpc::ServerContext* ctx,
                        const agentproto::v1::VfAccessRequest* req,
                        agentproto::v1::VfAccessResponse* out) override;
  grpc::Status AccessShadow(grpc::ServerContext*,
                            const v1::AccessShadowRequest* req,
                            v1::AccessShadowResponse* out) override;
  grpc::Status ShadowInterrupt(
      grpc::ServerContext*, const agentproto::v1::ShadowInterruptRequest* req,
      agentproto::v1::ShadowInterruptResponse* out) override;
  grpc::Status SetVmState(grpc::ServerContext*,
                          const hypervisor::v1::SetVmStateRequest* req,
                          hypervisor::v1::SetVmStateResponse* out) override;

 private:
  Reconciler* const reconciler_;  // not owned
  VfLending* const vf_;           // not owned
  const GrantGuard* const grants_;  // not owned
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_NODE_AGENT_SERVICE_H_
