// The one place where absl::Status and grpc::Status are converted.
#ifndef FABRIC_COMMON_GRPC_STATUS_H_
#define FABRIC_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <cstddef>

#include "absl/status/status.h"

namespace fabric {

// The longest message ToGrpcStatus passes on, in bytes: far below gRPC's
// 8 KiB metadata limit, past which a client sees only "metadata size
// exceeds limit" instead of the error.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// Canonical codes map one to one; the message is kept, cut to
// kMaxStatusMessageBytes (on a UTF-8 boundary) when longer.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace fabric

#endif  // FABRIC_COMMON_GRPC_STATUS_H_
