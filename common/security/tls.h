// Transport security for every gRPC connection of the fabric: mutual TLS
// (TLS 1.2 or later) with certificates verified against one CA, or
// plaintext on loopback by explicit choice (--insecure).
//
//   TlsConfig tls{.cert_file = "m1.crt", .key_file = "m1.key",
//                 .ca_file = "ca.crt"};
//   RETURN_IF_ERROR(CheckTransport("fabric-manager", tls, "10.0.0.1:7070"));
//   builder.AddListeningPort(addr, ServerCredentials(tls, processor));
//   auto channel = grpc::CreateChannel(
//       agent_addr, ChannelCredentials(tls, PeerRequirement::Node("n1")));
//
// Certificates, keys and the CA are re-read from their files while the
// program runs (every TlsConfig::refresh_interval): a rotated certificate is
// used by the next handshake, with no restart. Existing connections keep the
// credentials they were made with.
//
// Thread-safe: the credentials returned may be shared by any number of
// servers and channels.
#ifndef FABRIC_COMMON_SECURITY_TLS_H_
#define FABRIC_COMMON_SECURITY_TLS_H_

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/security/identity.h"

namespace fabric::security {

struct TlsConfig {
  // PEM files: this program's certificate (chain), its private key, and the
  // CA that every peer's certificate must chain to.
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  // Plaintext, no identities: allowed only on loopback (CheckTransport).
  bool insecure = false;
  // How often the files are re-read. gRPC's file watcher counts whole
  // seconds; anything below one second is one second.
  absl::Duration refresh_interval = absl::Seconds(1);

  bool has_files() const {
    return !cert_file.empty() || !key_file.empty() || !ca_file.empty();
  }
};

// The rule every program applies at startup, before it listens or dials.
// `program` names the program in messages; `address` is the HOST:PORT it
// listens on or dials (every one of them, if it has several: call once per
// address).
//   - insecure with any --tls-* file: INVALID_ARGUMENT (choose one);
//   - insecure and `address`'s host is not loopback (127.0.0.0/8, ::1,
//     localhost): FAILED_PRECONDITION saying that plaintext is allowed only
//     on loopback;
//   - insecure on loopback: OK, and a warning is printed to stderr (once per
//     call) that the connection is unauthenticated and unencrypted;
//   - not insecure: all three files must be given and readable, the key must
//     match the certificate, and the certificate must not be expired;
//     otherwise FAILED_PRECONDITION naming the flag (--tls-cert, --tls-key,
//     --tls-ca) and the reason, e.g. "--tls-cert: /x/m1.crt: no such file;
//     give --tls-cert/--tls-key/--tls-ca, or --insecure on a loopback
//     address for local experiments".
// `warn` false leaves the warning out (for a second check of an address the
// program already checked and warned about).
absl::Status CheckTransport(absl::string_view program, const TlsConfig& tls,
                            absl::string_view address, bool warn = true);

// Server credentials: mutual TLS that requires and verifies a client
// certificate (plaintext when tls.insecure). `processor`, when given, is
// installed as the AuthMetadataProcessor (the authorization choke point,
// see grpc_auth.h); it is ignored for insecure credentials.
// REQUIRES (here and in ChannelCredentials): tls.insecure, or all three
// files given (CheckTransport passed); gRPC aborts on a TLS configuration
// without files.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const TlsConfig& tls,
    std::shared_ptr<grpc::AuthMetadataProcessor> processor);

// Who the server at the other end of a channel must be. The server's
// certificate must chain to the CA and carry this identity as its URI SAN;
// host names and IP SANs are not checked (fabric identities are names, not
// addresses).
struct PeerRequirement {
  PrincipalKind kind = PrincipalKind::kManager;
  // "" accepts any name of `kind`.
  std::string name;

  static PeerRequirement AnyManager() { return {PrincipalKind::kManager, ""}; }
  static PeerRequirement Node(absl::string_view node) {
    return {PrincipalKind::kNode, std::string(node)};
  }
};

// Channel credentials: mutual TLS with this program's certificate, refusing
// a server whose certificate does not meet `peer` (the handshake fails, so
// every call on the channel ends UNAVAILABLE). Plaintext when tls.insecure.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(
    const TlsConfig& tls, const PeerRequirement& peer);

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_TLS_H_
