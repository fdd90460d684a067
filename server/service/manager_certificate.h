// The manager's own certificate: it must name a manager
// (spiffe://fabric.local/manager/NAME), since agents dial the manager
// requiring one (PeerRequirement::AnyManager) and the policy gives the
// manager identity the right to call NodeAgentService.
#ifndef FABRIC_SERVER_SERVICE_MANAGER_CERTIFICATE_H_
#define FABRIC_SERVER_SERVICE_MANAGER_CERTIFICATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/security/identity.h"
#include "common/security/tls.h"

namespace fabric::service {

// The fabric identity the PEM certificate in `cert_file` names (its URI
// SAN; the first certificate of a chain). NOT_FOUND / INVALID_ARGUMENT
// naming the file when it cannot be read, is not a certificate, or names no
// fabric identity.
absl::StatusOr<security::Identity> CertificateFileIdentity(
    const std::string& cert_file);

// The manager's identity from tls.cert_file; FAILED_PRECONDITION naming
// --tls-cert when it is not a manager's, e.g.
//   --tls-cert: m.crt names node/n1, not a manager; issue the manager's
//   certificate with `deploy/pki.sh issue DIR manager NAME`
// REQUIRES: !tls.insecure.
absl::StatusOr<security::Identity> ManagerIdentity(
    const security::TlsConfig& tls);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_MANAGER_CERTIFICATE_H_
