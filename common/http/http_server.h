// HttpServer: the HTTP listener of the manager (REST, /openapi.json,
// /metrics) and of the agents (/metrics), on cpp-httplib (Debian's
// libcpp-httplib-dev).
//
// It follows the rules of the gRPC listeners (common/security/tls.h):
//   - mutual TLS 1.2+ with the program's --tls-cert/--tls-key, requiring a
//     client certificate that chains to --tls-ca; the peer's fabric
//     identity (its URI SAN, identity.h) is handed to the handler, which
//     applies the policy (security::AdmitCall) itself;
//   - plaintext only with --insecure, and only on a loopback address;
//   - a port another socket holds is refused (no SO_REUSEPORT), and port 0
//     picks a free one;
//   - a rotated certificate and key are used by the next handshake, read
//     as one consistent pair (KeyPairSnapshot); so is a rotated --tls-ca
//     (a bundle holding the old and the new CA lets both kinds of client
//     in during the change). A file that does not parse leaves the last
//     good one in use.
//
//   HttpServerOptions options{.listen = "127.0.0.1:0", .tls = tls};
//   auto server = HttpServer::Start(options, [](const HttpRequest& r) {
//     return HttpResponse::Text(200, "text/plain", "hello\n");
//   });
//
// The handler runs on one of the server's threads (options.threads), one
// request at a time per thread; a streamed response holds its thread until
// the stream ends. Handlers must be thread-safe.
#ifndef FABRIC_COMMON_HTTP_HTTP_SERVER_H_
#define FABRIC_COMMON_HTTP_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/security/identity.h"
#include "common/security/tls.h"

namespace fabric::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded, without the query
  // Decoded query parameters of the URL (never of the body, whatever its
  // Content-Type); a repeated parameter appears once per value.
  std::multimap<std::string, std::string> query;
  std::string body;
  // Header names lowercased.
  std::multimap<std::string, std::string> headers;
  // The peer's fabric identity from its verified client certificate;
  // UNAUTHENTICATED naming what is missing when the certificate names none,
  // or when the server is plaintext (then `authenticated` is false).
  absl::StatusOr<security::Identity> peer =
      absl::UnauthenticatedError("plaintext HTTP carries no identity");
  bool tls = false;
};

// Writes one chunk of a streamed response; false once the client is gone
// (the stream should then end). An empty chunk writes nothing and only
// asks whether the client is still connected: over TLS a client that closed
// its connection (FIN, RST) is seen at once, without waiting for the next
// chunk to fail; over plaintext only by a write that fails.
using ChunkWriter = std::function<bool(absl::string_view chunk)>;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra response headers.
  std::multimap<std::string, std::string> headers;
  // When set, the response is sent chunked: `stream` is called once, on the
  // request's thread, and writes chunks until it returns. `body` is unused.
  std::function<void(const ChunkWriter&)> stream;

  static HttpResponse Text(int status, std::string content_type,
                           std::string body) {
    HttpResponse r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    return r;
  }
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  // HOST:PORT; port 0 picks a free one.
  std::string listen;
  // The program's transport security, as for its gRPC listener.
  security::TlsConfig tls;
  // The flag `listen` came from, for messages ("--http-listen").
  std::string flag = "--http-listen";
  // Threads serving connections. A connection holds its thread while it is
  // open: a streamed response until it ends, a keep-alive connection until
  // it has served keep_alive_requests or idled keep_alive_timeout. A
  // connection that finds every thread busy waits for one.
  int threads = 64;
  int keep_alive_requests = 1000;
  absl::Duration keep_alive_timeout = absl::Seconds(5);
};

class HttpServer {
 public:
  // Binds and starts serving on a background thread. Errors:
  // INVALID_ARGUMENT for a malformed address or threads < 1; the errors of
  // security::CheckTransport (plaintext off loopback, missing or
  // unreadable certificates), naming options.flag; UNAVAILABLE naming the
  // address when it is in use or cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, HttpHandler handler);
  // Stops: see Shutdown.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  // Stops accepting, closes the listener and waits for the serving thread.
  // Streams in progress see their ChunkWriter fail. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fabric::http

#endif  // FABRIC_COMMON_HTTP_HTTP_SERVER_H_
