#include "common/security/certificate.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace fabric::security {

absl::StatusOr<Identity> CertificateIdentity(X509* cert) {
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> names(
      static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)),
      &GENERAL_NAMES_free);
  std::vector<std::string> uris;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get());
       ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      ASN1_STRING_length(uri));
  }
  if (uris.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "names no fabric identity (it carries ", uris.size(),
        " URI SANs; a fabric certificate carries exactly one, spiffe://",
        kTrustDomain, "/KIND/NAME)"));
  }
  absl::StatusOr<Identity> id = ParseSpiffeId(uris[0]);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("names no fabric identity (", id.status().message(), ")"));
  }
  // The role a user certificate names: its subject's (first) OU.
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int ou = X509_NAME_get_index_by_NID(subject, NID_organizationalUnitName,
                                            -1);
  if (ou >= 0) {
    const ASN1_STRING* value =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, ou));
    id->cert_role.assign(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
        ASN1_STRING_length(value));
  }
  return id;
}

absl::StatusOr<Identity> CertificateFileIdentity(const std::string& cert_file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_file(cert_file.c_str(), "r"), &BIO_free);
  if (bio == nullptr) {
    return absl::NotFoundError(absl::StrCat(cert_file, ": cannot be read"));
  }
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_file, ": not a PEM certificate"));
  }
  absl::StatusOr<Identity> id = CertificateIdentity(cert.get());
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_file, ": ", id.status().message()));
  }
  return id;
}

absl::StatusOr<Identity> RequireOwnIdentity(const TlsConfig& tls,
                                            PrincipalKind kind,
                                            absl::string_view name) {
  absl::StatusOr<Identity> id = CertificateFileIdentity(tls.cert_file);
  if (!id.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--tls-cert: ", id.status().message()));
  }
  if (id->kind == kind && (name.empty() || id->name == name)) return id;
  const absl::string_view kind_name = PrincipalKindName(kind);
  const std::string wanted =
      name.empty() ? absl::StrCat("a ", kind_name, " (spiffe://", kTrustDomain,
                                  "/", kind_name, "/NAME)")
                   : absl::StrCat(kind_name, "/", name);
  return absl::FailedPreconditionError(absl::StrCat(
      "--tls-cert: ", tls.cert_file, " names ", id->ToString(), ", not ",
      wanted,
      "; issue this program's certificate with `deploy/pki.sh issue "
      "DIR ",
      kind_name, " ", name.empty() ? "NAME" : name, "`"));
}

}  // namespace fabric::security
