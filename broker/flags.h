// The queue-protocol flag both binaries share (task_service and the worker):
// --partition_limits, the partitions each queue's autoscaler watches
// (broker/partitions.h, PartitionLimits). The task_service refuses more; the
// worker readies that many partitions' streams at start, so the autoscaler's
// triggers on them read a lag of 0, not an error, before the queue is
// partitioned.
#ifndef TASKMESH_BROKER_FLAGS_H_
#define TASKMESH_BROKER_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "broker/partitions.h"

ABSL_DECLARE_FLAG(std::string, partition_limits);

namespace taskmesh::broker {

// --partition_limits, parsed; INVALID_ARGUMENT naming the flag.
absl::StatusOr<PartitionLimits> PartitionLimitsFlag();

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_FLAGS_H_
