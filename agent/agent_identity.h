// The security rules fabric-agent applies at startup, before it listens or
// dials: its transport must be allowed (security::CheckTransport, for the
// address it listens on and the manager's), and when it has a certificate,
// the certificate must name the node it runs for. An agent holding another
// node's certificate would be refused by the manager (node binding) and by
// every borrower that dials it; it is refused here first, with the reason.
//
//   RETURN_IF_ERROR(CheckAgentSecurity(tls, "n1", "0.0.0.0:7071",
//                                      "10.0.0.1:7070"));
//
// Pure functions of their arguments and the files they name; thread-safe.
#ifndef FABRIC_AGENT_AGENT_IDENTITY_H_
#define FABRIC_AGENT_AGENT_IDENTITY_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/security/tls.h"

namespace fabric::agent {

// OK when `tls` is insecure (no certificate). Otherwise the certificate
// must name node/<node> (security::RequireOwnIdentity); FAILED_PRECONDITION
// naming --tls-cert, the identity the certificate names and the node --node
// asks for.
absl::Status CheckCertificateNode(const security::TlsConfig& tls,
                                  absl::string_view node);

// Everything fabric-agent checks before it starts: CheckTransport for
// `listen` and for `manager` (with program "fabric-agent"), then
// CheckCertificateNode. The first refusal is returned, as is.
absl::Status CheckAgentSecurity(const security::TlsConfig& tls,
                                absl::string_view node,
                                absl::string_view listen,
                                absl::string_view manager);

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_AGENT_IDENTITY_H_
