#include "agent/discovery/dump_parser.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/discovery/config_space.h"
#include "common/status_macros.h"

namespace fabric::agent::discovery {
namespace {

// libpci's reader gives up on longer lines (its buffer is 256 bytes).
constexpr size_t kMaxLineLength = 250;

bool IsHex(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// True when `line` starts like a device header: hex digits and colons up to
// a '.', i.e. "bb:dd.f" or "dddd:bb:dd.f". Sets `address_text`.
bool LooksLikeHeader(absl::string_view line, absl::string_view* address_text) {
  size_t end = line.find(' ');
  absl::string_view addr = line.substr(0, end);
  size_t colons = 0;
  for (char c : addr) colons += c == ':';
  if (colons != 1 && colons != 2) return false;
  if (addr.back() == ':' || addr.find('.') == absl::string_view::npos) {
    return false;
  }
  *address_text = addr;
  return true;
}

class Parser {
 public:
  explicit Parser(absl::string_view file_name) : file_(file_name) {}

  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d: %s", file_, line, what));
  }

  absl::Status EndDevice() {
    if (current_ < 0) return absl::OkStatus();
    const DumpedFunction& d = out_[current_];
    current_ = -1;
    if (d.config.empty()) {
      return Error(d.line, absl::StrFormat("device %s has no data lines",
                                           d.address.ToString()));
    }
    if (!CheckConfigSize(d.config).ok()) {
      return Error(d.line,
                   absl::StrFormat("device %s has %d bytes of config space; "
                                   "expected 64, 256 or 4096",
                                   d.address.ToString(), d.config.size()));
    }
    return absl::OkStatus();
  }

  absl::Status Header(int line_no, absl::string_view line,
                      absl::string_view address_text) {
    RETURN_IF_ERROR(EndDevice());
    absl::StatusOr<PciAddress> addr = ParsePciAddress(address_text);
    if (!addr.ok()) return Error(line_no, addr.status().message());
    // libpci's reader recognises exactly "bb:dd.f " and "dddd:bb:dd.f "
    // (bus and device two digits, domain four or five, then a space).
    std::vector<absl::string_view> parts = absl::StrSplit(address_text, ':');
    const bool widths_ok =
        parts[parts.size() - 2].size() == 2 && parts.back().size() == 4 &&
        (parts.size() == 2 || parts[0].size() == 4 || parts[0].size() == 5);
    if (!widths_ok) {
      return Error(line_no,
                   absl::StrFormat("bad address \"%s\": write bb:dd.f or "
                                   "dddd:bb:dd.f with two-digit bus and device",
                                   address_text));
    }
    if (line.size() == address_text.size()) {
      return Error(line_no,
                   absl::StrFormat("device header \"%s\" needs a space and a "
                                   "description after the address",
                                   address_text));
    }
    auto [it, fresh] = seen_.emplace(*addr, line_no);
    if (!fresh) {
      return Error(line_no,
                   absl::StrFormat("device %s already appeared at line %d",
                                   addr->ToString(), it->second));
    }
    DumpedFunction d;
    d.address = *addr;
    d.description = std::string(
        absl::StripAsciiWhitespace(line.substr(address_text.size())));
    d.line = line_no;
    out_.push_back(std::move(d));
    current_ = static_cast<int>(out_.size()) - 1;
    return absl::OkStatus();
  }

  absl::Status Data(int line_no, absl::string_view line) {
    const size_t colon = line.find(':');
    absl::string_view off_text = line.substr(0, colon);
    uint32_t offset = 0;
    if (!IsHex(off_text) || off_text.size() > 8 ||
        !absl::SimpleHexAtoi(off_text, &offset)) {
      return Error(line_no, absl::StrFormat("bad offset \"%s\"", off_text));
    }
    if (current_ < 0) {
      return Error(line_no, out_.empty()
                                ? "data before any device header"
                                : "data after an empty line without a new "
                                  "device header");
    }
    std::vector<uint8_t>& config = out_[current_].config;
    const size_t expected = config.size();
    if (offset != expected) {
      return Error(line_no,
                   absl::StrFormat("offsets out of order: expected \"%02x:\", "
                                   "found \"%s:\"",
                                   expected, off_text));
    }
    if (offset + 16 > kConfigExtendedBytes) {
      return Error(line_no,
                   absl::StrFormat("offset 0x%x is past the 4096-byte config "
                                   "space",
                                   offset));
    }
    absl::string_view rest = line.substr(colon + 1);
    const std::string label = absl::StrCat("\"", off_text, ":\"");
    if (rest.empty() || rest[0] != ' ') {
      return Error(line_no,
                   absl::StrFormat("expected a space after %s", label));
    }
    std::vector<absl::string_view> bytes = absl::StrSplit(rest.substr(1), ' ');
    if (bytes.size() == 1 && bytes[0].empty()) bytes.clear();
    if (bytes.size() != 16) {
      return Error(line_no,
                   absl::StrFormat("expected 16 hex bytes after %s, found %d "
                                   "fields",
                                   label, bytes.size()));
    }
    for (size_t i = 0; i < bytes.size(); ++i) {
      uint32_t v = 0;
      if (bytes[i].size() != 2 || !IsHex(bytes[i]) ||
          !absl::SimpleHexAtoi(bytes[i], &v)) {
        return Error(line_no,
                     absl::StrFormat("expected 16 hex bytes after %s; field %d "
                                     "is \"%s\"",
                                     label, i + 1, bytes[i]));
      }
      config.push_back(static_cast<uint8_t>(v));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<DumpedFunction>> Run(absl::string_view text) {
    if (text.empty()) return Error(1, "no devices in the dump");
    std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
    // A final '\n' leaves one empty element; without it libpci would stop
    // with "line too long or unterminated".
    if (!lines.back().empty()) {
      return Error(static_cast<int>(lines.size()),
                   "last line has no newline at the end");
    }
    lines.pop_back();
    for (size_t i = 0; i < lines.size(); ++i) {
      const int line_no = static_cast<int>(i) + 1;
      absl::string_view line = lines[i];
      // lspci never ends lines with blanks, but libpci tolerates them.
      line = absl::StripTrailingAsciiWhitespace(line);
      if (line.size() > kMaxLineLength) {
        return Error(line_no, absl::StrFormat("line is %d characters long "
                                              "(at most %d)",
                                              line.size(), kMaxLineLength));
      }
      if (line.empty()) {
        RETURN_IF_ERROR(EndDevice());
        continue;
      }
      absl::string_view address_text;
      const size_t colon = line.find(':');
      const bool data_like =
          colon != absl::string_view::npos &&
          (colon + 1 == line.size() || line[colon + 1] == ' ');
      if (data_like && IsHex(line.substr(0, colon))) {
        RETURN_IF_ERROR(Data(line_no, line));
      } else if (LooksLikeHeader(line, &address_text)) {
        RETURN_IF_ERROR(Header(line_no, line, address_text));
      } else {
        return Error(line_no,
                     "expected a device header \"bb:dd.f Description\" or a "
                     "data line \"00: 86 80 ...\"");
      }
    }
    RETURN_IF_ERROR(EndDevice());
    if (out_.empty()) return Error(1, "no devices in the dump");
    return std::move(out_);
  }

 private:
  const std::string file_;
  std::vector<DumpedFunction> out_;
  int current_ = -1;  // index into out_ of the device being read, or -1
  std::map<PciAddress, int> seen_;
};

}  // namespace

absl::StatusOr<std::vector<DumpedFunction>> ParseLspciDump(
    absl::string_view text, absl::string_view file_name) {
  Parser parser(file_name);
  return parser.Run(text);
}

absl::StatusOr<std::vector<DumpedFunction>> ReadLspciDump(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    std::string msg = absl::StrFormat("cannot read PCI dump %s: %s", path,
                                      std::strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::NotFoundError(msg);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return ParseLspciDump(buf.str(), path);
}

}  // namespace fabric::agent::discovery
