// The process's limit on open files (RLIMIT_NOFILE). Every agent keeps one
// connection to the manager, and every client one more, so a manager for N
// nodes needs more than N descriptors. Many systems start a service with a
// soft limit of 1,024 (systemd's default) while allowing far more (its hard
// limit, 524,288 on Debian 12): such a manager would refuse the connection
// of its 1,000th-odd agent. Like Go's runtime (and so etcd), the manager
// raises its soft limit to the hard one at startup.
//
// Thread-compatible: call before other threads open files.
#ifndef FABRIC_COMMON_FD_LIMIT_H_
#define FABRIC_COMMON_FD_LIMIT_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace fabric {

struct OpenFileLimit {
  uint64_t before = 0;  // the soft limit found
  uint64_t after = 0;   // the soft limit now
};

// Raises the soft RLIMIT_NOFILE to the hard limit (an unlimited hard limit
// counts as kUnlimitedTarget, since the kernel caps descriptors at
// fs.nr_open). Never lowers it. The error of getrlimit or setrlimit (errno
// text) if the limits cannot be read or raised.
inline constexpr uint64_t kUnlimitedTarget = uint64_t{1} << 20;
absl::StatusOr<OpenFileLimit> RaiseOpenFileLimit();

}  // namespace fabric

#endif  // FABRIC_COMMON_FD_LIMIT_H_
