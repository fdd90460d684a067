// Telling an operator why an address cannot be listened on.
#ifndef FABRIC_COMMON_LISTEN_PROBE_H_
#define FABRIC_COMMON_LISTEN_PROBE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/host_port.h"

namespace fabric {

// Binds (and closes at once) a TCP socket on every address `address`
// resolves to, as a server would, without SO_REUSEPORT: OK when it could
// listen there now. Otherwise an error whose message starts with `flag`:
//   ALREADY_EXISTS     "--listen: 127.0.0.1:7070 is in use by another
//                       process"
//   INVALID_ARGUMENT   "--listen: 192.0.2.1 is not an address of this host"
//                      or "--listen: host "x" does not resolve: ..."
//   PERMISSION_DENIED  "--listen: port 80 needs privileges ..."
// Servers call it before they start, so that a refusal names its cause;
// gRPC's own failure to bind says only that it failed.
absl::Status ProbeListen(absl::string_view flag, const HostPort& address);

}  // namespace fabric

#endif  // FABRIC_COMMON_LISTEN_PROBE_H_
