// RedisServer: a private, real redis-server (Debian's /usr/bin/redis-server)
// for integration and fault tests, on a free loopback port with its data in
// the test's temporary folder.
//
// Example:
//   auto redis = RedisServer::Start().value();
//   redis::Client client({.connection = redis->options()});
//   redis->Kill();      // kill -9
//   redis->Restart();   // same port, same data (AOF)
#ifndef TASKMESH_TESTS_SUPPORT_REDIS_SERVER_H_
#define TASKMESH_TESTS_SUPPORT_REDIS_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "redis/options.h"
#include "tests/support/process.h"

namespace taskmesh::testing {

struct RedisServerOptions {
  // appendonly yes + appendfsync always: nothing acknowledged is lost on kill -9.
  bool appendonly = false;
  // Extra `--name value` arguments for redis-server.
  std::vector<std::string> extra_args;
};

class RedisServer {
 public:
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});

  int port() const { return port_; }
  std::string url() const;
  redis::ConnectionOptions options() const;
  Process& process() { return *process_; }

  // SIGKILL, then wait until it is gone.
  absl::Status Kill();
  // Starts again on the same port with the same data folder.
  absl::Status Restart();

 private:
  RedisServer(RedisServerOptions options, std::string dir, int port)
      : options_(std::move(options)), dir_(std::move(dir)), port_(port) {}
  absl::Status Launch();

  RedisServerOptions options_;
  std::string dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

}  // namespace taskmesh::testing

#endif  // TASKMESH_TESTS_SUPPORT_REDIS_SERVER_H_
