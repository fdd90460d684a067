// AccessScope: how far an admitted call reaches, applied to the resources a
// handler touches.
//
// The choke point (security::AuthProcessor) decides whether a caller may
// call a method at all, and with which scope (policy.proto's Scope). The
// handlers then apply that scope to what the request names, through these
// functions and nowhere else:
//   - SELF_NODE: the node a request names must be the node the caller's
//     certificate names (an agent may register, stream and report only for
//     its own node);
//   - OWN: a caller reaches only the allocations and attachments it owns;
//     so does a SELF_NODE caller (a node's consumer, the device plugin:
//     owner "node/n1"), which is bound to its node as well;
//   - in every authenticated call, the owner of what is created is the
//     caller's identity ("user/alice"), never a free-text field.
// A caller of an --insecure server (not authenticated) keeps the behaviour
// from before identities: scope ANY, owners as the request says. A caller
// that came over TLS without being admitted (Caller::unadmitted) reaches
// nothing.
//
// Errors are PERMISSION_DENIED naming the request's field; they never
// reveal who owns another caller's resource. Pure functions; thread-safe.
#ifndef FABRIC_SERVER_SERVICE_ACCESS_SCOPE_H_
#define FABRIC_SERVER_SERVICE_ACCESS_SCOPE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/security/grpc_auth.h"

namespace fabric::service {

// SELF_NODE: OK unless `caller` is authenticated with scope SELF_NODE and
// `node` ("n2" or "nodes/n2", the value of the request's field `field`) is
// not the node its certificate names:
//   PERMISSION_DENIED "node: the certificate is for node/n1; the request
//   names n2".
// A SELF_NODE caller whose certificate is not a node's is refused too.
absl::Status CheckNodeBinding(const security::Caller& caller,
                              absl::string_view field, absl::string_view node);

// The owner to record for a resource the caller creates. Authenticated:
// the caller's identity (Caller::OwnerName()); a non-empty `requested`
// (the value of the request's field `field`, e.g. "allocation.owner") that
// differs is PERMISSION_DENIED naming the field. Not authenticated:
// `requested`, unchanged.
absl::StatusOr<std::string> OwnerForCreate(const security::Caller& caller,
                                           absl::string_view field,
                                           absl::string_view requested);

// OWN: OK unless `caller` is authenticated with scope OWN (or SELF_NODE)
// and `owner` (the
// owner of the resource `resource`, e.g. "allocations/a1") is not the
// caller. The message names the resource and the caller, not the owner.
absl::Status CheckOwner(const security::Caller& caller,
                        absl::string_view resource, absl::string_view owner);

// Whether CheckOwner can refuse `caller` at all: a handler looks the
// resource's owner up only then (an admin or an insecure caller costs no
// lookup).
bool NeedsOwnerCheck(const security::Caller& caller);

// OWN, for lists: the owner filter a list request must use. With scope OWN
// (or SELF_NODE) the filter becomes the caller's identity; a non-empty `requested` filter
// (the request's field `field`) naming someone else is PERMISSION_DENIED.
// Otherwise `requested`, unchanged.
absl::StatusOr<std::string> OwnerFilter(const security::Caller& caller,
                                        absl::string_view field,
                                        absl::string_view requested);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_ACCESS_SCOPE_H_
