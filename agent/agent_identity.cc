#include "agent/agent_identity.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace fabric::agent {
namespace {

absl::Status CertError(const std::string& cert_file, absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("--tls-cert: ", cert_file, ": ", why));
}

}  // namespace

absl::StatusOr<security::Identity> CertificateIdentity(
    const std::string& cert_file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_file(cert_file.c_str(), "r"), &BIO_free);
  if (bio == nullptr) return CertError(cert_file, "cannot be read");
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (cert == nullptr) {
    return CertError(cert_file, "is not a PEM certificate");
  }
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(
          cert.get(), NID_subject_alt_name, nullptr, nullptr)),
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
    return CertError(
        cert_file,
        absl::StrCat("carries ", uris.size(),
                     " URI SANs; a fabric certificate carries exactly one, "
                     "spiffe://fabric.local/KIND/NAME"));
  }
  absl::StatusOr<security::Identity> id = security::ParseSpiffeId(uris[0]);
  if (!id.ok()) return CertError(cert_file, id.status().message());
  return id;
}

absl::Status CheckCertificateNode(const security::TlsConfig& tls,
                                  absl::string_view node) {
  if (tls.insecure) return absl::OkStatus();
  ASSIGN_OR_RETURN(security::Identity id, CertificateIdentity(tls.cert_file));
  if (id.kind == security::PrincipalKind::kNode && id.name == node) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "--tls-cert: ", tls.cert_file, " names ", id.ToString(), ", not node/",
      node, " (--node); an agent runs only with its own node's certificate "
            "(pki.sh issue DIR node ",
      node, ")"));
}

absl::Status CheckAgentSecurity(const security::TlsConfig& tls,
                                absl::string_view node,
                                absl::string_view listen,
                                absl::string_view manager) {
  RETURN_IF_ERROR(security::CheckTransport("fabric-agent", tls, listen));
  RETURN_IF_ERROR(security::CheckTransport("fabric-agent", tls, manager));
  return CheckCertificateNode(tls, node);
}

}  // namespace fabric::agent
