#include "common/security/tls_flags.h"

#include <cstdlib>
#include <string>

namespace fabric::security {
namespace {

void FromEnv(const char* name, std::string* value) {
  if (!value->empty()) return;
  const char* env = std::getenv(name);
  if (env != nullptr) *value = env;
}

}  // namespace

void AddTlsFlags(CLI::App& app, TlsConfig* tls) {
  app.add_option("--tls-cert", tls->cert_file,
                 "PEM certificate of this program (its fabric identity)");
  app.add_option("--tls-key", tls->key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", tls->ca_file,
                 "PEM CA certificate every peer must chain to");
  app.add_flag("--insecure", tls->insecure,
               "plaintext without identities; loopback addresses only, for "
               "local experiments");
}

void ApplyTlsEnvironment(TlsConfig* tls) {
  // --insecure is a flag, and a flag wins over the variables.
  if (tls->insecure) return;
  FromEnv("FABRIC_TLS_CERT", &tls->cert_file);
  FromEnv("FABRIC_TLS_KEY", &tls->key_file);
  FromEnv("FABRIC_TLS_CA", &tls->ca_file);
}

}  // namespace fabric::security
