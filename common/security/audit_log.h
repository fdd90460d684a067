// AuditLog: one structured line per mutation (and per denied call), so that
// who did what to the fabric can be read back.
//
// The file holds one JSON object per line:
//
//   {"time":"2026-12-05T20:00:00.123Z","identity":"user/alice",
//    "role":"scheduler","method":"/fabric.v1.FabricService/CreateAllocation",
//    "request_id":"r-17","code":"OK","message":""}
//
// Lines are appended and flushed (write(2)) before Record returns, so a
// line survives the process being killed; an fsync is not made per line.
// Thread-safe.
#ifndef FABRIC_COMMON_SECURITY_AUDIT_LOG_H_
#define FABRIC_COMMON_SECURITY_AUDIT_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fabric::security {

struct AuditEvent {
  absl::Time time;
  std::string identity;    // "user/alice"; "" when unauthenticated
  std::string role;
  std::string method;      // "/fabric.v1.FabricService/CreateAllocation"
  std::string request_id;  // the request's request_id field, "" when none
  std::string code;        // canonical code name: "OK", "PERMISSION_DENIED"
  std::string message;     // the error message; "" on OK
};

class AuditLog {
 public:
  // Opens (creating, appending) `path`. INVALID_ARGUMENT/PERMISSION_DENIED
  // naming the path when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();

  // Appends one line. Errors are counted (write_errors()), never thrown:
  // auditing must not fail a call that already happened.
  void Record(const AuditEvent& event) ABSL_LOCKS_EXCLUDED(mu_);

  int64_t write_errors() const ABSL_LOCKS_EXCLUDED(mu_);

  // The file this log appends to.
  const std::string& path() const { return path_; }

  // Reads every event of an audit file back, in order. INVALID_ARGUMENT
  // naming the line number for a line that does not parse.
  static absl::StatusOr<std::vector<AuditEvent>> Read(const std::string& path);

  // A stretch of an audit file (ReadFrom).
  struct Chunk {
    std::vector<AuditEvent> events;  // the ones `keep` accepted, in order
    uint64_t next_offset = 0;        // just after the last line read
    bool at_end = false;             // no whole line is left after it
  };
  // Reads the whole lines of `path` from byte `offset` (0, or a
  // next_offset of an earlier read), keeping the events `keep` accepts,
  // until `max_events` are kept or at least `max_bytes` are read (a line
  // is never cut). A last line not yet ended by '\n' (being written) is
  // left for the next read. Costs what it reads, not the file's size.
  // OUT_OF_RANGE for an offset past the end of the file (it was replaced
  // or truncated); INVALID_ARGUMENT naming the byte offset of a line that
  // does not parse; NOT_FOUND / PERMISSION_DENIED naming the path.
  static absl::StatusOr<Chunk> ReadFrom(
      const std::string& path, uint64_t offset, size_t max_events,
      size_t max_bytes, const std::function<bool(const AuditEvent&)>& keep);

  // One event as its line (without the newline), and back.
  static std::string Format(const AuditEvent& event);
  static absl::StatusOr<AuditEvent> ParseLine(absl::string_view line);

 private:
  AuditLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  mutable absl::Mutex mu_;
  const int fd_;
  const std::string path_;
  int64_t write_errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric::security

#endif  // FABRIC_COMMON_SECURITY_AUDIT_LOG_H_
