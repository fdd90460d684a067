// PCI function addresses ("dddd:bb:dd.f") and their 16-bit routing IDs.
#ifndef FABRIC_AGENT_DISCOVERY_PCI_ADDRESS_H_
#define FABRIC_AGENT_DISCOVERY_PCI_ADDRESS_H_

#include <cstdint>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric::agent::discovery {

// One PCI function. A value type; the fields are always in range
// (device < 32, function < 8) when built through the factories below.
struct PciAddress {
  uint32_t domain = 0;
  uint8_t bus = 0;
  uint8_t device = 0;
  uint8_t function = 0;

  // The routing ID (requester ID): bus[15:8] device[7:3] function[2:0].
  uint16_t RoutingId() const {
    return static_cast<uint16_t>(bus << 8 | device << 3 | function);
  }
  // The inverse of RoutingId(); any 16-bit value is a valid routing ID.
  static PciAddress FromRoutingId(uint32_t domain, uint16_t routing_id);

  // "dddd:bb:dd.f" in lower-case hex, e.g. "0000:3b:00.1".
  std::string ToString() const;

  friend bool operator==(const PciAddress& a, const PciAddress& b) {
    return std::tie(a.domain, a.bus, a.device, a.function) ==
           std::tie(b.domain, b.bus, b.device, b.function);
  }
  friend bool operator!=(const PciAddress& a, const PciAddress& b) {
    return !(a == b);
  }
  friend bool operator<(const PciAddress& a, const PciAddress& b) {
    return std::tie(a.domain, a.bus, a.device, a.function) <
           std::tie(b.domain, b.bus, b.device, b.function);
  }
};

// Parses "bb:dd.f" (domain 0) or "dddd:bb:dd.f" (hex; the domain may have up
// to 8 digits, bus and device 1-2 digits, function one digit 0-7). Returns
// INVALID_ARGUMENT saying what is wrong otherwise, e.g. "device 0x20 out of
// range (max 0x1f) in \"00:20.0\"".
absl::StatusOr<PciAddress> ParsePciAddress(absl::string_view text);

}  // namespace fabric::agent::discovery

#endif  // FABRIC_AGENT_DISCOVERY_PCI_ADDRESS_H_
