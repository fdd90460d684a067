// Fuzzes the `lspci -x/-xxx/-xxxx` dump parser (agent/discovery/
// dump_parser.h) and the config-space decoding the inventory runs on every
// function it returns.
//
// Properties, besides no crash and no sanitizer finding:
//  - An error is INVALID_ARGUMENT and starts with "<file>:<line>: ", the
//    line inside the input.
//  - Every parsed function has 64, 256 or 4096 bytes of config space, a
//    header line inside the input, a non-empty description, and a unique
//    address.
//  - Printing the parsed functions back as lspci prints them and parsing
//    that gives the same functions (addresses, descriptions, bytes).
//  - The decoders accept every parsed config space (ParseHeader) or fail
//    only with the documented codes.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "agent/discovery/config_space.h"
#include "agent/discovery/dump_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace fabric::fuzz {
namespace {

namespace discovery = ::fabric::agent::discovery;

constexpr char kFile[] = "fuzz.lspci";
constexpr size_t kMaxLine = 250;  // dump_parser.cc's kMaxLineLength

bool IsCode(const absl::Status& s, absl::StatusCode a,
            absl::StatusCode b = absl::StatusCode::kOk) {
  return s.code() == a || (b != absl::StatusCode::kOk && s.code() == b);
}

// "<file>:<line>: ..." with the line in [1, lines].
void CheckErrorPrefix(const absl::Status& s, int lines) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, s.ToString());
  absl::string_view m = s.message();
  const bool named = absl::ConsumePrefix(&m, absl::StrCat(kFile, ":"));
  FUZZ_CHECK(named, "no file name: ", s.ToString());
  const size_t colon = m.find(':');
  int line = 0;
  FUZZ_CHECK(colon != absl::string_view::npos &&
                 absl::SimpleAtoi(m.substr(0, colon), &line),
             "no line number: ", s.ToString());
  FUZZ_CHECK(line >= 1 && line <= lines, "line ", line, " outside 1..", lines,
             ": ", s.ToString());
}

// The decoding discovery does for one function (inventory.cc Analyze).
void Decode(const discovery::DumpedFunction& f) {
  const discovery::ConfigBytes config = f.config;
  absl::StatusOr<discovery::ConfigHeader> header =
      discovery::ParseHeader(config);
  FUZZ_CHECK(header.ok(),
             "ParseHeader of a parsed dump: ", header.status().ToString());
  absl::StatusOr<std::vector<discovery::Bar>> bars =
      discovery::ParseBars(config);
  FUZZ_CHECK(
      bars.ok() || IsCode(bars.status(), absl::StatusCode::kInvalidArgument,
                          absl::StatusCode::kDataLoss),
      bars.status().ToString());
  absl::StatusOr<std::vector<discovery::Capability>> caps =
      discovery::ListCapabilities(config);
  FUZZ_CHECK(
      caps.ok() || IsCode(caps.status(), absl::StatusCode::kInvalidArgument,
                          absl::StatusCode::kDataLoss),
      caps.status().ToString());
  if (config.size() != discovery::kConfigExtendedBytes) return;
  absl::StatusOr<std::optional<discovery::SriovCapability>> sriov =
      discovery::FindSriov(config);
  FUZZ_CHECK(sriov.ok() || IsCode(sriov.status(), absl::StatusCode::kDataLoss),
             sriov.status().ToString());
  if (!sriov.ok() || !sriov->has_value()) return;
  const discovery::SriovCapability& s = **sriov;
  FUZZ_CHECK(s.num_vfs <= s.total_vfs, "NumVFs above TotalVFs");
  absl::StatusOr<std::vector<discovery::PciAddress>> vfs =
      discovery::VfAddresses(f.address, s.first_vf_offset, s.vf_stride,
                             s.num_vfs);
  if (vfs.ok()) {
    FUZZ_CHECK(vfs->size() == s.num_vfs, "VF count");
  } else {
    FUZZ_CHECK(IsCode(vfs.status(), absl::StatusCode::kInvalidArgument,
                      absl::StatusCode::kOutOfRange),
               vfs.status().ToString());
  }
}

// The functions as `lspci -xxxx` prints them (dump_parser.h's format).
std::string Print(const std::vector<discovery::DumpedFunction>& functions) {
  std::string out;
  for (const discovery::DumpedFunction& f : functions) {
    absl::StrAppend(&out, f.address.ToString(), " ", f.description, "\n");
    for (size_t off = 0; off < f.config.size(); off += 16) {
      absl::StrAppend(&out, absl::StrFormat("%02x:", off));
      for (size_t i = 0; i < 16; ++i) {
        absl::StrAppend(&out, absl::StrFormat(" %02x", f.config[off + i]));
      }
      absl::StrAppend(&out, "\n");
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fabric::fuzz;  // NOLINT(build/namespaces): entry point
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const int lines =
      1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  absl::StatusOr<std::vector<discovery::DumpedFunction>> functions =
      discovery::ParseLspciDump(text, kFile);
  if (!functions.ok()) {
    CheckErrorPrefix(functions.status(), lines);
    return 0;
  }
  FUZZ_CHECK(!functions->empty(), "accepted a dump without devices");
  std::set<discovery::PciAddress> seen;
  bool printable = true;
  for (const discovery::DumpedFunction& f : *functions) {
    FUZZ_CHECK(discovery::CheckConfigSize(f.config).ok(), "device ",
               f.address.ToString(), " has ", f.config.size(), " bytes");
    FUZZ_CHECK(f.line >= 1 && f.line <= lines, "header line ", f.line);
    FUZZ_CHECK(!f.description.empty(), "device ", f.address.ToString(),
               " has no description");
    FUZZ_CHECK(seen.insert(f.address).second, "device ", f.address.ToString(),
               " twice");
    // The canonical address (always with a 4-digit domain) may push a long
    // header line past the parser's limit.
    printable &=
        f.address.ToString().size() + 1 + f.description.size() <= kMaxLine;
    Decode(f);
  }
  if (!printable) return 0;
  const std::string printed = Print(*functions);
  absl::StatusOr<std::vector<discovery::DumpedFunction>> again =
      discovery::ParseLspciDump(printed, "printed");
  FUZZ_CHECK(again.ok(),
             "printed dump does not parse: ", again.status().ToString(), "\n",
             printed);
  FUZZ_CHECK(again->size() == functions->size(), "device count changed");
  for (size_t i = 0; i < again->size(); ++i) {
    const discovery::DumpedFunction& a = (*functions)[i];
    const discovery::DumpedFunction& b = (*again)[i];
    FUZZ_CHECK(a.address == b.address && a.description == b.description &&
                   a.config == b.config,
               "device ", i, " changed in the round trip:\n", printed);
  }
  return 0;
}
