#include "agent/agent_identity.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/security/certificate.h"
#include "common/status_macros.h"

namespace fabric::agent {

absl::Status CheckCertificateNode(const security::TlsConfig& tls,
                                  absl::string_view node) {
  if (tls.insecure) return absl::OkStatus();
  return security::RequireOwnIdentity(tls, security::PrincipalKind::kNode, node)
      .status();
}

absl::Status CheckAgentSecurity(const security::TlsConfig& tls,
                                absl::string_view node,
                                absl::string_view listen,
                                absl::string_view manager) {
  RETURN_IF_ERROR(security::CheckTransport("fabric-agent", tls, listen));
  // Every manager of a list (HA) is checked.
  for (absl::string_view one : absl::StrSplit(manager, ',')) {
    RETURN_IF_ERROR(security::CheckTransport(
        "fabric-agent", tls, absl::StripAsciiWhitespace(one)));
  }
  return CheckCertificateNode(tls, node);
}

}  // namespace fabric::agent
