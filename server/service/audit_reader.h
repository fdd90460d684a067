// ReadAuditLog (proto/fabric/v1/fabric_service.proto, audit.proto): the
// records of an audit log (common/security/audit_log.h), filtered, oldest
// first, in pages.
//
// A page token names a byte offset of the file (checksummed, as every page
// token: paginate.h). A page reads at most kAuditPageBytes of the file, so
// its cost is bounded whatever the filters and the file's size.
//
// Pure: thread-safe as the file system is.
#ifndef FABRIC_SERVER_SERVICE_AUDIT_READER_H_
#define FABRIC_SERVER_SERVICE_AUDIT_READER_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "common/security/audit_log.h"
#include "fabric/v1/audit.pb.h"

namespace fabric::service {

inline constexpr size_t kAuditPageBytes = size_t{4} << 20;

// One page of `log` for `req`. Null `log` (the manager keeps none):
// FAILED_PRECONDITION. INVALID_ARGUMENT naming page_size (negative), code
// (not a canonical code name nor "ERROR"), since (not a valid timestamp)
// or page_token (not one this manager wrote); OUT_OF_RANGE for a
// page_token past the end of the file (the log was replaced).
absl::StatusOr<v1::ReadAuditLogResponse> ReadAuditLog(
    const security::AuditLog* log, const v1::ReadAuditLogRequest& req,
    size_t max_page_bytes = kAuditPageBytes);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_AUDIT_READER_H_
