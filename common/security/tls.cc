#include "common/security/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/host_port.h"
#include "common/security/key_pair_snapshot.h"
#include "common/security/openssl_lifetime.h"

namespace fabric::security {
namespace {

constexpr absl::string_view kRemedy =
    "give --tls-cert/--tls-key/--tls-ca, or --insecure on a loopback address "
    "for local experiments";

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::Status FileError(absl::string_view flag, const std::string& path,
                       absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat(flag, ": ", path, ": ", why, "; ", kRemedy));
}

// Reads one of the three files, FAILED_PRECONDITION naming `flag`.
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag,
                                         const std::string& path) {
  if (path.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, ": not given; ", kRemedy));
  }
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    switch (text.status().code()) {
      case absl::StatusCode::kNotFound:
        return FileError(flag, path, "no such file");
      case absl::StatusCode::kPermissionDenied:
        return FileError(flag, path, "not readable (permission denied)");
      default:
        return FileError(flag, path, text.status().message());
    }
  }
  return text;
}

bool IsLoopback(absl::string_view host) {
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

absl::Status CheckFiles(const TlsConfig& tls) {
  absl::StatusOr<std::string> cert_pem =
      ReadFlagFile("--tls-cert", tls.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadFlagFile("--tls-key", tls.key_file);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> ca_pem = ReadFlagFile("--tls-ca", tls.ca_file);
  if (!ca_pem.ok()) return ca_pem.status();

  BioPtr cert_bio = MemBio(*cert_pem);
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return FileError("--tls-cert", tls.cert_file, "not a PEM certificate");
  }
  BioPtr key_bio = MemBio(*key_pem);
  PkeyPtr key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return FileError("--tls-key", tls.key_file,
                     "not a PEM private key (or it is encrypted)");
  }
  BioPtr ca_bio = MemBio(*ca_pem);
  X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
  if (ca == nullptr) {
    return FileError("--tls-ca", tls.ca_file, "not a PEM certificate");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return FileError(
        "--tls-key", tls.key_file,
        absl::StrCat("does not match the certificate ", tls.cert_file));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0) {
    return FileError("--tls-cert", tls.cert_file, "the certificate expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) >= 0) {
    return FileError("--tls-cert", tls.cert_file,
                     "the certificate is not valid yet");
  }
  return absl::OkStatus();
}

unsigned int RefreshSeconds(const TlsConfig& tls) {
  int64_t secs = absl::ToInt64Seconds(tls.refresh_interval);
  return static_cast<unsigned int>(std::max<int64_t>(secs, 1));
}

// The watcher reads the key and the certificate from one snapshot file that
// only ever holds a matching pair (key_pair_snapshot.h), so a rotation that
// replaces the two files one after the other never hands gRPC a new key
// with the old certificate.
std::shared_ptr<grpc::experimental::CertificateProviderInterface> FileProvider(
    const TlsConfig& tls) {
  InitOpenSslForProcessLifetime();  // no-op by now; links the unit in
  absl::StatusOr<std::string> pair =
      KeyPairSnapshot::PathFor(tls.cert_file, tls.key_file);
  if (!pair.ok()) {
    std::fprintf(stderr,
                 "WARNING: %s; reading %s and %s directly (a rotation may "
                 "fail handshakes while only one of them is replaced)\n",
                 std::string(pair.status().message()).c_str(),
                 tls.cert_file.c_str(), tls.key_file.c_str());
    return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.ca_file, RefreshSeconds(tls));
  }
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      *pair, *pair, tls.ca_file, RefreshSeconds(tls));
}

// Checks the server's URI SAN against a PeerRequirement, in place of the
// host name check (gRPC has already verified the chain against the CA).
class PeerVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit PeerVerifier(PeerRequirement peer) : peer_(std::move(peer)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> callback,
              grpc::Status* sync_status) override {
    *sync_status = Check(request->uri_names());
    return true;
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {
  }

 private:
  grpc::Status Check(const std::vector<grpc::string_ref>& uris) const {
    std::string want = peer_.name.empty()
                           ? absl::StrCat("any ", PrincipalKindName(peer_.kind))
                           : Identity{peer_.kind, peer_.name, ""}.ToString();
    if (uris.size() != 1) {
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          absl::StrCat("the server's certificate carries ", uris.size(),
                       " URI SANs, not exactly one; expected ", want));
    }
    absl::string_view uri(uris[0].data(), uris[0].size());
    absl::StatusOr<Identity> id = ParseSpiffeId(uri);
    if (!id.ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          std::string(id.status().message()));
    }
    if (id->kind != peer_.kind ||
        (!peer_.name.empty() && id->name != peer_.name)) {
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          absl::StrCat("the server is ", id->ToString(), ", expected ", want));
    }
    return grpc::Status::OK;
  }

  const PeerRequirement peer_;
};

}  // namespace

absl::Status CheckTransport(absl::string_view program, const TlsConfig& tls,
                            absl::string_view address, bool warn) {
  if (tls.insecure) {
    if (tls.has_files()) {
      return absl::InvalidArgumentError(
          absl::StrCat(program,
                       ": --insecure and --tls-cert/--tls-key/--tls-ca exclude "
                       "each other; choose one"));
    }
    absl::StatusOr<HostPort> hp = ParseHostPort(program, address);
    if (!hp.ok()) return hp.status();
    if (!IsLoopback(hp->host)) {
      return absl::FailedPreconditionError(absl::StrCat(
          program, ": --insecure on ", address,
          ": plaintext is allowed only on loopback addresses (127.0.0.0/8, "
          "::1, localhost); give --tls-cert/--tls-key/--tls-ca"));
    }
    if (!warn) return absl::OkStatus();
    std::fprintf(stderr,
                 "%s: WARNING: --insecure: %s is unauthenticated and "
                 "unencrypted (plaintext, no identities); for local "
                 "experiments only\n",
                 std::string(program).c_str(), std::string(address).c_str());
    return absl::OkStatus();
  }
  if (absl::Status s = CheckFiles(tls); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(program, ": ", s.message()));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const TlsConfig& tls,
    std::shared_ptr<grpc::AuthMetadataProcessor> processor) {
  if (tls.insecure) return grpc::InsecureServerCredentials();
  // gRPC 1.51 has no set_min_tls_version in its C++ options; its default
  // minimum is TLS 1.2, which is what the fabric requires.
  grpc::experimental::TlsServerCredentialsOptions options(FileProvider(tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  if (processor != nullptr) creds->SetAuthMetadataProcessor(processor);
  return creds;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(
    const TlsConfig& tls, const PeerRequirement& peer) {
  if (tls.insecure) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(FileProvider(tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<PeerVerifier>(
          peer));
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace fabric::security
