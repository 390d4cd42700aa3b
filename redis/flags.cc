#include "redis/flags.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "redis/options.h"

ABSL_FLAG(std::string, redis, "redis://127.0.0.1:6379",
          "Redis URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] of a standalone server or "
          "of any node of a Redis Cluster (told apart by INFO cluster), or a comma-separated "
          "list of seed nodes, redis://[[USER]:PASSWORD@]HOST:PORT,HOST:PORT,...; the "
          "binary starts at once and keeps trying them (health NOT_SERVING until one answers)");
ABSL_FLAG(int32_t, redis_min_replicas_acked, 0,
          "Durability on a replicated Redis (Cluster replicas, or a standalone master's): "
          "every write waits (WAIT) until this many replicas have it, up to "
          "--redis_replicas_timeout; one that they do not acknowledge in time fails with "
          "UNAVAILABLE, never OK. 0: asynchronous replication (an acknowledged write is lost "
          "if its master dies before a replica has it)");
ABSL_FLAG(absl::Duration, redis_replicas_timeout, absl::Milliseconds(500),
          "Longest wait for --redis_min_replicas_acked replicas (shorter than --redis_timeout)");

namespace taskmesh::redis {

absl::Status CheckSharedFlags(absl::Duration redis_timeout) {
  if (absl::StatusOr<std::vector<ConnectionOptions>> seeds = ParseRedisSeeds(UrlFlag());
      !seeds.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--redis: ", seeds.status().message()));
  }
  if (absl::GetFlag(FLAGS_redis_min_replicas_acked) < 0) {
    return absl::InvalidArgumentError("--redis_min_replicas_acked must be >= 0");
  }
  const absl::Duration timeout = absl::GetFlag(FLAGS_redis_replicas_timeout);
  if (timeout <= absl::ZeroDuration() || timeout >= redis_timeout) {
    return absl::InvalidArgumentError(
        "--redis_replicas_timeout must be positive and shorter than --redis_timeout");
  }
  return absl::OkStatus();
}

void ApplySharedFlags(ClientOptions& options) {
  options.min_replicas_acked = absl::GetFlag(FLAGS_redis_min_replicas_acked);
  options.replicas_timeout = absl::GetFlag(FLAGS_redis_replicas_timeout);
}

std::string UrlFlag() { return absl::GetFlag(FLAGS_redis); }

std::string UrlFlagForLogs() {
  absl::StatusOr<std::vector<ConnectionOptions>> seeds = ParseRedisSeeds(UrlFlag());
  if (!seeds.ok()) return "(invalid)";
  std::string out;
  for (const ConnectionOptions& seed : *seeds) {
    absl::StrAppend(&out, out.empty() ? "" : ",", DescribeEndpoint(seed));
  }
  return out;
}

}  // namespace taskmesh::redis
