// The manager's audit trail: a server interceptor that writes one line
// (security::AuditLog) for every mutation the server serves, with the
// caller's identity and role, the method, the request's request_id and the
// outcome.
//
// Which methods are mutations is read from the protos: a method whose
// descriptor carries `option idempotency_level = NO_SIDE_EFFECTS` is a
// read and is not audited; every other method of the fabric's own services
// (proto package fabric.*) is, except the agents' telemetry
// (AgentService.ReportStatus and StreamConfig: a report every heartbeat and
// a long-lived stream per agent, which would drown the trail; registration
// is audited), of which only the refusals (PERMISSION_DENIED: a node
// certificate speaking for another node) are. Services that are not the fabric's (grpc.health.v1, server
// reflection) are not audited.
//
// Calls the authorization check denies never reach the interceptor; the
// AuthProcessor audits those (grpc_auth.h).
//
// Thread-safe. The interceptor adds nothing to calls it never audits (reads,
// other services): the factory returns no interceptor for them.
#ifndef FABRIC_SERVER_SERVICE_AUDIT_INTERCEPTOR_H_
#define FABRIC_SERVER_SERVICE_AUDIT_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/security/audit_log.h"

namespace fabric::service {

// Whether calls of `method` ("/fabric.v1.FabricService/CreateAllocation")
// are audited, by the rule above. A method the generated descriptor pool
// does not know is not the fabric's: false.
bool IsAuditedMethod(absl::string_view method);

class AuditInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `log` is not owned and must outlive every call of the server.
  explicit AuditInterceptorFactory(security::AuditLog* log);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  security::AuditLog* const log_;  // not owned
  // IsAuditedMethod of every method of the fabric's services, computed once
  // (the descriptor pool takes a lock per lookup); immutable.
  absl::flat_hash_map<std::string, bool> audited_;
};

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_AUDIT_INTERCEPTOR_H_
