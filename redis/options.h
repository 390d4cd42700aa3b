// Where and how to reach Redis: parsed from a `redis://` URL plus timeouts.
//
// Example:
//   ASSIGN_OR_RETURN(ConnectionOptions options,
//                    ParseRedisUrl("redis://:secret@127.0.0.1:6379/2"));
#ifndef TASKMESH_REDIS_OPTIONS_H_
#define TASKMESH_REDIS_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace taskmesh::redis {

struct ConnectionOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  // ACL user (Redis 6+); empty means the default user.
  std::string username;
  // Empty means no AUTH.
  std::string password;
  // Bounds the TCP connect plus AUTH/SELECT.
  absl::Duration connect_timeout = absl::Seconds(1);
  // Bounds each read and write; a command that takes longer fails with
  // UNAVAILABLE and the connection is dropped.
  absl::Duration command_timeout = absl::Seconds(2);
};

// Parses `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`. Percent-escapes in the
// user and password are decoded; a lone `redis://SECRET@HOST` is a password.
// An IPv6 HOST goes in brackets: `redis://[::1]:6379`. PORT is 1-65535, DB
// 0-15 (Redis's default database count), both plain decimal digits. TLS (`rediss://`) is not supported: hiredis
// 0.14 has no TLS; put a TLS tunnel (stunnel) in front of Redis instead.
absl::StatusOr<ConnectionOptions> ParseRedisUrl(absl::string_view url);

// Parses a seed list for a Redis Cluster (or one server):
//   redis://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]
//   redis://[USER:PASSWORD@]HOST:PORT[,redis://[USER:PASSWORD@]HOST:PORT...]
// A bare HOST:PORT takes the user, password and database of the first seed.
// One URL without a list is parsed exactly as ParseRedisUrl does (a raw ','
// in its password is kept); in a list, write a ',' in a password as %2C.
absl::StatusOr<std::vector<ConnectionOptions>> ParseRedisSeeds(absl::string_view seeds);

// `host:port/db` for logs: never includes the password.
std::string DescribeEndpoint(const ConnectionOptions& options);

// `host:port` (an IPv6 host in brackets): which server, e.g. as a map key.
std::string HostPort(const ConnectionOptions& options);

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_OPTIONS_H_
