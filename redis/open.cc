#include "redis/open.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "redis/client.h"
#include "redis/cluster_client.h"
#include "redis/connection.h"
#include "redis/options.h"

namespace taskmesh::redis {
namespace {

// `cluster_enabled:1` in an INFO reply.
bool ClusterEnabled(const std::string& info) {
  for (absl::string_view line : absl::StrSplit(info, absl::ByAnyChar("\r\n"), absl::SkipEmpty())) {
    if (line == "cluster_enabled:1") return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<ConnectionOptions>> Seeds(absl::string_view url_or_seeds,
                                                     const ClientOptions& options) {
  ASSIGN_OR_RETURN(std::vector<ConnectionOptions> seeds, ParseRedisSeeds(url_or_seeds));
  for (ConnectionOptions& seed : seeds) {
    seed.connect_timeout = options.connection.connect_timeout;
    seed.command_timeout = options.connection.command_timeout;
  }
  return seeds;
}

absl::StatusOr<Mode> DetectMode(absl::string_view url_or_seeds, const ClientOptions& options) {
  Mode mode;
  ASSIGN_OR_RETURN(mode.seeds, Seeds(url_or_seeds, options));
  std::vector<std::string> errors;
  for (size_t i = 0; i < mode.seeds.size(); ++i) {
    // The probe stays on database 0: a cluster node refuses SELECT, and
    // ClusterClient::Connect says why a database is wrong there.
    ConnectionOptions probe = mode.seeds[i];
    probe.db = 0;
    absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Connect(probe);
    if (!conn.ok()) {
      if (!absl::IsUnavailable(conn.status())) return conn.status();
      errors.push_back(std::string(conn.status().message()));
      continue;
    }
    absl::StatusOr<Reply> info = (*conn)->Command({"INFO", "cluster"});
    if (!info.ok()) {
      errors.push_back(std::string(info.status().message()));
      continue;
    }
    RETURN_IF_ERROR(info->ToStatus());
    mode.cluster = ClusterEnabled(info->str());
    // The seed that answered first is asked first.
    std::swap(mode.seeds[0], mode.seeds[i]);
    return mode;
  }
  return absl::UnavailableError(absl::StrCat("redis: no seed of ", mode.seeds.size(),
                                             " answered: ", absl::StrJoin(errors, "; ")));
}

absl::StatusOr<std::unique_ptr<Commands>> Open(absl::string_view url_or_seeds,
                                               const ClientOptions& options) {
  ASSIGN_OR_RETURN(Mode mode, DetectMode(url_or_seeds, options));
  ClientOptions o = options;
  if (!mode.cluster) {
    o.connection = mode.seeds[0];
    return std::unique_ptr<Commands>(std::make_unique<Client>(std::move(o)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ClusterClient> cluster,
                   ClusterClient::Connect(mode.seeds, std::move(o)));
  return std::unique_ptr<Commands>(std::move(cluster));
}

}  // namespace taskmesh::redis
