#include "common/security/grpc_auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

absl::string_view View(const grpc::string_ref& ref) {
  return absl::string_view(ref.data(), ref.size());
}

// What the fabric reads from a connection's AuthContext, found in one walk
// over its properties (FindPropertyValues walks them all for every name,
// and a TLS context holds a dozen, the PEM certificate among them). Views
// into `context`, valid while it lives.
struct ConnectionProperties {
  int peer_uris = 0;             // URI SANs of the peer's certificate
  absl::string_view peer_uri;    // the first
  absl::string_view subject;     // RFC 2253 subject of the certificate
  absl::string_view transport;   // "tls", "insecure", ...
  // What AuthProcessor added on an earlier admitted call ("" when none);
  // the first value of each.
  absl::string_view identity;
  absl::string_view role;
  absl::string_view scope;
};

ConnectionProperties ReadProperties(const grpc::AuthContext& context) {
  ConnectionProperties p;
  auto first = [](absl::string_view& field, const grpc::string_ref& value) {
    if (field.empty()) field = View(value);
  };
  for (const grpc::AuthProperty& property : context) {
    const absl::string_view name = View(property.first);
    if (name == kPeerUriProperty) {
      if (p.peer_uris++ == 0) p.peer_uri = View(property.second);
    } else if (name == kSubjectProperty) {
      first(p.subject, property.second);
    } else if (name == kTransportProperty) {
      first(p.transport, property.second);
    } else if (name == kIdentityProperty) {
      first(p.identity, property.second);
    } else if (name == kRoleProperty) {
      first(p.role, property.second);
    } else if (name == kScopeProperty) {
      first(p.scope, property.second);
    }
  }
  return p;
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

// The method of the call ("/package.Service/Method"), a view into `md`.
absl::string_view MethodOf(
    const grpc::AuthMetadataProcessor::InputMetadata& md) {
  auto path = md.find(":path");
  return path == md.end() ? absl::string_view() : View(path->second);
}

absl::StatusOr<Identity> IdentityOf(const ConnectionProperties& p) {
  if (p.peer_uris != 1) {
    return absl::UnauthenticatedError(
        absl::StrCat("the peer's certificate carries ", p.peer_uris,
                     " URI SANs; a fabric identity is exactly one, "
                     "spiffe://fabric.local/KIND/NAME"));
  }
  absl::StatusOr<Identity> id = ParseSpiffeId(p.peer_uri);
  if (!id.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the peer's certificate carries no fabric identity: ",
                     id.status().message()));
  }
  id->cert_role = OrganizationalUnit(p.subject);
  return id;
}

}  // namespace

absl::StatusOr<Identity> PeerIdentity(const grpc::AuthContext& context) {
  return IdentityOf(ReadProperties(context));
}

AuthProcessor::AuthProcessor(Policy policy, AuditLog* audit)
    : policy_(std::move(policy)), audit_(audit) {}

absl::StatusOr<Decision> AdmitCall(const Policy& policy, AuditLog* audit,
                                   const absl::StatusOr<Identity>& who,
                                   absl::string_view method) {
  AuditEvent event;
  event.method = std::string(method);
  absl::Status denied;
  if (!who.ok()) {
    denied = absl::UnauthenticatedError(
        absl::StrCat(who.status().message(), "; may not call ", method));
  } else {
    Decision decision = policy.Check(*who, method);
    if (decision.allowed) return decision;
    event.identity = who->ToString();
    event.role = decision.role;
    denied = absl::PermissionDeniedError(decision.reason);
  }
  if (audit != nullptr) {
    event.time = absl::Now();
    event.code = absl::IsUnauthenticated(denied) ? "UNAUTHENTICATED"
                                                 : "PERMISSION_DENIED";
    event.message = std::string(denied.message());
    audit->Record(event);
  }
  return denied;
}

grpc::Status AuthProcessor::Process(const InputMetadata& auth_metadata,
                                    grpc::AuthContext* context,
                                    OutputMetadata* consumed_auth_metadata,
                                    OutputMetadata* response_metadata) {
  const absl::string_view method = MethodOf(auth_metadata);
  const ConnectionProperties connection = ReadProperties(*context);
  // Every call is checked against the policy. The caller's role, though,
  // is the same for every call on a connection (one peer certificate, one
  // policy): once an earlier call resolved it from the certificate and
  // recorded it (below), only the method is matched. Only this processor
  // adds these properties, and only to the context of the connection
  // whose certificate it read.
  if (!connection.role.empty() && policy_.Allows(connection.role, method)) {
    return grpc::Status::OK;
  }
  absl::StatusOr<Identity> who = IdentityOf(connection);
  absl::StatusOr<Decision> decision = AdmitCall(policy_, audit_, who, method);
  if (!decision.ok()) {
    return grpc::Status(
        absl::IsUnauthenticated(decision.status())
            ? grpc::StatusCode::UNAUTHENTICATED
            : grpc::StatusCode::PERMISSION_DENIED,
        std::string(decision.status().message()));
  }
  // `context` is the connection's (gRPC 1.51), shared by every call on it:
  // a property added here stays for the connection's life, so only what is
  // the same for every call on it is added, and once: the identity, its
  // role and the role's scope (Policy::RoleScope). Concurrent first calls
  // may add the same values twice; CallerOf and the check above read the
  // first.
  if (connection.identity.empty()) {
    context->AddProperty(kIdentityProperty, who->ToString());
    context->AddProperty(kRoleProperty, decision->role);
    context->AddProperty(
        kScopeProperty,
        internal::Scope_Name(policy_.RoleScope(decision->role)));
  }
  return grpc::Status::OK;
}

namespace {

// This process's token (hex), or "" when no random bytes could be had.
const std::string& VouchToken() {
  static const std::string* const token = [] {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
      // Without randomness nothing can be vouched for: a token nobody can
      // present.
      return new std::string();
    }
    return new std::string(absl::BytesToHexString(absl::string_view(
        reinterpret_cast<const char*>(bytes), sizeof(bytes))));
  }();
  return *token;
}

}  // namespace

std::string VouchedCallerValue(const Identity& who, absl::string_view role,
                               Scope scope) {
  return absl::StrCat(VouchToken(), " ", who.ToString(), " ", role, " ",
                      internal::Scope_Name(scope));
}

namespace {

// The caller a gateway of this process vouched for, from `context`'s
// metadata; nullopt when there is none or its token is not this process's.
std::optional<Caller> VouchedCaller(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kVouchedCallerKey);
  if (it == metadata.end()) return std::nullopt;
  const std::vector<absl::string_view> parts =
      absl::StrSplit(View(it->second), ' ');
  const std::string& token = VouchToken();
  if (parts.size() != 4 || token.empty() || parts[0].size() != token.size() ||
      CRYPTO_memcmp(parts[0].data(), token.data(), token.size()) != 0) {
    return std::nullopt;
  }
  absl::StatusOr<Identity> who = ParseIdentity(parts[1]);
  Scope scope = internal::ANY;
  if (!who.ok() || !internal::Scope_Parse(std::string(parts[3]), &scope)) {
    return std::nullopt;
  }
  Caller caller;
  caller.authenticated = true;
  caller.identity = *std::move(who);
  caller.role = std::string(parts[2]);
  caller.scope = scope;
  return caller;
}

}  // namespace

Caller CallerOf(const grpc::ServerContextBase& context) {
  Caller caller;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return caller;
  const ConnectionProperties connection = ReadProperties(*auth);
  if (connection.identity.empty()) {
    caller.unadmitted = connection.transport == "tls";
    // Only a call that did not come over TLS (an in-process one) may carry
    // a vouched caller.
    if (!caller.unadmitted) {
      if (std::optional<Caller> vouched = VouchedCaller(context)) {
        return *std::move(vouched);
      }
    }
    return caller;
  }
  absl::StatusOr<Identity> who = ParseIdentity(connection.identity);
  Scope scope = internal::ANY;
  if (!who.ok() || !internal::Scope_Parse(std::string(connection.scope),
                                          &scope)) {
    // Only AuthProcessor writes these; anything else fails closed.
    caller.unadmitted = true;
    return caller;
  }
  caller.authenticated = true;
  caller.identity = *std::move(who);
  caller.role = std::string(connection.role);
  caller.scope = scope;
  return caller;
}

}  // namespace fabric::security
