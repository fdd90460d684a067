#include "server/service/manager_certificate.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace fabric::service {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { fclose(f); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct NamesDeleter {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};

}  // namespace

absl::StatusOr<security::Identity> CertificateFileIdentity(
    const std::string& cert_file) {
  std::unique_ptr<FILE, FileCloser> f(fopen(cert_file.c_str(), "r"));
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(cert_file, ": cannot be read"));
  }
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_file, ": not a PEM certificate"));
  }
  std::unique_ptr<GENERAL_NAMES, NamesDeleter> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(
          cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  std::string last_error = "it has no URI SAN";
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get());
       ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_STRING* uri = name->d.uniformResourceIdentifier;
    absl::StatusOr<security::Identity> id =
        security::ParseSpiffeId(absl::string_view(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
            static_cast<size_t>(ASN1_STRING_length(uri))));
    if (id.ok()) return id;
    last_error = std::string(id.status().message());
  }
  return absl::InvalidArgumentError(
      absl::StrCat(cert_file, ": names no fabric identity (", last_error, ")"));
}

absl::StatusOr<security::Identity> ManagerIdentity(
    const security::TlsConfig& tls) {
  absl::StatusOr<security::Identity> id =
      CertificateFileIdentity(tls.cert_file);
  if (!id.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--tls-cert: ", id.status().message()));
  }
  if (id->kind != security::PrincipalKind::kManager) {
    return absl::FailedPreconditionError(
        absl::StrCat("--tls-cert: ", tls.cert_file, " names ", id->ToString(),
                     ", not a manager (spiffe://", security::kTrustDomain,
                     "/manager/NAME); issue the manager's certificate with "
                     "`deploy/pki.sh issue DIR manager NAME`"));
  }
  return id;
}

}  // namespace fabric::service
