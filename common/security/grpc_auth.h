// The authorization choke point of every gRPC server of the fabric, and how
// handlers learn who called them.
//
// AuthProcessor runs in gRPC's server auth filter for every call, after the
// TLS handshake verified the peer's certificate and before any handler
// runs. It reads the peer's identity from the certificate (identity.h),
// asks the Policy (policy.h) whether that identity may call the method, and
// either rejects the call (UNAUTHENTICATED when the certificate carries no
// fabric identity, PERMISSION_DENIED when the policy says no) or admits it,
// recording the identity, its role and the role's scope
// (Policy::RoleScope) in the AuthContext, where CallerOf() finds them. That
// AuthContext is the connection's, not the call's (gRPC 1.51 hands the
// processor the connection's context), so they are recorded once per
// connection. No handler checks roles for itself; handlers only
// apply the admitted scope (OWN, SELF_NODE) to the resources they touch.
//
// Denied calls are written to the audit log (when one is given) here, since
// they never reach a handler.
#ifndef FABRIC_COMMON_SECURITY_GRPC_AUTH_H_
#define FABRIC_COMMON_SECURITY_GRPC_AUTH_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "common/security/identity.h"
#include "common/security/policy.h"

namespace fabric::security {

class AuditLog;

// Property names AuthProcessor adds to an admitted call's AuthContext.
inline constexpr char kIdentityProperty[] = "fabric.identity";  // "node/n1"
inline constexpr char kRoleProperty[] = "fabric.role";
inline constexpr char kScopeProperty[] = "fabric.scope";  // "ANY", ...

class AuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  // `policy` is copied; `audit` may be null and must outlive the processor.
  AuthProcessor(Policy policy, AuditLog* audit);

  // Never blocks: runs inline on gRPC's thread.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata,
                       grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const Policy policy_;
  AuditLog* const audit_;
};

// The policy check of one call: the single place where it is made, for
// gRPC (AuthProcessor) and for HTTP (the REST gateway, server/rest). `who`
// is the caller's identity, or why it has none. Returns the Decision when
// the policy allows `method` ("/package.Service/Method"); otherwise
// UNAUTHENTICATED (no identity) or PERMISSION_DENIED (the policy's reason),
// after recording the refusal in `audit` (may be null).
absl::StatusOr<Decision> AdmitCall(const Policy& policy, AuditLog* audit,
                                   const absl::StatusOr<Identity>& who,
                                   absl::string_view method);

// Calls made in process on behalf of a caller that another listener of this
// process admitted with AdmitCall (the REST gateway, which calls the gRPC
// services over an in-process channel). The gateway sends
//   kVouchedCallerKey: VouchedCallerValue(who, role, scope)
// and CallerOf trusts it only on a call that did not come over TLS and only
// with this process's token: 32 random bytes made at first use, which never
// leave the process. A network peer cannot present it.
inline constexpr char kVouchedCallerKey[] = "fabric-vouched-caller";
std::string VouchedCallerValue(const Identity& who, absl::string_view role,
                               Scope scope);

// The caller of a call in progress, as the choke point admitted it.
struct Caller {
  // false on an --insecure (plaintext, loopback-only) server: there are no
  // identities; scope is ANY and owners are what the request says.
  bool authenticated = false;
  Identity identity;
  std::string role;
  Scope scope = internal::ANY;
  // true when the call came over TLS but was never admitted by an
  // AuthProcessor (a server built without one): such a caller may do
  // nothing, so a forgotten processor fails closed.
  bool unadmitted = false;

  // "user/alice", or "" when not authenticated.
  std::string OwnerName() const {
    return authenticated ? identity.ToString() : std::string();
  }
};

// Reads the caller from `context`'s AuthContext (or, for an in-process
// call, from its vouched caller, above). Takes the base of
// grpc::ServerContext and grpc::CallbackServerContext (callback handlers
// and server interceptors have only the latter or the base).
Caller CallerOf(const grpc::ServerContextBase& context);

// The peer identity in an AuthContext's certificate properties (the URI
// SAN), with its OU role; UNAUTHENTICATED when there is none or it does not
// parse. Used by AuthProcessor, and by clients that inspect the server they
// reached.
absl::StatusOr<Identity> PeerIdentity(const grpc::AuthContext& context);

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_GRPC_AUTH_H_
