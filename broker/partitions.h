// Partitioned queues: one queue spread over K partitions, each its own queue
// in the Redis layout (keys.h) and so its own hash slot, so that one hot
// queue can use several Redis Cluster masters.
//
// Partition 0 is the queue itself (`Q`, keys `taskmesh:{Q}:...`); partition
// p > 0 is `Q~p` (keys `taskmesh:{Q~p}:...`). Queue names cannot hold '~'
// (the API's rule, [A-Za-z0-9_-]), so a partition's name never collides with
// a queue's. A queue that was never partitioned is its own only partition:
// nothing about it changes.
//
// K and every K the queue ever had live in partition 0's meta hash (fields
// `partitions` and `phist`). A task is created in partition
// PartitionFor(id, K) and never moves; a task created under an earlier K is
// found through the history (Candidates()). Workers fetch from every
// partition that may hold tasks (0 .. highest K ever - 1), so lowering K
// strands nothing: the old partitions drain and stay read.
#ifndef TASKMESH_BROKER_PARTITIONS_H_
#define TASKMESH_BROKER_PARTITIONS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "redis/reply.h"

namespace taskmesh::broker {

inline constexpr int kMaxPartitions = 64;

// `Q` for p == 0, else `Q~p`.
std::string PartitionName(absl::string_view queue, int partition);

// The queue a partition belongs to (`Q~3` -> `Q`); a queue's name is its own.
absl::string_view QueueOfPartition(absl::string_view name);

// True for `Q~p` with p > 0.
bool IsPartitionName(absl::string_view name);

// The partition of task `id` among `count`: a stable hash (FNV-1a), the same
// in every process and release.
int PartitionFor(absl::string_view id, int count);

struct PartitionMap {
  // Partitions new tasks are spread over.
  int count = 1;
  // Every count the queue has had, in the order first set; holds `count`.
  std::vector<int> history = {1};

  // Partitions 0 .. highest() - 1 may hold tasks.
  int highest() const;
  // Where task `id` may be, most likely first: its partition under `count`,
  // then under each earlier count. Always holds partition 0.
  std::vector<int> Candidates(absl::string_view id) const;
  // The names of partitions 0 .. highest() - 1 of `queue`.
  std::vector<std::string> Names(absl::string_view queue) const;
  // `phist` as stored: the counts, comma-separated.
  std::string HistoryText() const;
};

// The most partitions each queue may have, where a deployment's autoscaler
// watches a fixed set of streams (the chart's KEDA triggers per partition:
// workers.pools[].partitions): a queue given more partitions than its
// triggers see could hold tasks no trigger counts, and a pool at zero would
// never wake for them. Queues not listed: kMaxPartitions.
using PartitionLimits = std::map<std::string, int>;

// "QUEUE=K,QUEUE=K" (the --partition_limits flag); INVALID_ARGUMENT naming
// the bad entry.
absl::StatusOr<PartitionLimits> ParsePartitionLimits(absl::string_view text);

// Reads partition 0's meta fields (ReadPartitionsArgs' reply).
absl::StatusOr<PartitionMap> ParsePartitionMap(const redis::Reply& reply);
// HMGET of the fields ParsePartitionMap reads.
std::vector<std::string> ReadPartitionsArgs(absl::string_view queue);

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_PARTITIONS_H_
