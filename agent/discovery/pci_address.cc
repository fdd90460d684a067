#include "agent/discovery/pci_address.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace fabric::agent::discovery {
namespace {

absl::Status Bad(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("bad PCI address \"%s\": %s", text, what));
}

bool ParseHexField(absl::string_view s, size_t max_digits, uint32_t* out) {
  if (s.empty() || s.size() > max_digits) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleHexAtoi(s, out);
}

}  // namespace

PciAddress PciAddress::FromRoutingId(uint32_t domain, uint16_t routing_id) {
  PciAddress a;
  a.domain = domain;
  a.bus = static_cast<uint8_t>(routing_id >> 8);
  a.device = static_cast<uint8_t>((routing_id >> 3) & 0x1f);
  a.function = static_cast<uint8_t>(routing_id & 0x7);
  return a;
}

std::string PciAddress::ToString() const {
  return absl::StrFormat("%04x:%02x:%02x.%x", domain, bus, device, function);
}

absl::StatusOr<PciAddress> ParsePciAddress(absl::string_view text) {
  std::vector<absl::string_view> colon = absl::StrSplit(text, ':');
  if (colon.size() != 2 && colon.size() != 3) {
    return Bad(text, "expected bb:dd.f or dddd:bb:dd.f");
  }
  PciAddress a;
  uint32_t v = 0;
  if (colon.size() == 3) {
    if (!ParseHexField(colon[0], 8, &v)) {
      return Bad(text, "domain is not 1-8 hex digits");
    }
    a.domain = v;
  }
  absl::string_view bus = colon[colon.size() - 2];
  absl::string_view devfn = colon.back();
  if (!ParseHexField(bus, 2, &v)) return Bad(text, "bus is not 1-2 hex digits");
  a.bus = static_cast<uint8_t>(v);
  size_t dot = devfn.find('.');
  if (dot == absl::string_view::npos) {
    return Bad(text, "missing '.' before the function");
  }
  if (!ParseHexField(devfn.substr(0, dot), 2, &v)) {
    return Bad(text, "device is not 1-2 hex digits");
  }
  if (v > 0x1f) {
    return Bad(text,
               absl::StrFormat("device 0x%02x out of range (max 0x1f)", v));
  }
  a.device = static_cast<uint8_t>(v);
  absl::string_view fn = devfn.substr(dot + 1);
  if (fn.size() != 1 || fn[0] < '0' || fn[0] > '7') {
    return Bad(text, "function is not one digit 0-7");
  }
  a.function = static_cast<uint8_t>(fn[0] - '0');
  return a;
}

}  // namespace fabric::agent::discovery
