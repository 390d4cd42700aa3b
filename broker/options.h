// Settings shared by both sides of the queue protocol.
#ifndef TASKMESH_BROKER_OPTIONS_H_
#define TASKMESH_BROKER_OPTIONS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace taskmesh::broker {

struct BrokerOptions {
  // Attempts for a task that does not set max_attempts.
  int default_max_attempts = 3;
  // How long finished tasks and idempotency records are kept.
  absl::Duration retention = absl::Hours(24 * 7);
  // The most partitions a queue may be given (broker/partitions.h,
  // PartitionLimits: where autoscaler triggers watch a fixed set); queues
  // not listed: up to 64.
  std::map<std::string, int> partition_limits;
};

// ARGV[1..2] of every script (see scripts.h), then `rest`.
inline std::vector<std::string> ScriptArgs(absl::string_view prefix, const BrokerOptions& o,
                                           std::vector<std::string> rest) {
  std::vector<std::string> args;
  args.reserve(2 + rest.size());
  args.emplace_back(prefix);
  args.push_back(absl::StrCat(absl::ToInt64Milliseconds(o.retention)));
  for (std::string& r : rest) args.push_back(std::move(r));
  return args;
}

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_OPTIONS_H_
