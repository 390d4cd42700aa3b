// AutoClient: redis::Commands for a --redis that may name a standalone
// server or a Redis Cluster, usable before Redis answers.
//
// Which one it is can only be told once a seed answers (INFO cluster,
// redis::DetectMode). Until then commands go to a standalone Client on the
// first seed, which fails them fast with UNAVAILABLE while Redis is
// unreachable (as a Client does) and reconnects by itself; a background
// thread asks the seeds with backoff. When a seed answers: a cluster node
// gets a ClusterClient, a standalone first seed keeps its Client, a
// standalone later seed (the first down) gets one of its own. So a binary
// starts, serves its health (NOT_SERVING: connected() stays false until the
// mode is known) and becomes ready when Redis does, whichever comes first.
//
// Thread-safe. Callbacks follow redis::Client's rules (redis/commands.h).
//
// Example (main.cc):
//   ASSIGN_OR_RETURN(auto redis, redis::AutoClient::Create(flag_redis, options));
//   broker::Broker broker(redis.get(), broker_options);
#ifndef TASKMESH_REDIS_AUTO_CLIENT_H_
#define TASKMESH_REDIS_AUTO_CLIENT_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/stop_signal.h"
#include "redis/client.h"
#include "redis/commands.h"

namespace taskmesh::redis {

class AutoClient final : public Commands {
 public:
  // INVALID_ARGUMENT for a bad --redis (nothing is started then).
  static absl::StatusOr<std::unique_ptr<AutoClient>> Create(const std::string& url_or_seeds,
                                                            ClientOptions options);
  ~AutoClient() override;

  void Send(Args args, Callback done) override { active()->Send(std::move(args), std::move(done)); }
  void Eval(const Script& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, Callback done) override {
    active()->Eval(script, keys, args, std::move(done));
  }
  // False until the mode is known.
  bool connected() const override { return known_.load() && active()->connected(); }
  const ClientOptions& options() const override { return active()->options(); }
  bool cluster() const override { return active()->cluster(); }
  absl::StatusOr<ConnectionOptions> NodeForKey(absl::string_view key) const override {
    return active()->NodeForKey(key);
  }
  std::vector<ConnectionOptions> Masters() const override { return active()->Masters(); }

  // True once a seed answered and the mode is known.
  bool known() const { return known_.load(); }

 private:
  AutoClient(std::string url, ClientOptions options, const ConnectionOptions& first_seed);
  void Detect();
  Commands* active() const { return active_.load(); }

  const std::string url_;
  const ClientOptions options_;
  const ConnectionOptions first_;
  // The first seed's Client, where commands go until the mode is known.
  std::unique_ptr<Client> standalone_;
  // What a seed's INFO cluster asked for, when not the first seed's Client:
  // a ClusterClient, or a Client on a later seed (the first was down).
  std::unique_ptr<Commands> detected_;
  std::atomic<Commands*> active_;
  std::atomic<bool> known_{false};
  StopSignal stop_;
  std::thread detector_;
};

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_AUTO_CLIENT_H_
