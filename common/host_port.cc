#include "common/host_port.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fabric {
namespace {

constexpr uint32_t kMaxPort = 65535;

absl::Status Error(absl::string_view flag, absl::string_view text,
                   absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": \"", text, "\"", what));
}

}  // namespace

std::string HostPort::ToString() const {
  return absl::StrContains(host, ':') ? absl::StrCat("[", host, "]:", port)
                                      : absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view flag,
                                       absl::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": the address is empty; expected HOST:PORT"));
  }
  absl::string_view host, port;
  bool has_port = false;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return Error(flag, text, ": \"[\" without \"]\"");
    }
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return Error(flag, text, ": expected \":PORT\" after \"]\"");
    }
    has_port = !rest.empty();
    if (has_port) port = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    has_port = colon != absl::string_view::npos;
    host = text.substr(0, has_port ? colon : text.size());
    if (has_port) port = text.substr(colon + 1);
    if (absl::StrContains(host, ':')) {
      return Error(flag, text,
                   ": an IPv6 address needs brackets, e.g. [::1]:7070");
    }
  }
  if (!has_port || port.empty()) {
    return Error(flag, text, " has no port; expected HOST:PORT");
  }
  if (host.empty()) {
    return Error(flag, text, " has no host; expected HOST:PORT");
  }
  for (char c : host) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return Error(flag, text, ": the host has a space");
    }
  }
  uint32_t value = 0;
  for (char c : port) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": port \"", port, "\" is not a number"));
    }
    // Saturates instead of overflowing; anything past kMaxPort is refused.
    value = std::min<uint32_t>(value * 10 + (c - '0'), kMaxPort + 1);
  }
  if (value > kMaxPort) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": port ", port, " is out of range (0-", kMaxPort, ")"));
  }
  return HostPort{std::string(host), static_cast<uint16_t>(value)};
}

}  // namespace fabric
