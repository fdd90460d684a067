#include "server/rest/rest_listener.h"

#include <utility>

#include "fabric/v1/fabric_service.pb.h"
#include "server/rest/openapi.h"

namespace fabric::rest {

absl::StatusOr<std::unique_ptr<RestListener>> RestListener::Start(
    RestListenerOptions options, ChannelSource channels) {
  RestGatewayOptions gateway_options;
  gateway_options.policy = options.policy;
  gateway_options.audit = options.audit;
  gateway_options.insecure = options.tls.insecure;
  gateway_options.openapi_json = kOpenApiDocument;
  absl::StatusOr<std::unique_ptr<RestGateway>> gateway = RestGateway::Create(
      *v1::CreateFabricRequest::descriptor()->file()->FindServiceByName(
          "FabricService"),
      std::move(channels),
      std::move(gateway_options));
  if (!gateway.ok()) return gateway.status();
  for (auto& [path, handler] : options.handlers) {
    (*gateway)->AddHandler(path, std::move(handler));
  }
  auto listener = std::unique_ptr<RestListener>(new RestListener());
  listener->gateway_ = *std::move(gateway);
  http::HttpServerOptions http_options;
  http_options.listen = options.listen;
  http_options.tls = options.tls;
  http_options.threads = options.threads;
  RestGateway* g = listener->gateway_.get();
  absl::StatusOr<std::unique_ptr<http::HttpServer>> http =
      http::HttpServer::Start(
          http_options,
          [g](const http::HttpRequest& request) { return g->Handle(request); });
  if (!http.ok()) return http.status();
  listener->http_ = *std::move(http);
  return listener;
}

void RestListener::Shutdown() {
  if (http_ == nullptr) return;
  gateway_->Shutdown();
  http_->Shutdown();
}

}  // namespace fabric::rest
