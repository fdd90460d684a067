#include "common/security/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace fabric::security {
namespace {

constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%E3SZ";
constexpr char kParseTimeFormat[] = "%Y-%m-%dT%H:%M:%E*SZ";

void AppendJsonString(absl::string_view value, std::string* out) {
  out->push_back('"');
  for (char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x",
                        static_cast<unsigned char>(c));
          out->append(buf);
        } else {
          out->push_back(c);  // UTF-8 passes through
        }
    }
  }
  out->push_back('"');
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A reader of the one shape an audit line has: a flat JSON object whose
// values are strings.
class LineParser {
 public:
  explicit LineParser(absl::string_view line) : s_(line) {}

  absl::StatusOr<std::map<std::string, std::string>> Object() {
    std::map<std::string, std::string> fields;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    if (Consume('}')) return Finish(std::move(fields));
    while (true) {
      SkipSpace();
      absl::StatusOr<std::string> key = String();
      if (!key.ok()) return key.status();
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      SkipSpace();
      absl::StatusOr<std::string> value = String();
      if (!value.ok()) return value.status();
      fields[*key] = *std::move(value);
      SkipSpace();
      if (Consume('}')) return Finish(std::move(fields));
      if (!Consume(',')) return Error("expected ',' or '}'");
    }
  }

 private:
  absl::StatusOr<std::map<std::string, std::string>> Finish(
      std::map<std::string, std::string> fields) {
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters");
    return fields;
  }

  absl::StatusOr<std::string> String() {
    if (!Consume('"')) return Error("expected a string");
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        return Error("a control character inside a string");
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return Error("a short \\u escape");
          uint32_t cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') {
              cp |= h - '0';
            } else if (h >= 'a' && h <= 'f') {
              cp |= h - 'a' + 10;
            } else if (h >= 'A' && h <= 'F') {
              cp |= h - 'A' + 10;
            } else {
              return Error("a bad \\u escape");
            }
          }
          AppendUtf8(cp, &out);
          break;
        }
        default:
          return Error("a bad escape");
      }
    }
    return Error("an unterminated string");
  }

  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool Consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " at column ", pos_ + 1));
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(
    const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    std::string msg =
        absl::StrCat("audit log ", path, ": ", std::strerror(errno));
    if (errno == EACCES || errno == EPERM) {
      return absl::PermissionDeniedError(msg);
    }
    return absl::InvalidArgumentError(msg);
  }
  return std::unique_ptr<AuditLog>(new AuditLog(fd, path));
}

AuditLog::~AuditLog() { close(fd_); }

void AuditLog::Record(const AuditEvent& event) {
  std::string line = Format(event);
  line.push_back('\n');
  absl::MutexLock lock(&mu_);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ++write_errors_;
      return;
    }
    done += static_cast<size_t>(n);
  }
}

int64_t AuditLog::write_errors() const {
  absl::MutexLock lock(&mu_);
  return write_errors_;
}

std::string AuditLog::Format(const AuditEvent& event) {
  std::string out = "{\"time\":";
  AppendJsonString(
      absl::FormatTime(kTimeFormat, event.time, absl::UTCTimeZone()), &out);
  const std::pair<const char*, const std::string*> fields[] = {
      {"identity", &event.identity}, {"role", &event.role},
      {"method", &event.method},     {"request_id", &event.request_id},
      {"code", &event.code},         {"message", &event.message}};
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&out, ",\"", key, "\":");
    AppendJsonString(*value, &out);
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<AuditEvent> AuditLog::ParseLine(absl::string_view line) {
  absl::StatusOr<std::map<std::string, std::string>> fields =
      LineParser(line).Object();
  if (!fields.ok()) return fields.status();
  AuditEvent event;
  const std::pair<const char*, std::string*> strings[] = {
      {"identity", &event.identity}, {"role", &event.role},
      {"method", &event.method},     {"request_id", &event.request_id},
      {"code", &event.code},         {"message", &event.message}};
  for (const auto& [key, value] : strings) {
    auto it = fields->find(key);
    if (it == fields->end()) {
      return absl::InvalidArgumentError(absl::StrCat("no \"", key, "\""));
    }
    *value = it->second;
  }
  auto time = fields->find("time");
  if (time == fields->end()) {
    return absl::InvalidArgumentError("no \"time\"");
  }
  std::string error;
  if (!absl::ParseTime(kParseTimeFormat, time->second, absl::UTCTimeZone(),
                       &event.time, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"time\" \"", time->second, "\": ", error));
  }
  return event;
}

absl::StatusOr<std::vector<AuditEvent>> AuditLog::Read(
    const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  std::vector<AuditEvent> events;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++number;
    if (line.empty()) continue;  // the end of the file
    absl::StatusOr<AuditEvent> event = ParseLine(line);
    if (!event.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": line ", number, ": ", event.status().message()));
    }
    events.push_back(*std::move(event));
  }
  return events;
}

absl::StatusOr<AuditLog::Chunk> AuditLog::ReadFrom(
    const std::string& path, uint64_t offset, size_t max_events,
    size_t max_bytes, const std::function<bool(const AuditEvent&)>& keep) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const std::string msg =
        absl::StrCat("audit log ", path, ": ", std::strerror(errno));
    if (errno == ENOENT) return absl::NotFoundError(msg);
    if (errno == EACCES || errno == EPERM) {
      return absl::PermissionDeniedError(msg);
    }
    return absl::InternalError(msg);
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(
        absl::StrCat("audit log ", path, ": ", std::strerror(errno)));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size) {
    return absl::OutOfRangeError(absl::StrCat(
        "audit log ", path, " has ", size, " bytes, fewer than the offset ",
        offset, " to read from: it was replaced or truncated"));
  }
  Chunk chunk;
  chunk.next_offset = offset;
  std::string buf;
  size_t used = 0;  // bytes of buf consumed as whole lines
  while (chunk.events.size() < max_events &&
         chunk.next_offset - offset < max_bytes) {
    // Refill: what is left of buf, then up to 64 KiB more.
    buf.erase(0, used);
    used = 0;
    const uint64_t at = chunk.next_offset + buf.size();
    if (at >= size) break;
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size - at, 64 << 10));
    const size_t had = buf.size();
    buf.resize(had + want);
    ssize_t n;
    do {
      n = pread(fd, buf.data() + had, want, static_cast<off_t>(at));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat("audit log ", path, ": ", std::strerror(errno)));
    }
    buf.resize(had + static_cast<size_t>(n));
    if (n == 0) break;
    for (size_t end; chunk.events.size() < max_events &&
                     chunk.next_offset - offset < max_bytes &&
                     (end = buf.find('\n', used)) != std::string::npos;) {
      const absl::string_view line(buf.data() + used, end - used);
      if (!line.empty()) {
        absl::StatusOr<AuditEvent> event = ParseLine(line);
        if (!event.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("audit log ", path, ": the line at byte ",
                           chunk.next_offset, ": ", event.status().message()));
        }
        if (keep(*event)) chunk.events.push_back(*std::move(event));
      }
      chunk.next_offset += end + 1 - used;
      used = end + 1;
    }
  }
  // At the end when no whole line follows: the rest of the file (if any)
  // has no newline yet.
  absl::string_view rest(buf.data() + used, buf.size() - used);
  if (rest.find('\n') == absl::string_view::npos) {
    chunk.at_end = chunk.next_offset + rest.size() >= size;
  }
  return chunk;
}

}  // namespace fabric::security
