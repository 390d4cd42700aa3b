// Open: the one place that picks a redis::Commands implementation. The same
// --redis value works for a standalone server and for any node(s) of a Redis
// Cluster: Open connects to the first seed that answers and asks it
// `INFO cluster`; `cluster_enabled:1` gives a ClusterClient, anything else
// a standalone Client.
//
// Example (main.cc):
//   redis::ClientOptions options;
//   options.connection.command_timeout = absl::GetFlag(FLAGS_redis_timeout);
//   ASSIGN_OR_RETURN(std::unique_ptr<redis::Commands> redis,
//                    redis::Open(absl::GetFlag(FLAGS_redis), options));
//   broker::Broker broker(redis.get(), broker_options);
#ifndef TASKMESH_REDIS_OPEN_H_
#define TASKMESH_REDIS_OPEN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "redis/commands.h"

namespace taskmesh::redis {

// `url_or_seeds`: one redis:// URL or a seed list (ParseRedisSeeds). Host,
// port, credentials and database come from it; timeouts and everything else
// from `options` (options.connection's host, port and credentials are
// ignored). Needs a reachable seed: UNAVAILABLE when none answers (a caller
// that may start before Redis retries), INVALID_ARGUMENT for a bad URL or a
// database other than 0 on a cluster, the INFO error (NOPERM: the ACL user
// needs INFO) when the mode cannot be told.
absl::StatusOr<std::unique_ptr<Commands>> Open(absl::string_view url_or_seeds,
                                               const ClientOptions& options);

// The seeds of `url_or_seeds` (ParseRedisSeeds) with the timeouts of
// options.connection.
absl::StatusOr<std::vector<ConnectionOptions>> Seeds(absl::string_view url_or_seeds,
                                                     const ClientOptions& options);

// What Open() finds before it builds a client: whether the first seed that
// answers is a cluster node, and the seeds with that one first. The same
// errors as Open().
struct Mode {
  bool cluster = false;
  std::vector<ConnectionOptions> seeds;
};
absl::StatusOr<Mode> DetectMode(absl::string_view url_or_seeds, const ClientOptions& options);


}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_OPEN_H_
