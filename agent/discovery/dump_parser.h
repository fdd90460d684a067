// Parser for `lspci -x`, `-xxx` and `-xxxx` text dumps, stricter than
// libpci's own dump reader so that anything it accepts libpci reads the same
// way, and anything wrong is reported with a line number instead of libpci's
// fatal error.
//
// Format: a device header line "bb:dd.f Description" or
// "dddd:bb:dd.f Description" (the space after the address is required),
// followed by data lines "00: 86 80 0d 20 ..." (hex offset, a colon, then
// exactly 16 hex bytes separated by single spaces), at offsets 0x00, 0x10,
// ... in order. Empty lines separate devices. Every device has 64, 256 or
// 4096 bytes (64 B-aligned is not enough: lspci only dumps those sizes).
#ifndef FABRIC_AGENT_DISCOVERY_DUMP_PARSER_H_
#define FABRIC_AGENT_DISCOVERY_DUMP_PARSER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/discovery/pci_address.h"

namespace fabric::agent::discovery {

struct DumpedFunction {
  PciAddress address;
  std::string description;  // the rest of the header line, may be empty
  std::vector<uint8_t> config;
  int line = 0;  // 1-based line of the header
};

// Parses `text`. Errors are INVALID_ARGUMENT beginning with
// "<file_name>:<line>: " and saying what is wrong, e.g.
// "dump.txt:7: expected 16 hex bytes after \"20:\", found 15". A dump with
// no device at all is an error too. Devices are returned in file order.
absl::StatusOr<std::vector<DumpedFunction>> ParseLspciDump(
    absl::string_view text, absl::string_view file_name);

// Reads `path` and parses it. NOT_FOUND / PERMISSION_DENIED naming the path
// when it cannot be read.
absl::StatusOr<std::vector<DumpedFunction>> ReadLspciDump(
    const std::string& path);

}  // namespace fabric::agent::discovery

#endif  // FABRIC_AGENT_DISCOVERY_DUMP_PARSER_H_
