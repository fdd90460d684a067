#include "common/fd_limit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fabric {

absl::StatusOr<OpenFileLimit> RaiseOpenFileLimit() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(
        absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  OpenFileLimit out{.before = limit.rlim_cur, .after = limit.rlim_cur};
  const uint64_t target =
      limit.rlim_max == RLIM_INFINITY ? kUnlimitedTarget : limit.rlim_max;
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= target) return out;
  limit.rlim_cur = target;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat(
        "setrlimit(RLIMIT_NOFILE) from ", out.before, " to ", target, ": ",
        std::strerror(errno)));
  }
  out.after = target;
  return out;
}

}  // namespace fabric
