#ifndef FABRIC_COMMON_SECURITY_OPENSSL_LIFETIME_H_
#define FABRIC_COMMON_SECURITY_OPENSSL_LIFETIME_H_

namespace fabric::security {

// Initialises OpenSSL for the life of the process, its configuration loaded,
// and WITHOUT the cleanup OpenSSL otherwise runs from atexit().
//
// Why: gRPC's threads (handshakes, subchannel reconnects, the event engine's
// pool) are not joined before exit; one that is still handshaking when
// OpenSSL's exit-time cleanup has run reads freed library state (SEGV) and
// the per-thread state of every live thread is orphaned (LeakSanitizer). The
// operating system reclaims the memory at exit anyway.
//
// Contract: idempotent and thread-safe. It only takes effect if it runs
// before anything else initialises OpenSSL, so this unit also calls it from a
// static initializer, and the credential builders (tls.h) call it, which
// links this unit into every program that uses TLS.
void InitOpenSslForProcessLifetime();

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_OPENSSL_LIFETIME_H_
