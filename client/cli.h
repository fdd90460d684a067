// fabricctl's command line: flag parsing, validation and dispatch to
// Commands.
//
// Usage errors (unknown command, missing or malformed flag values) are
// reported before any RPC. Errors go to `err` as "error: <what>: <message>"
// followed, where one is known, by "hint: <suggestion>".
#ifndef FABRIC_CLIENT_CLI_H_
#define FABRIC_CLIENT_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace fabric::client {

inline constexpr char kDefaultServer[] = "127.0.0.1:7070";

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the RPC failed or the server refused
inline constexpr int kExitUsage = 2;  // the command line is wrong

// Runs fabricctl. `args[0]` is the program name. The server address comes
// from --server, else the FABRIC_SERVER environment variable, else
// kDefaultServer; it must be HOST:PORT (see common/host_port.h) with a port
// from 1 to 65535, else it is a usage error. Returns one of the exit codes
// above.
//
// Transport: mutual TLS with --tls-cert, --tls-key and --tls-ca (each file
// not given by its flag comes from FABRIC_TLS_CERT, FABRIC_TLS_KEY or
// FABRIC_TLS_CA), or plaintext with --insecure, which only a loopback
// --server accepts (security::CheckTransport). Neither, or a missing or
// unreadable file, is a usage error (exit 2) before anything is dialed.
int RunFabricctl(const std::vector<std::string>& args, std::ostream& out,
                 std::ostream& err);

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_CLI_H_
