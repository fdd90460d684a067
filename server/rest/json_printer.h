// JsonPrinter: a protobuf message as proto3 canonical JSON, written straight
// from reflection.
//
// Why not util::MessageToJsonString: protobuf 3.21's printer serializes the
// message, then re-reads the bytes while it converts every message type it
// meets to a google.protobuf.Type, afresh on every call. For one Allocation
// that is ~13 us and dozens of allocations; it was 15% of the manager's CPU
// under REST allocate+release at 32 clients (issue 16's figures), and a list
// of 1,000 allocations pays it 1,000 times. This printer writes the same JSON
// in one pass over the message.
//
// The output is the canonical mapping as MessageToJsonString prints it with
// always_print_primitive_fields (json_printer_test checks this for every
// message of fabric.v1, filled at random):
//   - keys are json_name (lowerCamelCase);
//   - every singular scalar, string, bytes and enum field is printed, its
//     default included; a repeated field is [] and a map {} when empty; a
//     message field, a oneof member or a proto3 `optional` field only when
//     set;
//   - 64-bit integers are quoted decimals; doubles and floats print in the
//     shortest form that reads back to the same value, NaN and infinities
//     as "NaN", "Infinity", "-Infinity";
//   - enums by name, or by number when the number has no name;
//   - bytes in standard base64 with padding;
//   - map keys as strings;
//   - google.protobuf.Timestamp as RFC 3339 in UTC ("...Z", 0, 3, 6 or 9
//     fraction digits), Duration as "1.500s", Empty as {}.
// Key order is field-number order (JSON objects are unordered).
//
// Other well-known types (Any, Struct, wrappers, FieldMask, ...) are not
// printed here: Print returns UNIMPLEMENTED for them and the caller falls
// back to protobuf's printer. A Timestamp or Duration out of the range the
// mapping allows is INVALID_ARGUMENT naming the field.
//
// Stateless and thread-safe.
#ifndef FABRIC_SERVER_REST_JSON_PRINTER_H_
#define FABRIC_SERVER_REST_JSON_PRINTER_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"

namespace fabric::rest {

// Appends `message` as canonical JSON to `*out`. On an error `*out` holds
// a partial document: the caller discards it.
absl::Status PrintJson(const google::protobuf::Message& message,
                       std::string* out);

}  // namespace fabric::rest

#endif  // FABRIC_SERVER_REST_JSON_PRINTER_H_
