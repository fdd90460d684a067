// The one place where absl::Status and grpc::Status are converted.
#ifndef FABRIC_COMMON_GRPC_STATUS_H_
#define FABRIC_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace fabric {

// Canonical codes map one to one; the message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace fabric

#endif  // FABRIC_COMMON_GRPC_STATUS_H_
