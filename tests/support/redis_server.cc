#include "tests/support/redis_server.h"

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "redis/connection.h"

namespace taskmesh::testing {

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat(TestTempDir(), "/redis-", getpid(), "-", counter++);
  mkdir(dir.c_str(), 0755);
  // A port can be taken between picking and binding: try a few.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::unique_ptr<RedisServer> server(new RedisServer(options, dir, PickUnusedPort()));
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

redis::ConnectionOptions RedisServer::options() const {
  redis::ConnectionOptions o;
  o.host = "127.0.0.1";
  o.port = port_;
  return o;
}

absl::Status RedisServer::Launch() {
  std::vector<std::string> argv = {"/usr/bin/redis-server",
                                   "--port", absl::StrCat(port_),
                                   "--bind", "127.0.0.1",
                                   "--dir", dir_,
                                   "--save", "",
                                   "--daemonize", "no",
                                   "--protected-mode", "yes"};
  if (options_.appendonly) {
    argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  }
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  ASSIGN_OR_RETURN(process_, Process::Start(argv, {}, dir_ + "/redis.log"));
  const bool up = WaitFor(absl::Seconds(10), [&] {
    if (!process_->running()) return true;
    auto conn = redis::Connection::Connect(options());
    if (!conn.ok()) return false;
    auto pong = (*conn)->Command({"PING"});
    return pong.ok() && pong->str() == "PONG";
  });
  if (!up || !process_->running()) {
    return absl::UnavailableError(
        absl::StrCat("redis-server did not start on port ", port_, ":\n", process_->Log()));
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Kill() {
  RETURN_IF_ERROR(process_->Signal(SIGKILL));
  return process_->Wait(absl::Seconds(10)).status();
}

absl::Status RedisServer::Restart() {
  if (process_ != nullptr && process_->running()) RETURN_IF_ERROR(Kill());
  return Launch();
}

}  // namespace taskmesh::testing
