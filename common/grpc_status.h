// Conversion of absl::Status to grpc::Status at the RPC edge.
// The canonical codes are the same numbers in both.
#ifndef TASKMESH_COMMON_GRPC_STATUS_H_
#define TASKMESH_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace taskmesh {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_GRPC_STATUS_H_
