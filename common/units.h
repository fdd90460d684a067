// Human-readable byte sizes and durations, both ways.
#ifndef FABRIC_COMMON_UNITS_H_
#define FABRIC_COMMON_UNITS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fabric {

// Parses "4096", "4K", "4KiB", "64 MiB", "1G", "2GiB", "1TiB" (binary units;
// the "i" and "B" are optional, case-insensitive). Returns INVALID_ARGUMENT
// naming `field` when the text is not a size or overflows 64 bits.
absl::StatusOr<uint64_t> ParseSize(absl::string_view text,
                                   absl::string_view field = "size");

// Formats bytes with the largest binary unit that divides them exactly,
// e.g. 1048576 -> "1 MiB", 1536 -> "1536 B", 3221225472 -> "3 GiB".
std::string FormatSize(uint64_t bytes);

// Formats an address as 0x-prefixed hex, grouped by 4 digits for reading:
// 0x1000_0000_0000.
std::string FormatAddr(uint64_t addr);

}  // namespace fabric

#endif  // FABRIC_COMMON_UNITS_H_
