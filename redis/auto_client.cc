#include "redis/auto_client.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "common/logging.h"
#include "redis/open.h"
#include "redis/options.h"

namespace taskmesh::redis {

absl::StatusOr<std::unique_ptr<AutoClient>> AutoClient::Create(const std::string& url_or_seeds,
                                                               ClientOptions options) {
  absl::StatusOr<std::vector<ConnectionOptions>> seeds = ParseRedisSeeds(url_or_seeds);
  if (!seeds.ok()) return seeds.status();
  ConnectionOptions first = (*seeds)[0];
  first.connect_timeout = options.connection.connect_timeout;
  first.command_timeout = options.connection.command_timeout;
  return std::unique_ptr<AutoClient>(new AutoClient(url_or_seeds, std::move(options), first));
}

AutoClient::AutoClient(std::string url, ClientOptions options, const ConnectionOptions& first_seed)
    : url_(std::move(url)), options_(std::move(options)) {
  ClientOptions o = options_;
  o.connection = first_seed;
  standalone_ = std::make_unique<Client>(std::move(o));
  active_.store(standalone_.get());
  detector_ = std::thread([this] { Detect(); });
}

AutoClient::~AutoClient() {
  stop_.Notify();
  detector_.join();
  // The cluster's node Clients first, then the first seed's.
  cluster_.reset();
  standalone_.reset();
}

void AutoClient::Detect() {
  absl::Duration backoff = absl::Milliseconds(100);
  bool logged = false;
  while (!stop_.notified()) {
    absl::StatusOr<std::unique_ptr<Commands>> opened = Open(url_, options_);
    if (opened.ok()) {
      if ((*opened)->cluster()) {
        cluster_ = *std::move(opened);
        active_.store(cluster_.get());
      }
      // A standalone server: the first seed's Client already is the one.
      known_.store(true);
      log::Info("redis mode known", {{"redis_mode", cluster() ? "cluster" : "standalone"},
                                     {"redis", DescribeEndpoint(options().connection)}});
      return;
    }
    if (!absl::IsUnavailable(opened.status())) {
      // NOPERM for INFO, a database on a cluster: say so, and stay on the
      // first seed (its commands fail with the server's own errors).
      log::Error("redis: cannot tell standalone from cluster",
                 {{"error", opened.status().message()}});
      known_.store(true);
      return;
    }
    if (!logged) {
      log::Warning("waiting for redis", {{"error", opened.status().message()}});
      logged = true;
    }
    if (stop_.WaitFor(backoff)) return;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace taskmesh::redis
