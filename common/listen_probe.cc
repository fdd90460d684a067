#include "common/listen_probe.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace fabric {

absl::Status ProbeListen(absl::string_view flag, const HostPort& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const int rc =
      getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": host \"", address.host,
                     "\" does not resolve: ", gai_strerror(rc)));
  }
  absl::Status status = absl::OkStatus();
  for (addrinfo* ai = found; ai != nullptr && status.ok(); ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                          ai->ai_protocol);
    if (fd < 0) continue;  // e.g. no IPv6 here: nothing to say about it
    // As gRPC does: a port held only by connections in TIME_WAIT is free.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      const int err = errno;
      switch (err) {
        case EADDRINUSE:
          status = absl::AlreadyExistsError(absl::StrCat(
              flag, ": ", address.ToString(),
              " is in use by another process (one server per port)"));
          break;
        case EADDRNOTAVAIL:
          status = absl::InvalidArgumentError(
              absl::StrCat(flag, ": ", address.host,
                           " is not an address of this host"));
          break;
        case EACCES:
          status = absl::PermissionDeniedError(absl::StrCat(
              flag, ": port ", address.port,
              " needs privileges this process lacks (ports below 1024)"));
          break;
        default:
          status = absl::UnavailableError(
              absl::StrCat(flag, ": cannot listen on ", address.ToString(),
                           ": ", std::strerror(err)));
      }
    }
    close(fd);
  }
  freeaddrinfo(found);
  return status;
}

}  // namespace fabric
