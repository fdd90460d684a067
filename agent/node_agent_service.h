// NodeAgentService: the host's data path, for the manager's proofs by bytes
// (HostWrite, HostRead through the bridge) and VF lending's diagnostics and
// hypervisor input (VfAccess, AccessShadow, ShadowInterrupt, SetVmState).
// Errors are the units' absl::Status, converted at this edge.
//
// Thread-safe: the hardware is reached through the Reconciler, which
// serializes it with reconciliation.
#ifndef FABRIC_AGENT_NODE_AGENT_SERVICE_H_
#define FABRIC_AGENT_NODE_AGENT_SERVICE_H_

#include <grpcpp/server_context.h>

#include "agent/reconciler.h"
#include "agent/vf_lending.h"
#include "fabric/agentproto/v1/node_agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.pb.h"
#include "fabric/v1/diagnostics.pb.h"

namespace fabric::agent {

class NodeAgentService final
    : public agentproto::v1::NodeAgentService::Service {
 public:
  // `reconciler` and `vf` are not owned and must outlive the service.
  NodeAgentService(Reconciler* reconciler, VfLending* vf);

  // Writes or reads host memory through the bridge. HostRead: at most
  // 16 MiB (INVALID_ARGUMENT over it).
  grpc::Status HostWrite(grpc::ServerContext*,
                         const agentproto::v1::HostWriteRequest* req,
                         v1::AccessResult* out) override;
  grpc::Status HostRead(grpc::ServerContext*,
                        const agentproto::v1::HostReadRequest* req,
                        agentproto::v1::HostReadResponse* out) override;

  // Delegated to VfLending.
  grpc::Status VfAccess(grpc::ServerContext*,
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
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_NODE_AGENT_SERVICE_H_
