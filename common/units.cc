#include "common/units.h"

#include <cctype>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace fabric {

absl::StatusOr<uint64_t> ParseSize(absl::string_view text,
                                   absl::string_view field) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  size_t i = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i])))
    ++i;
  if (i == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", text,
        "\" is not a size; use a number with an optional unit such as 4096, "
        "64KiB, 2MiB or 1GiB"));
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(s.substr(0, i), &n)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", text, "\" is larger than 2^64-1 bytes"));
  }
  std::string unit =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(i)));
  int shift = -1;
  if (unit.empty() || unit == "b") shift = 0;
  for (auto [prefix, sh] : {std::pair<const char*, int>{"k", 10},
                            {"m", 20},
                            {"g", 30},
                            {"t", 40},
                            {"p", 50}}) {
    if (unit == prefix || unit == absl::StrCat(prefix, "i") ||
        unit == absl::StrCat(prefix, "b") ||
        unit == absl::StrCat(prefix, "ib")) {
      shift = sh;
    }
  }
  if (shift < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unknown unit \"", unit, "\" in \"", text,
                     "\"; use B, KiB, MiB, GiB, TiB or PiB"));
  }
  if (shift > 0 && n > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", text, "\" is larger than 2^64-1 bytes"));
  }
  return n << shift;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B",   "KiB", "MiB", "GiB",
                                           "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes != 0 && u < 6 && (bytes & 1023) == 0) {
    bytes >>= 10;
    ++u;
  }
  return absl::StrCat(bytes, " ", kUnits[u]);
}

std::string FormatAddr(uint64_t addr) {
  std::string hex = absl::StrFormat("%x", addr);
  std::string out;
  int lead = static_cast<int>(hex.size() % 4);
  for (size_t i = 0; i < hex.size(); ++i) {
    if (i != 0 && (static_cast<int>(i) - lead) % 4 == 0) out.push_back('_');
    out.push_back(hex[i]);
  }
  return absl::StrCat("0x", out);
}

}  // namespace fabric
