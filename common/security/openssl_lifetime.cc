#include "common/security/openssl_lifetime.h"

#include <openssl/crypto.h>

namespace fabric::security {

void InitOpenSslForProcessLifetime() {
  // OpenSSL's own run-once guards make repeated calls cheap and safe.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_LOAD_CONFIG,
                      nullptr);
}

namespace {

// Before main(), hence before gRPC's first TLS handshaker factory
// initialises OpenSSL the default way.
const bool kOpenSslInitialised = [] {
  InitOpenSslForProcessLifetime();
  return true;
}();

}  // namespace
}  // namespace fabric::security
