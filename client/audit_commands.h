// fabricctl audit: the manager's audit log (ReadAuditLog), oldest first,
// streamed page by page as `get` lists are (the client holds one page).
//
// Not thread-safe (writes to one stream).
#ifndef FABRIC_CLIENT_AUDIT_COMMANDS_H_
#define FABRIC_CLIENT_AUDIT_COMMANDS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/command_base.h"

namespace fabric::client {

// The filters of `audit`; empty / InfinitePast: any.
struct AuditOptions {
  std::string identity;  // "user/alice"
  std::string method;    // "CreateAllocation" or the full method
  std::string code;      // "PERMISSION_DENIED", or "ERROR" for any but OK
  absl::Time since = absl::InfinitePast();
};

class AuditCommands : public CommandBase {
 public:
  using CommandBase::CommandBase;

  // Prints the records `options` keeps: a table (TIME, IDENTITY, ROLE,
  // METHOD, REQUEST-ID, CODE, MESSAGE) or a JSON array of AuditRecord; at
  // most CommandOptions::limit. Errors as CommandBase::PrintPages, "list
  // audit records: ...".
  absl::Status Audit(const AuditOptions& options);
};

// The --since of `audit`: an RFC 3339 time ("2026-12-05T20:00:00Z"), or a
// duration before `now` ("90m": the last 90 minutes). A usage error naming
// --since otherwise.
absl::StatusOr<absl::Time> ParseSince(const std::string& text, absl::Time now);

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_AUDIT_COMMANDS_H_
