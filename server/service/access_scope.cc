#include "server/service/access_scope.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fabric::service {
namespace {

// A TLS call that no AuthProcessor admitted reaches nothing (fail closed).
absl::Status Unadmitted(absl::string_view field) {
  return absl::PermissionDeniedError(absl::StrCat(
      field, ": the call was not admitted by the authorization check"));
}

// OWN, and SELF_NODE (a node's consumer, e.g. the device plugin, reaches
// only the allocations and attachments it owns too).
bool HeldToOwn(const security::Caller& caller) {
  return caller.authenticated &&
         (caller.scope == internal::OWN || caller.scope == internal::SELF_NODE);
}

}  // namespace

absl::Status CheckNodeBinding(const security::Caller& caller,
                              absl::string_view field, absl::string_view node) {
  if (caller.unadmitted) return Unadmitted(field);
  if (!caller.authenticated || caller.scope != internal::SELF_NODE) {
    return absl::OkStatus();
  }
  const std::string cert = caller.identity.ToString();
  if (caller.identity.kind != security::PrincipalKind::kNode) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": the certificate is for ", cert,
                     ", not a node; only a node may call this for its node"));
  }
  absl::string_view named = absl::StripPrefix(node, "nodes/");
  if (named == caller.identity.name) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": the certificate is for ", cert,
                   "; the request names ", named.empty() ? "no node" : named));
}

absl::StatusOr<std::string> OwnerForCreate(const security::Caller& caller,
                                           absl::string_view field,
                                           absl::string_view requested) {
  if (caller.unadmitted) return Unadmitted(field);
  if (!caller.authenticated) return std::string(requested);
  std::string own = caller.OwnerName();
  if (!requested.empty() && requested != own) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": \"", requested, "\" is not the caller ", own,
        "; the owner is the caller's identity (leave the field empty)"));
  }
  return own;
}

absl::Status CheckOwner(const security::Caller& caller,
                        absl::string_view resource, absl::string_view owner) {
  if (caller.unadmitted) return Unadmitted(resource);
  if (!HeldToOwn(caller) || owner == caller.OwnerName()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat(resource, ": not owned by ", caller.OwnerName(), " (",
                   caller.role, " reaches only its own)"));
}

bool NeedsOwnerCheck(const security::Caller& caller) {
  return caller.unadmitted || HeldToOwn(caller);
}

absl::StatusOr<std::string> OwnerFilter(const security::Caller& caller,
                                        absl::string_view field,
                                        absl::string_view requested) {
  if (caller.unadmitted) return Unadmitted(field);
  if (!HeldToOwn(caller)) return std::string(requested);
  std::string own = caller.OwnerName();
  if (!requested.empty() && requested != own) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": \"", requested, "\" is not the caller ", own,
                     " (", caller.role, " lists only its own)"));
  }
  return own;
}

}  // namespace fabric::service
