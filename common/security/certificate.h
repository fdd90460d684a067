// What a certificate file on disk says about its holder, read before a
// program listens or dials: a manager must run with a manager's certificate,
// an agent with its own node's.
#ifndef FABRIC_COMMON_SECURITY_CERTIFICATE_H_
#define FABRIC_COMMON_SECURITY_CERTIFICATE_H_

#include <openssl/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/security/identity.h"
#include "common/security/tls.h"

namespace fabric::security {

// The fabric identity `cert` names: its one URI SAN, with the subject's OU
// as cert_role. INVALID_ARGUMENT saying what is missing otherwise. Used for
// peers whose certificate the program holds itself (the HTTP listener,
// common/http).
absl::StatusOr<Identity> CertificateIdentity(X509* cert);

// The fabric identity the PEM certificate in `cert_file` names: its URI SAN
// (the first certificate of a chain, which must carry exactly one URI SAN).
// NOT_FOUND naming the file when it cannot be read; INVALID_ARGUMENT naming
// the file when it is not a PEM certificate or names no fabric identity.
absl::StatusOr<Identity> CertificateFileIdentity(const std::string& cert_file);

// The identity tls.cert_file names, which must be of `kind` and, unless
// `name` is empty, named `name`. FAILED_PRECONDITION naming --tls-cert
// otherwise, e.g.
//   --tls-cert: n2.crt names node/n2, not node/n1; issue this program's
//   certificate with `deploy/pki.sh issue DIR node n1`
// REQUIRES: !tls.insecure.
absl::StatusOr<Identity> RequireOwnIdentity(const TlsConfig& tls,
                                            PrincipalKind kind,
                                            absl::string_view name);

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_CERTIFICATE_H_
