// RestListener: the manager's --http-listen, assembled: the HTTP listener
// (common/http) in front of the REST gateway (rest_gateway.h), serving the
// fabric.v1 REST API, /openapi.json and any extra GET handlers (/metrics).
//
//   auto rest = RestListener::Start(options, [&] {
//     return grpc_server->InProcessChannel();
//   });
//   ...
//   (*rest)->Shutdown();  // before the gRPC server goes
//
// Thread-safe.
#ifndef FABRIC_SERVER_REST_REST_LISTENER_H_
#define FABRIC_SERVER_REST_REST_LISTENER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/http/http_server.h"
#include "common/security/audit_log.h"
#include "common/security/policy.h"
#include "common/security/tls.h"
#include "server/rest/rest_gateway.h"

namespace fabric::rest {

struct RestListenerOptions {
  // HOST:PORT (port 0 picks one).
  std::string listen;
  // As the gRPC listener's: mutual TLS, or --insecure on loopback only.
  security::TlsConfig tls;
  // The gRPC listener's policy and audit log. Not owned; must outlive the
  // listener. `policy` is required unless tls.insecure.
  const security::Policy* policy = nullptr;
  security::AuditLog* audit = nullptr;
  // HTTP threads; each open connection holds one (http_server.h).
  int threads = 64;
  // More GET handlers, by exact path (e.g. "/metrics").
  std::map<std::string, http::HttpHandler> handlers;
};

class RestListener {
 public:
  // Errors: those of HttpServer::Start (naming --http-listen) and of
  // RestGateway::Create.
  static absl::StatusOr<std::unique_ptr<RestListener>> Start(
      RestListenerOptions options, ChannelSource channels);
  ~RestListener() { Shutdown(); }

  int port() const { return http_->port(); }
  RestGateway& gateway() { return *gateway_; }
  // Ends open streams, then stops the HTTP listener. Idempotent.
  void Shutdown();

 private:
  RestListener() = default;
  // The gateway outlives the HTTP server, whose threads call it.
  std::unique_ptr<RestGateway> gateway_;
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace fabric::rest

#endif  // FABRIC_SERVER_REST_REST_LISTENER_H_
