// fabricctl's errors and argument helpers: pure functions that turn flag
// values into requests, and usage errors that name the flag.
//
// Thread-safe (no state).
#ifndef FABRIC_CLIENT_ARGS_H_
#define FABRIC_CLIENT_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

namespace v1 = ::fabric::v1;

// ---------------------------------------------------------------------------
// Errors

// INVALID_ARGUMENT marked as a usage error (bad flag value, bad resource
// kind): fabricctl exits 2 for these.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

// Returns `status` with `hint` attached (a one-line suggestion printed after
// the error). OK statuses are returned unchanged.
absl::Status WithHint(absl::Status status, absl::string_view hint);
// The attached hint, or "" when there is none.
std::string StatusHint(const absl::Status& status);

// ---------------------------------------------------------------------------
// Argument helpers (pure)

// Parses a positive duration such as "30s", "5m", "1h", "1h30m", "250ms"
// (absl::ParseDuration syntax); a bare number means seconds. Returns a usage
// error naming `flag` otherwise.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text,
                                                 absl::string_view flag);

// Parses "k=v" labels. Returns a usage error naming --label for an entry
// without "=" or with an empty key.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels);

// Splits the values of a comma-separated list flag (given once, or
// repeated: "--nodes a,b --nodes c") into names stripped of surrounding
// whitespace. An empty name is a usage error naming `flag` and its 1-based
// position in the whole list ("--nodes: name 2 is empty"); a list with no
// name at all (`--nodes ""`) is one saying the list is empty.
absl::StatusOr<std::vector<std::string>> ParseNameList(
    const std::vector<std::string>& values, absl::string_view flag);

// A random request id ("fabricctl-" and 32 hex digits).
std::string NewRequestId();

// "x", "nodes/x" -> "nodes/x" for collection "nodes".
std::string Qualify(absl::string_view collection, absl::string_view name);

// Parses an unsigned number, hexadecimal with "0x" or decimal, at most
// `max`. Usage error naming `flag` otherwise.
absl::StatusOr<uint64_t> ParseNumberFlag(absl::string_view text,
                                         absl::string_view flag,
                                         uint64_t max = UINT32_MAX);

// "direct", "hypervisor" or "auto" (any case). Usage error naming
// --interrupts and the allowed values otherwise.
absl::StatusOr<v1::Attachment::InterruptPolicy> ParseInterruptPolicy(
    absl::string_view text);

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_ARGS_H_
