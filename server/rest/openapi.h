// The OpenAPI v2 document of the REST API: protoc-gen-swagger's output for
// proto/fabric/v1, made at build time from the google.api.http annotations
// (proto/CMakeLists.txt) and compiled in. NUL-terminated JSON.
#ifndef FABRIC_SERVER_REST_OPENAPI_H_
#define FABRIC_SERVER_REST_OPENAPI_H_

namespace fabric::rest {

extern const char kOpenApiDocument[];

}  // namespace fabric::rest

#endif  // FABRIC_SERVER_REST_OPENAPI_H_
