// Mesh: the taskmesh processes for end-to-end and fault tests, started on
// loopback: a private redis-server (or, with `cluster`, a private 3 + 3
// Redis Cluster), the real task_service (gRPC), and any number of worker
// processes (the real worker or a test build of it), each a Process that a
// test can signal, kill and restart.
//
// Logs (and anything else a test writes into dir()) go to the test's
// undeclared outputs folder when Bazel gives one, so that they are kept
// after a failure (bazel-testlogs/.../test.outputs/outputs.zip).
//
// Not thread-safe, except Create/Get/Batch* (gRPC stubs are thread-safe).
//
// Example:
//   auto mesh = Mesh::Start({.redis = {.appendonly = true}}).value();
//   auto w = mesh->StartWorker({BinaryPath("workers/worker"), "w1", {"--queues=q"}}).value();
//   v1::Task task;
//   mesh->Create(request, &task);
#ifndef TASKMESH_TESTS_SUPPORT_MESH_H_
#define TASKMESH_TESTS_SUPPORT_MESH_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "redis/reply.h"
#include "taskmesh/v1/task_service.grpc.pb.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_server.h"

namespace taskmesh::testing {

struct MeshOptions {
  RedisServerOptions redis;
  // A Redis Cluster (RedisCluster's defaults) instead of `redis`; the
  // binaries get every node as seeds.
  bool cluster = false;
  // Extra flags for the task_service.
  std::vector<std::string> service_flags;
};

struct WorkerSpec {
  // Path of the worker binary (BinaryPath("workers/worker") or a test build).
  std::string binary;
  // --consumer, and the name of its log file (CONSUMER.log in dir()).
  std::string consumer;
  // Further flags; --redis, --consumer and --health_listen are added.
  std::vector<std::string> flags;
  // "NAME=value" entries added to the environment (e.g. LD_PRELOAD).
  std::vector<std::string> env;
};

class Mesh {
 public:
  static absl::StatusOr<std::unique_ptr<Mesh>> Start(MeshOptions options = {});
  ~Mesh();

  // The standalone server (not with `cluster`).
  RedisServer& redis() { return *redis_; }
  // The cluster (only with `cluster`).
  RedisCluster& cluster() { return *cluster_; }
  // What the binaries get as --redis.
  const std::string& redis_url() const { return redis_url_; }
  Process& service() { return *service_; }
  v1::TaskService::Stub& stub() { return *stub_; }
  // The task_service's gRPC address (127.0.0.1:PORT).
  const std::string& address() const { return address_; }
  // Where logs go: the undeclared outputs folder, else a temporary folder.
  const std::string& dir() const { return dir_; }

  absl::StatusOr<std::unique_ptr<Process>> StartWorker(const WorkerSpec& spec);

  grpc::Status Create(const v1::CreateTaskRequest& request, v1::Task* task,
                      absl::Duration deadline = absl::Seconds(5));
  grpc::Status Get(const std::string& name, v1::Task* task,
                   absl::Duration deadline = absl::Seconds(2));

  // Polls GetTask until every task is terminal (SUCCEEDED, FAILED,
  // CANCELLED) or `timeout` passes; returns the last state read of each.
  // With `not_found`, a task read NOT_FOUND three times in a row also
  // counts as final (a failover lost it) and goes there.
  std::map<std::string, v1::Task> AwaitTerminal(const std::vector<std::string>& names,
                                                absl::Duration timeout,
                                                std::set<std::string>* not_found = nullptr);

  // One command on a fresh connection to the mesh's redis-server (with
  // `cluster`: to the master serving the command's key, redis::RoutingKey).
  absl::StatusOr<redis::Reply> RedisCommand(const std::vector<std::string>& args);

 private:
  Mesh() = default;

  std::string dir_;
  std::string address_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<RedisCluster> cluster_;
  std::string redis_url_;
  std::unique_ptr<Process> service_;
  std::unique_ptr<v1::TaskService::Stub> stub_;
};

bool IsTerminal(v1::Task::State state);

// The port of a worker's grpc.health.v1 service (started with
// --health_listen=127.0.0.1:0), from its log; 0 while not yet known.
int WorkerHealthPort(const Process& worker);

// True when the worker's health service answers SERVING (its fetch
// connection to Redis is up, so it is fetching).
bool WorkerServing(const Process& worker);

// The folder a test should keep its evidence in: $TEST_UNDECLARED_OUTPUTS_DIR,
// else TestTempDir().
std::string OutputDir();

}  // namespace taskmesh::testing

#endif  // TASKMESH_TESTS_SUPPORT_MESH_H_
