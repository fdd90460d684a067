#include "client/audit_commands.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "google/protobuf/util/time_util.h"

namespace fabric::client {

absl::StatusOr<absl::Time> ParseSince(const std::string& text,
                                      absl::Time now) {
  absl::Time t;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &error)) return t;
  absl::Duration d;
  if (absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) {
    return now - d;
  }
  return UsageError(absl::StrCat(
      "--since: \"", text,
      "\" is neither a time (2026-12-05T20:00:00Z) nor a duration before now "
      "(90m, 24h)"));
}

absl::Status AuditCommands::Audit(const AuditOptions& options) {
  v1::ReadAuditLogRequest filter;
  filter.set_identity(options.identity);
  filter.set_method(options.method);
  filter.set_code(options.code);
  if (options.since != absl::InfinitePast()) {
    *filter.mutable_since() = google::protobuf::util::TimeUtil::
        NanosecondsToTimestamp(absl::ToUnixNanos(options.since));
  }
  return PrintPages<v1::AuditRecord>(
      "audit records",
      {"TIME", "IDENTITY", "ROLE", "METHOD", "REQUEST-ID", "CODE", "MESSAGE"},
      [&](FabricClient::PageFn<v1::AuditRecord> on_page) {
        return client_->ReadAuditLogPages(filter, on_page);
      },
      [](ListWriter& writer, const v1::AuditRecord& r) {
        absl::string_view method = r.method();
        if (const size_t slash = method.rfind('/');
            slash != absl::string_view::npos) {
          method.remove_prefix(slash + 1);
        }
        // RFC 3339, as the other tables print times.
        writer.Add(r, {google::protobuf::util::TimeUtil::ToString(r.time()),
                       r.identity(), r.role(), std::string(method),
                       r.request_id(), r.code(), r.message()});
      });
}

}  // namespace fabric::client
