// The --redis flags that every binary talking to Redis shares (task_service
// and the worker): where Redis is, and how many replicas a write waits for.
// Each binary keeps its own --redis_timeout and --redis_connections (their
// meaning differs a little per binary).
//
// Example (main.cc):
//   RETURN_IF_ERROR(redis::CheckSharedFlags(absl::GetFlag(FLAGS_redis_timeout)));
//   redis::ClientOptions options;
//   redis::ApplySharedFlags(options);
//   auto redis = redis::AutoClient::Create(redis::UrlFlag(), options);
#ifndef TASKMESH_REDIS_FLAGS_H_
#define TASKMESH_REDIS_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "redis/commands.h"

ABSL_DECLARE_FLAG(std::string, redis);
ABSL_DECLARE_FLAG(int32_t, redis_min_replicas_acked);
ABSL_DECLARE_FLAG(absl::Duration, redis_replicas_timeout);

namespace taskmesh::redis {

// Checks --redis (a URL or a seed list) and the replica flags, the latter
// against `redis_timeout`; INVALID_ARGUMENT naming the flag.
absl::Status CheckSharedFlags(absl::Duration redis_timeout);

// Sets options.min_replicas_acked and options.replicas_timeout.
void ApplySharedFlags(ClientOptions& options);

// --redis.
std::string UrlFlag();

// --redis without passwords, for logs.
std::string UrlFlagForLogs();

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_FLAGS_H_
