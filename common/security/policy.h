// Policy: which role may call which RPC, and over what (deny by default).
//
// The policy file is protobuf text format (proto/fabric/internal/policy.proto;
// the default is deploy/policy/policy.textproto, also compiled in as
// DefaultPolicyText()):
//
//   role { name: "viewer"
//          allow { method: "/fabric.v1.FabricService/Get*" }
//          allow { method: "/fabric.v1.FabricService/List*" } }
//   role { name: "scheduler"
//          allow { method: "/fabric.v1.FabricService/CreateAllocation"
//                  scope: OWN } }
//   binding { identity: "user/alice" role: "admin" }
//
// A caller's role:
//   - a node identity always has role "node", a manager identity always
//     "manager" (bindings cannot change that);
//   - a user has the role its binding names, else the role its
//     certificate's OU names; a user may never hold "node" or "manager";
//   - a user with neither has no role: every call is denied.
// Then the rules of that role (and of the special role "authenticated") are
// searched; the first rule whose method matches decides the scope. No match:
// denied.
//
// Immutable after Parse; thread-safe.
#ifndef FABRIC_COMMON_SECURITY_POLICY_H_
#define FABRIC_COMMON_SECURITY_POLICY_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/security/identity.h"
#include "fabric/internal/policy.pb.h"

namespace fabric::security {

using Scope = internal::Scope;

// The outcome of one check.
struct Decision {
  bool allowed = false;
  // The caller's resolved role ("" when it has none).
  std::string role;
  // When allowed: how far the call reaches.
  Scope scope = internal::ANY;
  // When denied: why, for the PERMISSION_DENIED message, e.g.
  // "user/bob (role viewer) may not call /fabric.v1.FabricService/
  // CreateAllocation".
  std::string reason;
};

class Policy {
 public:
  // Parses and validates a policy: INVALID_ARGUMENT naming the line or the
  // field for a syntax error, a role without a name or defined twice, a
  // rule whose method is neither a full method nor a "*" pattern, a binding
  // whose identity does not parse or whose role is undefined, or a binding
  // of a user to "node" or "manager".
  static absl::StatusOr<Policy> Parse(absl::string_view text);
  // Reads and parses a file (NOT_FOUND / INVALID_ARGUMENT naming the path).
  static absl::StatusOr<Policy> Load(const std::string& path);
  // The compiled-in copy of deploy/policy/policy.textproto.
  static absl::string_view DefaultPolicyText();
  static Policy Default();

  // The role `who` holds ("" when none), as resolved above.
  std::string RoleOf(const Identity& who) const;

  // May `who` call `method` ("/package.Service/Method")?
  Decision Check(const Identity& who, absl::string_view method) const;

  // May a caller holding `role` (as RoleOf resolved it) call `method`? The
  // rules of `role` and of "authenticated", as Check applies them; false
  // for "" (no role). No allocation: for
  // the per-call check of a caller whose role is already known.
  bool Allows(absl::string_view role, absl::string_view method) const;

  // The scope of everything `role` does: OWN if any of its rules is OWN,
  // SELF_NODE if any is SELF_NODE (a role cannot mix the two: Parse refuses
  // it), else ANY. This, not the matched rule's scope, is what a call's
  // Caller carries (grpc_auth.h), because gRPC keeps a caller's properties
  // per connection, not per call: a role whose rules mix OWN and ANY is
  // held to its own resources wherever a handler applies ownership.
  Scope RoleScope(const std::string& role) const;

 private:
  struct CompiledRule {
    std::string pattern;  // without a trailing '*'
    bool prefix = false;
    Scope scope = internal::ANY;
  };
  // The first rule of `role`, then of "authenticated", that matches
  // `method`; null when none does.
  const CompiledRule* Match(absl::string_view role,
                            absl::string_view method) const;

  std::map<std::string, std::vector<CompiledRule>, std::less<>> roles_;
  std::map<std::string, std::string> bindings_;  // "user/alice" -> role
  std::map<std::string, Scope> role_scopes_;
};

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_POLICY_H_
