#include "agent/agent_identity.h"

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
  RETURN_IF_ERROR(security::CheckTransport("fabric-agent", tls, manager));
  return CheckCertificateNode(tls, node);
}

}  // namespace fabric::agent
