// Network addresses as flags take them: HOST:PORT.
#ifndef FABRIC_COMMON_HOST_PORT_H_
#define FABRIC_COMMON_HOST_PORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric {

struct HostPort {
  // A name, an IPv4 address or an IPv6 address (without brackets).
  std::string host;
  uint16_t port = 0;

  // "host:port", the host in brackets when it is an IPv6 address
  // ("[::1]:7070"): what ParseHostPort reads back, and gRPC takes.
  std::string ToString() const;
};

// Parses `text` as HOST:PORT. HOST is a name or an IPv4 address, or an IPv6
// address in brackets ("[::1]:7070"); it may not be empty or hold spaces.
// PORT is decimal digits only, 0 to 65535: 0 is accepted (a listener's "any
// port"), callers that need a real port refuse it. Otherwise
// INVALID_ARGUMENT with a message that starts with `flag` and says what is
// wrong, e.g.
//   --listen: the address is empty; expected HOST:PORT
//   --listen: "host" has no port; expected HOST:PORT
//   --listen: port "abc" is not a number
//   --listen: port 99999 is out of range (0-65535)
//   --listen: "::1:7070": an IPv6 address needs brackets, e.g. [::1]:7070
absl::StatusOr<HostPort> ParseHostPort(absl::string_view flag,
                                       absl::string_view text);

}  // namespace fabric

#endif  // FABRIC_COMMON_HOST_PORT_H_
