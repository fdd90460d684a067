// Small POSIX file helpers shared by the agent's backends.
#ifndef FABRIC_COMMON_FILE_UTIL_H_
#define FABRIC_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fabric {

// A status for the current errno after `what` failed on `path`, e.g.
// "open /sys/x: No such file or directory". ENOENT -> NOT_FOUND, EINVAL and
// ERANGE -> INVALID_ARGUMENT, EPERM and EACCES -> PERMISSION_DENIED, others
// INTERNAL. Call it right after the failing call, before errno changes.
absl::Status ErrnoError(const std::string& what, const std::string& path);

// The whole content of `path`. One open: a concurrent rename over `path`
// replaces the name, not what this read sees.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace fabric

#endif  // FABRIC_COMMON_FILE_UTIL_H_
