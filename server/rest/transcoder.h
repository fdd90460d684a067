// Transcoder: REST/JSON requests to protobuf requests of a gRPC service, by
// the service's google.api.http annotations, read from its descriptors. No
// route is written by hand: a method gets REST by its annotation alone.
//
// A request message is built as grpc-gateway builds it
// (docs/rest-and-metrics.md):
//   1. the body: with `body: "*"` the whole message from the JSON body,
//      with `body: "field"` that field; a route without a body takes none;
//   2. the query string: every field bound by neither the path nor the
//      body, by its proto name or its JSON (lowerCamelCase) name, dotted for
//      nested fields; a repeated field repeats the parameter;
//   3. the path's variables, last.
// JSON is protobuf's canonical mapping (util::JsonStringToMessage); unknown
// JSON fields and unknown query parameters are INVALID_ARGUMENT naming them,
// so that a typo never passes silently.
//
// Responses (ToJson) are canonical JSON with lowerCamelCase names and every
// field present, defaults included, so clients need not know proto3's
// defaults; JsonPrinter (json_printer.h) writes them.
//
// Immutable after ForService; thread-safe.
#ifndef FABRIC_SERVER_REST_TRANSCODER_H_
#define FABRIC_SERVER_REST_TRANSCODER_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/rest/path_template.h"

namespace fabric::rest {

struct Route {
  std::string http_method;  // "GET", "POST", "PUT", "PATCH", "DELETE"
  PathTemplate path;
  // "" (no body), "*" (the whole request) or a top-level field name.
  std::string body;
  const google::protobuf::MethodDescriptor* method = nullptr;
  // "/fabric.v1.FabricService/GetFabric".
  std::string grpc_method;
};

// A request, ready to be sent.
struct PreparedCall {
  const Route* route = nullptr;
  std::unique_ptr<google::protobuf::Message> request;
};

// Why no route serves a request.
enum class NoRoute {
  kNotFound,          // no route has this path: HTTP 404
  kMethodNotAllowed,  // another HTTP method has it: HTTP 405
};

class Transcoder {
 public:
  // The routes of every method of `service` that carries a google.api.http
  // option (and its additional_bindings), with verb routes tried first.
  // INVALID_ARGUMENT naming the method for a bad path template, a body
  // naming no message field, or a path variable naming no string field.
  // Messages are built from the generated pool's prototypes.
  static absl::StatusOr<Transcoder> ForService(
      const google::protobuf::ServiceDescriptor& service);

  const std::vector<Route>& routes() const { return routes_; }

  // The route of (`http_method`, `path`): the first that matches. nullptr
  // when none does, with `*why` saying whether the path is known at all.
  const Route* Find(absl::string_view http_method, absl::string_view path,
                    Bindings* bindings, NoRoute* why) const;

  // Builds the request of `route` from the bindings Find returned, the
  // decoded query parameters and the body. INVALID_ARGUMENT naming the
  // field, the parameter or the JSON error.
  absl::StatusOr<PreparedCall> Prepare(
      const Route& route, const Bindings& bindings,
      const std::multimap<std::string, std::string>& query,
      absl::string_view body) const;

  // Canonical JSON (see above). INTERNAL if the message cannot be printed.
  static absl::StatusOr<std::string> ToJson(
      const google::protobuf::Message& message);

 private:
  Transcoder() = default;
  std::vector<Route> routes_;
};

}  // namespace fabric::rest

#endif  // FABRIC_SERVER_REST_TRANSCODER_H_
