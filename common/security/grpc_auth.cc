#include "common/security/grpc_auth.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/security/audit_log.h"

namespace fabric::security {
namespace {

constexpr char kPeerUriProperty[] = "peer_uri";
constexpr char kSubjectProperty[] = "x509_subject";
constexpr char kTransportProperty[] = "transport_security_type";

std::string ToString(const grpc::string_ref& ref) {
  return std::string(ref.data(), ref.size());
}

// The first value of `name` in `context`, or "".
std::string Property(const grpc::AuthContext& context, const char* name) {
  std::vector<grpc::string_ref> values = context.FindPropertyValues(name);
  return values.empty() ? std::string() : ToString(values[0]);
}

// The OU of an RFC 2253 subject ("CN=alice,OU=scheduler"), or "". Fabric
// role names hold no characters that need escaping; a value that does is
// not a role.
std::string OrganizationalUnit(absl::string_view subject) {
  for (absl::string_view part : absl::StrSplit(subject, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::StartsWith(part, "OU=")) return std::string(part.substr(3));
  }
  return "";
}

std::string MethodOf(const grpc::AuthMetadataProcessor::InputMetadata& md) {
  auto path = md.find(":path");
  return path == md.end() ? std::string() : ToString(path->second);
}

}  // namespace

absl::StatusOr<Identity> PeerIdentity(const grpc::AuthContext& context) {
  std::vector<grpc::string_ref> uris =
      context.FindPropertyValues(kPeerUriProperty);
  if (uris.size() != 1) {
    return absl::UnauthenticatedError(
        absl::StrCat("the peer's certificate carries ", uris.size(),
                     " URI SANs; a fabric identity is exactly one, "
                     "spiffe://fabric.local/KIND/NAME"));
  }
  absl::StatusOr<Identity> id = ParseSpiffeId(ToString(uris[0]));
  if (!id.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the peer's certificate carries no fabric identity: ",
                     id.status().message()));
  }
  id->cert_role = OrganizationalUnit(Property(context, kSubjectProperty));
  return id;
}

AuthProcessor::AuthProcessor(Policy policy, AuditLog* audit)
    : policy_(std::move(policy)), audit_(audit) {}

grpc::Status AuthProcessor::Process(const InputMetadata& auth_metadata,
                                    grpc::AuthContext* context,
                                    OutputMetadata* consumed_auth_metadata,
                                    OutputMetadata* response_metadata) {
  std::string method = MethodOf(auth_metadata);
  AuditEvent event;
  event.method = method;
  absl::StatusOr<Identity> who = PeerIdentity(*context);
  grpc::Status denied;
  if (!who.ok()) {
    denied = grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat(who.status().message(), "; may not call ", method));
  } else {
    Decision decision = policy_.Check(*who, method);
    event.identity = who->ToString();
    event.role = decision.role;
    if (decision.allowed) {
      // `context` is the connection's (gRPC 1.51), shared by every call on
      // it: a property added here stays for the connection's life, so only
      // what is the same for every call on it is added, and once: the
      // identity, its role and the role's scope (Policy::RoleScope).
      // Concurrent first calls may add the same values twice; CallerOf
      // reads the first.
      if (context->FindPropertyValues(kIdentityProperty).empty()) {
        context->AddProperty(kIdentityProperty, who->ToString());
        context->AddProperty(kRoleProperty, decision.role);
        context->AddProperty(
            kScopeProperty,
            internal::Scope_Name(policy_.RoleScope(decision.role)));
      }
      return grpc::Status::OK;
    }
    denied = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, decision.reason);
  }
  if (audit_ != nullptr) {
    event.time = absl::Now();
    event.code = denied.error_code() == grpc::StatusCode::UNAUTHENTICATED
                     ? "UNAUTHENTICATED"
                     : "PERMISSION_DENIED";
    event.message = denied.error_message();
    audit_->Record(event);
  }
  return denied;
}

Caller CallerOf(const grpc::ServerContextBase& context) {
  Caller caller;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return caller;
  std::string identity = Property(*auth, kIdentityProperty);
  if (identity.empty()) {
    caller.unadmitted = Property(*auth, kTransportProperty) == "tls";
    return caller;
  }
  absl::StatusOr<Identity> who = ParseIdentity(identity);
  Scope scope = internal::ANY;
  if (!who.ok() ||
      !internal::Scope_Parse(Property(*auth, kScopeProperty), &scope)) {
    // Only AuthProcessor writes these; anything else fails closed.
    caller.unadmitted = true;
    return caller;
  }
  caller.authenticated = true;
  caller.identity = *std::move(who);
  caller.role = Property(*auth, kRoleProperty);
  caller.scope = scope;
  return caller;
}

}  // namespace fabric::security
