#include "server/service/audit_reader.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "server/service/paginate.h"
#include "server/service/records.h"

namespace fabric::service {
namespace {

using google::protobuf::util::TimeUtil;

// The canonical code names, as the audit log writes them.
bool IsCodeName(absl::string_view name) {
  static constexpr absl::string_view kNames[] = {
      "OK",           "CANCELLED",          "UNKNOWN",
      "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED",     "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",
      "DATA_LOSS",    "UNAUTHENTICATED"};
  return std::find(std::begin(kNames), std::end(kNames), name) !=
         std::end(kNames);
}

// The last part of "/fabric.v1.FabricService/CreateAllocation".
absl::string_view MethodName(absl::string_view method) {
  const size_t slash = method.rfind('/');
  return slash == absl::string_view::npos ? method : method.substr(slash + 1);
}

}  // namespace

absl::StatusOr<v1::ReadAuditLogResponse> ReadAuditLog(
    const security::AuditLog* log, const v1::ReadAuditLogRequest& req,
    size_t max_page_bytes) {
  if (log == nullptr) {
    return absl::FailedPreconditionError(
        "this manager keeps no audit log (started with --audit-log none)");
  }
  if (req.page_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size: ", req.page_size(), " is negative; use 0 for ",
        kDefaultPageSize, " or up to ", kMaxPageSize));
  }
  if (!req.code().empty() && req.code() != "ERROR" && !IsCodeName(req.code())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "code: \"", req.code(),
        "\" is not a canonical code name (OK, PERMISSION_DENIED, ...) nor "
        "ERROR (any but OK)"));
  }
  absl::Time since = absl::InfinitePast();
  if (req.has_since()) {
    const google::protobuf::Timestamp& t = req.since();
    if (t.seconds() < TimeUtil::kTimestampMinSeconds ||
        t.seconds() > TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
        t.nanos() >= 1000000000) {
      return absl::InvalidArgumentError(
          "since: not a valid timestamp (seconds from 0001-01-01 to "
          "9999-12-31, nanos in [0, 1e9))");
    }
    since = FromProtoTime(t);
  }
  uint64_t offset = 0;
  if (!req.page_token().empty()) {
    ASSIGN_OR_RETURN(const std::string key, DecodePageToken(req.page_token()));
    if (!absl::SimpleAtoi(key, &offset)) {
      return absl::InvalidArgumentError(
          "page_token: not a token of ReadAuditLog");
    }
  }
  const size_t page_size = static_cast<size_t>(
      req.page_size() == 0 ? kDefaultPageSize
                           : std::min(req.page_size(), kMaxPageSize));
  const absl::string_view method = req.method();
  const bool full_method = absl::StartsWith(method, "/");
  auto keep = [&](const security::AuditEvent& e) {
    if (!req.identity().empty() && e.identity != req.identity()) return false;
    if (!method.empty() &&
        (full_method ? e.method != method : MethodName(e.method) != method)) {
      return false;
    }
    if (req.code() == "ERROR" ? e.code == "OK"
                              : !req.code().empty() && e.code != req.code()) {
      return false;
    }
    return e.time >= since;
  };
  absl::StatusOr<security::AuditLog::Chunk> chunk = security::AuditLog::ReadFrom(
      log->path(), offset, page_size, max_page_bytes, keep);
  if (!chunk.ok()) {
    if (absl::IsOutOfRange(chunk.status())) {
      return absl::OutOfRangeError(
          absl::StrCat("page_token: ", chunk.status().message()));
    }
    return chunk.status();
  }
  v1::ReadAuditLogResponse out;
  for (const security::AuditEvent& e : chunk->events) {
    v1::AuditRecord* r = out.add_records();
    *r->mutable_time() = ToProtoTime(e.time);
    r->set_identity(e.identity);
    r->set_role(e.role);
    r->set_method(e.method);
    r->set_request_id(e.request_id);
    r->set_code(e.code);
    r->set_message(e.message);
  }
  const std::string resume =
      EncodePageToken(absl::StrCat(chunk->next_offset));
  if (!chunk->at_end) out.set_next_page_token(resume);
  out.set_resume_token(resume);
  return out;
}

}  // namespace fabric::service
