// RestGateway: the manager's REST/JSON API (issue 16), served on
// --http-listen beside gRPC.
//
// For each HTTP request it
//   1. finds the route by the service's google.api.http annotations
//      (transcoder.h): 404 / 405 otherwise;
//   2. admits the caller with security::AdmitCall, the same single policy
//      check the gRPC listener makes, on the identity of the client
//      certificate the HTTP listener verified: 401 / 403 otherwise, and the
//      refusal is audited. (A plaintext --insecure listener has no
//      identities, exactly as gRPC's.)
//   3. builds the request message and calls the method over an in-process
//      channel of the manager's own gRPC server, with the admitted caller
//      vouched for (grpc_auth.h): the handlers, their ownership scopes, the
//      audit trail, admission control and request-id idempotency are the
//      gRPC path's own. There is no network hop and no second
//      implementation.
//   4. answers with the response as canonical JSON, or with the error as
//      google.rpc.Status JSON ({"code": 5, "message": "...", "details": []})
//      under the HTTP status that matches the gRPC code
//      (docs/rest-and-metrics.md). Metadata the manager adds whose key
//      starts with "fabric-" (fabric-leader on a standby, fabric-stale on a
//      degraded leader) comes back as the header Grpc-Metadata-<key>.
// A server-streaming method (Watch, WatchOffers) answers chunked
// newline-delimited JSON, one {"result": <message>} per line, and a last
// {"error": <status>} line if the stream fails after it started. A stream
// the method refuses (its handler never opened it: see kStreamOpenKey in
// common/stream_metadata.h) is an ordinary error response. A client that
// leaves is noticed within a second over TLS, even on a stream with no
// message to send (http::ChunkWriter), or else at the next message (its
// write fails), or at Shutdown; its call to the manager is then cancelled.
//
// GET /openapi.json serves the OpenAPI v2 document protoc-gen-swagger made
// from the same annotations at build time; any client the TLS handshake
// admitted may read it. Other plain GET handlers (/metrics) are added with
// AddHandler.
//
// Thread-safe: Handle runs on the HTTP server's threads.
#ifndef FABRIC_SERVER_REST_REST_GATEWAY_H_
#define FABRIC_SERVER_REST_REST_GATEWAY_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http/http_server.h"
#include "common/security/audit_log.h"
#include "common/security/policy.h"
#include "server/rest/transcoder.h"

namespace fabric::rest {

// The in-process channel of the gRPC server that serves now (the leader's,
// or a standby's, which names the leader); null while none does (the
// gateway then answers 503).
using ChannelSource = std::function<std::shared_ptr<grpc::Channel>()>;

struct RestGatewayOptions {
  // Who may call what; required unless `insecure`. Not owned.
  const security::Policy* policy = nullptr;
  // Refusals are audited here (mutations are audited by the gRPC path).
  // May be null. Not owned.
  security::AuditLog* audit = nullptr;
  // The HTTP listener is plaintext: no identities, nothing to check, as on
  // an --insecure gRPC listener.
  bool insecure = false;
  // Served at GET /openapi.json.
  std::string openapi_json;
  // The deadline of a unary call.
  absl::Duration deadline = absl::Seconds(60);
};

// The HTTP status of a gRPC code (docs/rest-and-metrics.md).
int HttpStatusOf(grpc::StatusCode code);

// google.rpc.Status as JSON.
std::string StatusJson(grpc::StatusCode code, absl::string_view message);

class RestGateway {
 public:
  // INVALID_ARGUMENT when the service's annotations do not compile
  // (Transcoder::ForService), or when a policy is missing on a secure
  // gateway.
  static absl::StatusOr<std::unique_ptr<RestGateway>> Create(
      const google::protobuf::ServiceDescriptor& service,
      ChannelSource channels, RestGatewayOptions options);

  // Serves `handler` for GET `path` (exact match), before any route.
  // Call before the gateway serves.
  void AddHandler(const std::string& path, http::HttpHandler handler);

  http::HttpResponse Handle(const http::HttpRequest& request);

  // Cancels every open stream; later requests get 503. Call before the HTTP
  // server's Shutdown, so that its threads are not held by streams.
  void Shutdown();

  // Calls to the manager in flight, open streams included.
  size_t open_calls();

  const Transcoder& transcoder() const { return transcoder_; }

 private:
  struct Stream;
  RestGateway(Transcoder transcoder, ChannelSource channels,
              RestGatewayOptions options)
      : transcoder_(std::move(transcoder)),
        channels_(std::move(channels)),
        options_(std::move(options)) {}

  // Registers a call's context so that Shutdown can cancel it; false (and
  // nothing registered) once shut down.
  bool Register(grpc::ClientContext* context);
  void Unregister(grpc::ClientContext* context);

  http::HttpResponse Unary(const PreparedCall& call,
                           std::unique_ptr<grpc::ClientContext> context,
                           const std::shared_ptr<grpc::Channel>& channel);
  http::HttpResponse ServerStream(PreparedCall call,
                                  std::unique_ptr<grpc::ClientContext> context,
                                  const std::shared_ptr<grpc::Channel>& channel);

  const Transcoder transcoder_;
  const ChannelSource channels_;
  const RestGatewayOptions options_;
  std::map<std::string, http::HttpHandler> handlers_;  // set before serving

  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fabric::rest

#endif  // FABRIC_SERVER_REST_REST_GATEWAY_H_
