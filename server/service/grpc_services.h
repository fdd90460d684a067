// The RPC edge: gRPC service implementations over FabricManager. This is the
// only place absl::Status becomes grpc::Status on the server.
#ifndef FABRIC_SERVER_SERVICE_GRPC_SERVICES_H_
#define FABRIC_SERVER_SERVICE_GRPC_SERVICES_H_

#include "fabric/agentproto/v1/agent_service.grpc.pb.h"
#include "fabric/hypervisor/v1/hypervisor.grpc.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "common/security/audit_log.h"
#include "server/service/admission.h"
#include "server/service/agent_relay.h"
#include "server/service/manager.h"
#include "server/service/managers_source.h"

namespace fabric::offers {
class OfferService;
}  // namespace fabric::offers

namespace fabric::service {

// Every mutation (fabrics, links, allocations, attachments) and Ping use
// gRPC's callback API: their handlers return at once and the call is
// finished when the result is durable, by whichever handler is leading the
// group commit; at most one server thread waits on the disk at a time. Watch
// does too: an open stream is a reactor that writes when the WatchHub tells it
// of something new, and holds no thread in between. The rest are synchronous
// handlers.
using FabricServiceBase = v1::FabricService::WithCallbackMethod_CreateFabric<
    v1::FabricService::WithCallbackMethod_DeleteFabric<
        v1::FabricService::WithCallbackMethod_SetLinkState<
            v1::FabricService::WithCallbackMethod_CreateAllocation<
                v1::FabricService::WithCallbackMethod_DeleteAllocation<
                    v1::FabricService::WithCallbackMethod_CreateAttachment<
                        v1::FabricService::WithCallbackMethod_DeleteAttachment<
                            v1::FabricService::WithCallbackMethod_Ping<
                                v1::FabricService::WithCallbackMethod_Watch<
                                    v1::FabricService::
                                        WithCallbackMethod_WatchOffers<
                                            v1::FabricService::Service>>>>>>>>>>;

// Thread-safe; `manager` is not owned and must outlive the service.
class FabricServiceImpl final : public FabricServiceBase {
 public:
  // `relay` configures the calls to agents (their credentials).
  explicit FabricServiceImpl(FabricManager* manager,
                             AgentRelayOptions relay = {})
      : manager_(manager), relay_(manager, std::move(relay)) {}

  grpc::ServerUnaryReactor* CreateFabric(grpc::CallbackServerContext*,
                                         const v1::CreateFabricRequest*,
                                         v1::Fabric*) override;
  grpc::Status GetFabric(grpc::ServerContext*, const v1::GetFabricRequest*,
                         v1::Fabric*) override;
  grpc::Status ListFabrics(grpc::ServerContext*, const v1::ListFabricsRequest*,
                           v1::ListFabricsResponse*) override;
  grpc::ServerUnaryReactor* DeleteFabric(grpc::CallbackServerContext*,
                                         const v1::DeleteFabricRequest*,
                                         v1::Fabric*) override;
  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest*,
                       v1::Node*) override;
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse*) override;
  grpc::Status GetBridge(grpc::ServerContext*, const v1::GetBridgeRequest*,
                         v1::Bridge*) override;
  grpc::Status ListBridges(grpc::ServerContext*, const v1::ListBridgesRequest*,
                           v1::ListBridgesResponse*) override;
  grpc::Status GetLink(grpc::ServerContext*, const v1::GetLinkRequest*,
                       v1::Link*) override;
  grpc::Status ListLinks(grpc::ServerContext*, const v1::ListLinksRequest*,
                         v1::ListLinksResponse*) override;
  grpc::ServerUnaryReactor* SetLinkState(grpc::CallbackServerContext*,
                                         const v1::SetLinkStateRequest*,
                                         v1::Link*) override;
  grpc::Status GetAddressMap(grpc::ServerContext*,
                             const v1::GetAddressMapRequest*,
                             v1::AddressMap*) override;
  grpc::Status ListAddressMaps(grpc::ServerContext*,
                               const v1::ListAddressMapsRequest*,
                               v1::ListAddressMapsResponse*) override;
  grpc::ServerUnaryReactor* CreateAllocation(grpc::CallbackServerContext*,
                                             const v1::CreateAllocationRequest*,
                                             v1::Allocation*) override;
  grpc::Status GetAllocation(grpc::ServerContext*,
                             const v1::GetAllocationRequest*,
                             v1::Allocation*) override;
  grpc::Status ListAllocations(grpc::ServerContext*,
                               const v1::ListAllocationsRequest*,
                               v1::ListAllocationsResponse*) override;
  grpc::ServerUnaryReactor* DeleteAllocation(grpc::CallbackServerContext*,
                                             const v1::DeleteAllocationRequest*,
                                             v1::Allocation*) override;
  // Ends with ABORTED when the client falls too far behind (re-list, then
  // watch again), and with UNAVAILABLE at server shutdown.
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(
      grpc::CallbackServerContext*, const v1::WatchRequest*) override;
  grpc::Status ListProfiles(grpc::ServerContext*,
                            const v1::ListProfilesRequest*,
                            v1::ListProfilesResponse*) override;
  grpc::Status VerifyAllocation(grpc::ServerContext*,
                                const v1::VerifyAllocationRequest*,
                                v1::VerifyResult*) override;
  grpc::Status ListVirtualFunctions(grpc::ServerContext*,
                                    const v1::ListVirtualFunctionsRequest*,
                                    v1::ListVirtualFunctionsResponse*) override;
  grpc::Status GetVirtualFunction(grpc::ServerContext*,
                                  const v1::GetVirtualFunctionRequest*,
                                  v1::VirtualFunction*) override;
  grpc::ServerUnaryReactor* CreateAttachment(
      grpc::CallbackServerContext*, const v1::CreateAttachmentRequest*,
      v1::Attachment*) override;
  grpc::Status GetAttachment(grpc::ServerContext*,
                             const v1::GetAttachmentRequest*,
                             v1::Attachment*) override;
  grpc::Status ListAttachments(grpc::ServerContext*,
                               const v1::ListAttachmentsRequest*,
                               v1::ListAttachmentsResponse*) override;
  grpc::ServerUnaryReactor* DeleteAttachment(
      grpc::CallbackServerContext*, const v1::DeleteAttachmentRequest*,
      v1::Attachment*) override;
  grpc::Status AccessShadow(grpc::ServerContext*,
                            const v1::AccessShadowRequest*,
                            v1::AccessShadowResponse*) override;
  grpc::Status VerifyAttachment(grpc::ServerContext*,
                                const v1::VerifyAttachmentRequest*,
                                v1::VerifyResult*) override;
  grpc::Status RaiseVfInterrupt(grpc::ServerContext*,
                                const v1::RaiseVfInterruptRequest*,
                                v1::RaiseVfInterruptResponse*) override;
  grpc::Status ListManagers(grpc::ServerContext*,
                            const v1::ListManagersRequest*,
                            v1::ListManagersResponse*) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext*,
                                 const v1::PingRequest*,
                                 v1::PingResponse*) override;
  // The audit log's records (audit_reader.h); FAILED_PRECONDITION without
  // set_audit.
  grpc::Status ReadAuditLog(grpc::ServerContext*,
                            const v1::ReadAuditLogRequest*,
                            v1::ReadAuditLogResponse*) override;
  // The node's offer sets (watch_offers.cc): the node must be the caller's
  // (SELF_NODE); UNIMPLEMENTED without set_offers.
  grpc::ServerWriteReactor<v1::OfferSet>* WatchOffers(
      grpc::CallbackServerContext*, const v1::WatchOffersRequest*) override;

  // Bounds the mutations in flight (admission.h); null admits everything.
  // Not owned; set before the server starts.
  void set_admission(AdmissionControl* admission) { admission_ = admission; }
  // What ListManagers lists (managers_source.h); null: UNIMPLEMENTED. Not
  // owned; set before the server starts.
  void set_managers(ManagersSource* managers) { managers_ = managers; }
  // Who is offered what (server/offers/); CreateAllocation and
  // CreateAttachment are refused (FAILED_PRECONDITION) for devices offered
  // to another node. Null: no offers. Not owned; set before the server
  // starts.
  void set_offers(offers::OfferService* offers) { offers_ = offers; }
  // The log ReadAuditLog reads (the one the server writes). Not owned;
  // set before the server starts.
  void set_audit(const security::AuditLog* audit) { audit_ = audit; }

 private:
  FabricManager* const manager_;  // not owned
  AgentRelay relay_;
  AdmissionControl* admission_ = nullptr;  // not owned
  ManagersSource* managers_ = nullptr;     // not owned
  offers::OfferService* offers_ = nullptr;  // not owned
  const security::AuditLog* audit_ = nullptr;  // not owned
};

// Every agent call uses the callback API: an agent's open stream holds no
// server thread, and neither do its registrations and reports. They are
// answered in memory under the manager's lock (no store write), so a fleet
// re-registering at once after a manager restart queues on that lock inside
// gRPC's own few threads. Served synchronously, each waiting call held a
// thread of its own: about 2,500 threads and 520-555 MB of peak RSS when
// 2,501 agents came back together (fabric-scale-bench, 100k allocations).
using AgentServiceBase =
    agentproto::v1::AgentService::WithCallbackMethod_RegisterNode<
        agentproto::v1::AgentService::WithCallbackMethod_StreamConfig<
            agentproto::v1::AgentService::WithCallbackMethod_ReportStatus<
                agentproto::v1::AgentService::Service>>>;

// Thread-safe; `manager` is not owned and must outlive the service.
class AgentServiceImpl final : public AgentServiceBase {
 public:
  explicit AgentServiceImpl(FabricManager* manager) : manager_(manager) {}

  grpc::ServerUnaryReactor* RegisterNode(
      grpc::CallbackServerContext*, const agentproto::v1::RegisterNodeRequest*,
      agentproto::v1::RegisterNodeResponse*) override;
  // Sends the node's desired configuration, then each newer generation
  // (only the newest when several came while a write was in flight). The
  // stream is told to the manager (ConfigStreamOpened) before it is served
  // and refused with that error; once opened, its end is told exactly once
  // (ConfigStreamClosed), whatever ended it. Ends with UNAVAILABLE at server
  // shutdown.
  grpc::ServerWriteReactor<agentproto::v1::DesiredConfig>* StreamConfig(
      grpc::CallbackServerContext*,
      const agentproto::v1::StreamConfigRequest*) override;
  grpc::ServerUnaryReactor* ReportStatus(
      grpc::CallbackServerContext*, const agentproto::v1::ReportStatusRequest*,
      agentproto::v1::ReportStatusResponse*) override;

 private:
  // RegisterNode's answer: the caller must be bound to the node; a
  // control_address of ":PORT" is completed with the connection's host.
  absl::StatusOr<agentproto::v1::RegisterNodeResponse> Register(
      const grpc::ServerContextBase& ctx,
      const agentproto::v1::RegisterNodeRequest& r);

  FabricManager* const manager_;  // not owned
};

// A hypervisor's input (fabric.hypervisor.v1): each call is relayed to the
// borrower's agent. Thread-safe; `manager` is not owned and must outlive the
// service.
class HypervisorServiceImpl final
    : public hypervisor::v1::HypervisorService::Service {
 public:
  explicit HypervisorServiceImpl(FabricManager* manager,
                                 AgentRelayOptions relay = {})
      : relay_(manager, std::move(relay)) {}

  grpc::Status SetVmState(grpc::ServerContext*,
                          const hypervisor::v1::SetVmStateRequest*,
                          hypervisor::v1::SetVmStateResponse*) override;

 private:
  AgentRelay relay_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_GRPC_SERVICES_H_
