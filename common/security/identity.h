// Identity: who a peer is, as its X.509 certificate says.
//
// Every certificate of the fabric carries exactly one URI SAN in the trust
// domain fabric.local, of one of three kinds:
//
//   spiffe://fabric.local/node/n1       a node agent (the node is n1)
//   spiffe://fabric.local/manager/m1    a fabric manager
//   spiffe://fabric.local/user/alice    a person or a program (fabricctl,
//                                       a scheduler)
//
// A user certificate may also name its role in the subject's OU
// (OU=scheduler); see policy.h for how roles are resolved.
//
// Names are 1-63 characters of [a-z0-9._-], starting with a letter or digit,
// so that "kind/name" is unambiguous in logs, owners and audit lines.
#ifndef FABRIC_COMMON_SECURITY_IDENTITY_H_
#define FABRIC_COMMON_SECURITY_IDENTITY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::security {

inline constexpr absl::string_view kTrustDomain = "fabric.local";

enum class PrincipalKind { kNode, kManager, kUser };

// "node", "manager" or "user".
absl::string_view PrincipalKindName(PrincipalKind kind);

struct Identity {
  PrincipalKind kind = PrincipalKind::kUser;
  std::string name;
  // The role the certificate's subject OU names ("" when none). Only
  // meaningful for users; see Policy::RoleOf.
  std::string cert_role;

  // "node/n1": the form used for owners, audit lines and policy bindings.
  std::string ToString() const;
  // "spiffe://fabric.local/node/n1".
  std::string SpiffeId() const;

  friend bool operator==(const Identity& a, const Identity& b) {
    return a.kind == b.kind && a.name == b.name;
  }
};

// Checks a name against the rule above. INVALID_ARGUMENT names `field`.
absl::Status ValidatePrincipalName(absl::string_view field,
                                   absl::string_view name);

// Parses "spiffe://fabric.local/KIND/NAME". INVALID_ARGUMENT (naming the URI
// and what is wrong) for another scheme, trust domain or kind, or a bad name.
absl::StatusOr<Identity> ParseSpiffeId(absl::string_view uri);

// Parses "KIND/NAME" (the ToString form, used in policy bindings and
// flags). INVALID_ARGUMENT as above.
absl::StatusOr<Identity> ParseIdentity(absl::string_view text);

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_IDENTITY_H_
