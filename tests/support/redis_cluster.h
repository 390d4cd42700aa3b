// RedisCluster: a private, real Redis Cluster (Debian's /usr/bin/redis-server
// and redis-cli) for integration and fault tests: 3 masters and 3 replicas on
// free loopback ports, each node in its own folder under the test's
// temporary folder.
//
// Start() creates the cluster with `redis-cli --cluster create` and returns
// once every node reports cluster_state:ok, all 16384 slots are covered and
// every replica is in sync with its master (polled with a deadline, no fixed
// sleeps). The fault injections (Kill, Restart) and slot moves (Reshard,
// Begin/FinishSlotMigration) are what the cluster client's tests need.
//
// Not thread-safe. The destructor kills (SIGKILL) every node it started.
//
// Example:
//   auto cluster = RedisCluster::Start().value();
//   auto client = redis::Open(cluster->seeds(), options).value();
//   int master = cluster->MasterOfSlot(redis::KeySlot("k")).value();
//   cluster->Kill(master);           // kill -9; its replica takes over
//   cluster->WaitHealthy();          // bounded: the replica was promoted
//   cluster->Restart(master);        // rejoins, as a replica
#ifndef TASKMESH_TESTS_SUPPORT_REDIS_CLUSTER_H_
#define TASKMESH_TESTS_SUPPORT_REDIS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "redis/connection.h"
#include "redis/options.h"
#include "redis/reply.h"
#include "tests/support/process.h"

namespace taskmesh::testing {

struct RedisClusterOptions {
  int masters = 3;
  int replicas_per_master = 1;
  // Extra `--name value` arguments for every redis-server.
  std::vector<std::string> extra_args;
};

class RedisCluster {
 public:
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start(RedisClusterOptions options = {});
  ~RedisCluster() = default;

  // Nodes are numbered 0..size()-1 in creation order; redis-cli makes the
  // first `masters` of them masters.
  int size() const { return static_cast<int>(nodes_.size()); }
  int port(int node) const { return nodes_[node].port; }
  redis::ConnectionOptions options(int node) const;
  // redis://127.0.0.1:PORT
  std::string url(int node) const;
  // Every node as a seed list: redis://127.0.0.1:P0,127.0.0.1:P1,...
  std::string seeds() const;

  // kill -9, then wait until it is gone.
  absl::Status Kill(int node);
  // Starts a killed node again on its port with its nodes.conf (it rejoins
  // the cluster, as a replica if it was failed over meanwhile).
  absl::Status Restart(int node);
  bool running(int node) const;

  // One command on a fresh connection to `node`.
  absl::StatusOr<redis::Reply> Command(int node, const redis::Args& args) const;
  absl::StatusOr<std::string> NodeId(int node) const;

  // The node serving `slot` as master, as a live node sees it; -1 if none.
  absl::StatusOr<int> MasterOfSlot(int slot) const;
  // The nodes that are masters with slots, as a live node sees it.
  absl::StatusOr<std::vector<int>> Masters() const;

  // Waits until every running node reports cluster_state:ok with all slots
  // assigned and ok, knows every node, and each running replica's link to
  // its master is up.
  absl::Status WaitHealthy(absl::Duration timeout = absl::Seconds(30)) const;

  // `redis-cli --cluster reshard`: moves `slots` slots (with their keys) from
  // master `from` to master `to`, then waits until every node agrees.
  absl::Status Reshard(int from, int to, int slots);
  // The steps of a manual slot move, so that a test can act between them:
  // Begin marks `slot` IMPORTING on `to` and MIGRATING on `from` (clients
  // now get ASK for keys `from` no longer has); Finish MIGRATEs the slot's
  // keys and assigns the slot to `to` on every master (clients get MOVED).
  absl::Status BeginSlotMigration(int slot, int from, int to);
  absl::Status FinishSlotMigration(int slot, int from, int to);

 private:
  struct Node {
    int port = 0;
    std::string dir;
    std::unique_ptr<Process> process;
  };

  explicit RedisCluster(RedisClusterOptions options) : options_(std::move(options)) {}
  absl::Status Launch(int node);
  absl::Status RunRedisCli(const std::vector<std::string>& args, absl::Duration timeout) const;
  // A running node to ask about the cluster.
  absl::StatusOr<int> AnyRunning() const;
  // The node listening on `port`, or -1.
  int NodeOfPort(int port) const;

  RedisClusterOptions options_;
  std::string dir_;
  std::vector<Node> nodes_;
};

}  // namespace taskmesh::testing

#endif  // TASKMESH_TESTS_SUPPORT_REDIS_CLUSTER_H_
