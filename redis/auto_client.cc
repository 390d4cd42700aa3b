#include "redis/auto_client.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "common/backoff.h"
#include "common/logging.h"
#include "redis/cluster_client.h"
#include "redis/open.h"
#include "redis/options.h"

namespace taskmesh::redis {

absl::StatusOr<std::unique_ptr<AutoClient>> AutoClient::Create(const std::string& url_or_seeds,
                                                               ClientOptions options) {
  absl::StatusOr<std::vector<ConnectionOptions>> seeds = Seeds(url_or_seeds, options);
  if (!seeds.ok()) return seeds.status();
  return std::unique_ptr<AutoClient>(new AutoClient(url_or_seeds, std::move(options), (*seeds)[0]));
}

AutoClient::AutoClient(std::string url, ClientOptions options, const ConnectionOptions& first_seed)
    : url_(std::move(url)), options_(std::move(options)), first_(first_seed) {
  ClientOptions o = options_;
  o.connection = first_;
  standalone_ = std::make_unique<Client>(std::move(o));
  active_.store(standalone_.get());
  detector_ = std::thread([this] { Detect(); });
}

AutoClient::~AutoClient() {
  stop_.Notify();
  detector_.join();
  // The detected client (a cluster's node Clients) first, then the first
  // seed's.
  detected_.reset();
  standalone_.reset();
}

void AutoClient::Detect() {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(2));
  bool logged = false;
  while (!stop_.notified()) {
    absl::StatusOr<Mode> mode = DetectMode(url_, options_);
    absl::Status status = mode.status();
    if (mode.ok() && mode->cluster) {
      absl::StatusOr<std::unique_ptr<ClusterClient>> cluster =
          ClusterClient::Connect(mode->seeds, options_);
      status = cluster.status();
      if (cluster.ok()) detected_ = *std::move(cluster);
    } else if (mode.ok() && (mode->seeds[0].host != first_.host ||
                             mode->seeds[0].port != first_.port)) {
      // A later seed answered (the first is down): a standalone Client there.
      ClientOptions o = options_;
      o.connection = mode->seeds[0];
      detected_ = std::make_unique<Client>(std::move(o));
    }
    if (status.ok()) {
      // A standalone first seed: its Client already is the one.
      if (detected_ != nullptr) active_.store(detected_.get());
      known_.store(true);
      log::Info("redis mode known", {{"redis_mode", cluster() ? "cluster" : "standalone"},
                                     {"redis", DescribeEndpoint(options().connection)}});
      return;
    }
    if (!absl::IsUnavailable(status)) {
      // NOPERM for INFO, a database on a cluster: say so, and stay on the
      // first seed (its commands fail with the server's own errors).
      log::Error("redis: cannot tell standalone from cluster",
                 {{"error", status.message()}});
      known_.store(true);
      return;
    }
    if (!logged) {
      log::Warning("waiting for redis", {{"error", status.message()}});
      logged = true;
    }
    if (stop_.WaitFor(backoff.Next())) return;
  }
}

}  // namespace taskmesh::redis
