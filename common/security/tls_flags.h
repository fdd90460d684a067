// The TLS flags every program shares: --tls-cert, --tls-key, --tls-ca and
// --insecure. fabricctl also reads FABRIC_TLS_CERT, FABRIC_TLS_KEY and
// FABRIC_TLS_CA (a flag wins over its variable).
#ifndef FABRIC_COMMON_SECURITY_TLS_FLAGS_H_
#define FABRIC_COMMON_SECURITY_TLS_FLAGS_H_

#include <CLI/CLI.hpp>

#include "common/security/tls.h"

namespace fabric::security {

// Adds the four flags to `app`, writing into `*tls` (which must outlive
// app.parse()).
void AddTlsFlags(CLI::App& app, TlsConfig* tls);

// For fabricctl: fills each file still empty in `*tls` from its
// FABRIC_TLS_* environment variable. Call after app.parse(). Does nothing
// when --insecure was given (a flag wins over the variables).
void ApplyTlsEnvironment(TlsConfig* tls);

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_TLS_FLAGS_H_
