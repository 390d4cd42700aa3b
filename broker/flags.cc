#include "broker/flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, partition_limits, "",
          "QUEUE=K,...: the most partitions each listed queue may have (UpdateQueue refuses "
          "more), where the workers' autoscaler watches that many partitions' streams (the "
          "chart's workers.pools[].partitions); workers create those streams at start. Unlisted "
          "queues: up to 64");

namespace taskmesh::broker {

absl::StatusOr<PartitionLimits> PartitionLimitsFlag() {
  absl::StatusOr<PartitionLimits> limits = ParsePartitionLimits(absl::GetFlag(FLAGS_partition_limits));
  if (!limits.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--partition_limits: ", limits.status().message()));
  }
  return limits;
}

}  // namespace taskmesh::broker
