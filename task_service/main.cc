// task_service: the gRPC TaskService in front of Redis Streams.
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "broker/broker.h"
#include "broker/flags.h"
#include "common/flags.h"
#include "common/health.h"
#include "common/metrics_server.h"
#include "common/logging.h"
#include "common/shutdown.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "redis/commands.h"
#include "redis/flags.h"
#include "redis/auto_client.h"
#include "redis/options.h"
#include "task_service/service.h"
#include "broker/watch_hub.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC address (HOST:PORT) for TaskService, grpc.health.v1 and reflection");
ABSL_FLAG(int32_t, max_concurrent_streams, 1000,
          "Most RPCs in flight on one client connection (HTTP/2 "
          "SETTINGS_MAX_CONCURRENT_STREAMS; open WatchTask streams count); more wait "
          "at the client, so an overloaded server's memory stays bounded");
ABSL_FLAG(int32_t, redis_connections, 2,
          "Redis connections; the commands of concurrent RPCs are pipelined on them");
ABSL_FLAG(int32_t, redis_max_batch, 512,
          "Most commands written to a Redis connection in one round trip");
ABSL_FLAG(absl::Duration, redis_batch_window, absl::ZeroDuration(),
          "How long a Redis connection that has fewer than --redis_max_batch commands "
          "waits for more before writing them (0: write at once)");
ABSL_FLAG(int32_t, redis_max_queued, 100000,
          "Most Redis commands waiting to be written; beyond it RPCs fail at once with "
          "RESOURCE_EXHAUSTED (0: no limit)");
ABSL_FLAG(absl::Duration, redis_timeout, absl::Seconds(2),
          "Longest wait for a Redis reply; past it the RPC fails with UNAVAILABLE");
ABSL_FLAG(absl::Duration, retention, absl::Hours(24 * 7),
          "How long finished tasks and idempotency records (request_id) are kept");
ABSL_FLAG(std::string, metrics_listen, "",
          "Address (IPV4:PORT, e.g. 0.0.0.0:9464) of the Prometheus /metrics endpoint; "
          "empty: off");
ABSL_FLAG(int32_t, default_max_attempts, 3,
          "Attempts for tasks that do not set max_attempts (1-100)");

namespace taskmesh {
namespace {

int Main() {
  log::SetComponent("task_service");
  const std::string listen = absl::GetFlag(FLAGS_listen);
  if (absl::Status s = redis::CheckSharedFlags(absl::GetFlag(FLAGS_redis_timeout)); !s.ok()) {
    std::fprintf(stderr, "ERROR: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<broker::PartitionLimits> partition_limits = broker::PartitionLimitsFlag();
  if (!partition_limits.ok()) {
    std::fprintf(stderr, "ERROR: %s\n", std::string(partition_limits.status().message()).c_str());
    return 2;
  }
  const int max_attempts = absl::GetFlag(FLAGS_default_max_attempts);
  if (max_attempts < 1 || max_attempts > 100) {
    std::fprintf(stderr, "ERROR: --default_max_attempts must be 1-100\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_redis_connections) < 1) {
    std::fprintf(stderr, "ERROR: --redis_connections must be at least 1\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_max_concurrent_streams) < 1) {
    std::fprintf(stderr, "ERROR: --max_concurrent_streams must be at least 1\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_redis_max_batch) < 1) {
    std::fprintf(stderr, "ERROR: --redis_max_batch must be at least 1\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_redis_batch_window) < absl::ZeroDuration() ||
      absl::GetFlag(FLAGS_redis_batch_window) > absl::Milliseconds(100)) {
    std::fprintf(stderr, "ERROR: --redis_batch_window must be 0 to 100ms\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_redis_max_queued) < 0) {
    std::fprintf(stderr, "ERROR: --redis_max_queued must be 0 (no limit) or more\n");
    return 2;
  }

  // Debian's Abseil is built with deadlock detection on: measured at about
  // 4% of a request's CPU (bench/RESULTS.md). Lock order is kept by design.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  BlockShutdownSignals();
  redis::ClientOptions client_options;
  client_options.connection.command_timeout = absl::GetFlag(FLAGS_redis_timeout);
  redis::ApplySharedFlags(client_options);
  client_options.connections = absl::GetFlag(FLAGS_redis_connections);
  client_options.max_batch = absl::GetFlag(FLAGS_redis_max_batch);
  client_options.batch_window = absl::GetFlag(FLAGS_redis_batch_window);
  client_options.max_queued = absl::GetFlag(FLAGS_redis_max_queued);
  // A standalone server or a Redis Cluster (INFO cluster, once one answers;
  // until then RPCs fail with UNAVAILABLE and health is NOT_SERVING).
  absl::StatusOr<std::unique_ptr<redis::AutoClient>> opened =
      redis::AutoClient::Create(redis::UrlFlag(), client_options);
  if (!opened.ok()) {
    std::fprintf(stderr, "ERROR: --redis: %s\n", std::string(opened.status().message()).c_str());
    return 2;
  }
  redis::Commands& client = **opened;
  broker::BrokerOptions broker_options;
  broker_options.default_max_attempts = max_attempts;
  broker_options.retention = absl::GetFlag(FLAGS_retention);
  broker_options.partition_limits = *std::move(partition_limits);
  broker::Broker broker(&client, broker_options);
  // Task events: on the server, or on the node serving each queue's slot.
  broker::WatchHub hub(client.options().connection, [&client](const std::string& channel) {
    absl::StatusOr<redis::ConnectionOptions> node = client.NodeForKey(channel);
    return node.ok() ? *node : client.options().connection;
  });
  task_service::TaskServiceImpl service(&broker, &hub);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             absl::GetFlag(FLAGS_max_concurrent_streams));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ERROR: --listen: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  log::Info("serving", {{"listen", listen},
                        {"port", absl::StrCat(port)},
                        {"redis", redis::UrlFlagForLogs()}});

  // Readiness follows Redis: NOT_SERVING while Redis is unreachable.
  HealthReporter health(
      server->GetHealthCheckService(),
      [&] { return client.connected() && hub.connected(); },
      {"taskmesh.v1.TaskService"});

  std::unique_ptr<MetricsServer> metrics;
  if (const std::string address = absl::GetFlag(FLAGS_metrics_listen); !address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> m = MetricsServer::Start(address, [&] {
      return PrometheusFamily("taskmesh_task_service_redis_connected", "gauge",
                              "1 while a Redis connection is up.",
                              {{"", client.connected() ? 1 : 0}}) +
             PrometheusFamily("taskmesh_task_service_watch_streams", "gauge",
                              "Open WatchTask streams.", {{"", hub.listeners()}});
    });
    if (!m.ok()) {
      std::fprintf(stderr, "ERROR: --metrics_listen: %s\n",
                   std::string(m.status().message()).c_str());
      return 2;
    }
    metrics = *std::move(m);
    log::Info("metrics serving", {{"listen", address}, {"port", absl::StrCat(metrics->port())}});
  }

  const int sig = WaitForShutdownSignal();
  log::Info("shutting down", {{"signal", absl::StrCat(sig)}});
  health.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  log::Info("stopped");
  return 0;
}

}  // namespace
}  // namespace taskmesh

int main(int argc, char** argv) {
  taskmesh::ParseFlags(argc, argv,
                       "task_service: the taskmesh gRPC TaskService; enqueues tasks on Redis "
                       "Streams.\n\nUsage: task_service --listen=HOST:PORT "
                       "--redis=redis://HOST:PORT[/DB]");
  return taskmesh::Main();
}
