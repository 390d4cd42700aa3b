#include "workers/worker_main.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "broker/broker.h"
#include "broker/flags.h"
#include "broker/consumer.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/health.h"
#include "common/metrics_server.h"
#include "common/shutdown.h"
#include "common/stop_signal.h"
#include "grpcpp/grpcpp.h"
#include "redis/commands.h"
#include "redis/flags.h"
#include "redis/auto_client.h"
#include "redis/options.h"
#include "workers/periodic.h"
#include "workers/runtime.h"

ABSL_FLAG(std::string, queues, "default", "Comma-separated queues to run tasks from");
ABSL_FLAG(int32_t, concurrency, 8, "Handler threads: the most tasks this process runs at once");
ABSL_FLAG(std::string, consumer, "",
          "Stable consumer name in the queue's group (default: HOSTNAME-PID)");
ABSL_FLAG(std::string, health_listen, "0.0.0.0:8081",
          "gRPC address for grpc.health.v1 (SERVING while connected to Redis); empty: off");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM: stop fetching and let in-flight tasks finish for this long");
ABSL_FLAG(absl::Duration, default_timeout, absl::Minutes(30),
          "Attempt timeout for tasks that set no attempt_timeout");
ABSL_FLAG(absl::Duration, redis_timeout, absl::Seconds(2),
          "Longest wait for a Redis reply before the connection is dropped and retried");
ABSL_FLAG(absl::Duration, lease, absl::Seconds(30),
          "How long a started task stays leased without a heartbeat; after it, any worker "
          "runs the task again");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(0),
          "How often leases are renewed (default: a third of --lease, at most 2s)");
ABSL_FLAG(absl::Duration, reclaim_interval, absl::Seconds(1),
          "How often tasks with expired leases are looked for");
ABSL_FLAG(int32_t, poison_after, 3,
          "Dead-letter a task whose attempts were lost (its worker crashed or froze) this "
          "many times");
ABSL_FLAG(absl::Duration, promote_interval, absl::Milliseconds(100),
          "Longest delay in moving due scheduled tasks and retries to the queue");
ABSL_FLAG(absl::Duration, retry_base, absl::Seconds(1),
          "Retry backoff base: after the n-th failed attempt, wait a random time below "
          "min(--retry_cap, base * 2^(n-1))");
ABSL_FLAG(absl::Duration, retry_cap, absl::Minutes(10), "Longest retry backoff");
ABSL_FLAG(std::string, metrics_listen, "",
          "Address (IPV4:PORT, e.g. 0.0.0.0:9464) of the Prometheus /metrics endpoint; "
          "empty: off");
ABSL_FLAG(std::string, periodic_config, "",
          "JSON file of periodic tasks (taskmesh.v1.PeriodicConfig) that this worker "
          "schedules; any number of workers may share one file, each tick runs once");
ABSL_FLAG(int32_t, redis_connections, 1,
          "Redis connections for starting and completing tasks (pipelined), besides the "
          "fetch connection");

namespace taskmesh::workers {
namespace {

std::string DefaultConsumer() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host[0] != '\0' ? host : "worker", "-", getpid());
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "ERROR: %s\n", message.c_str());
  return 2;
}

}  // namespace

int WorkerMain(int argc, char** argv,
               const std::function<void(HandlerRegistry&)>& register_handlers) {
  ParseFlags(argc, argv,
             "worker: runs taskmesh tasks from Redis Streams with a pool of handler "
             "threads.\n\nUsage: worker --redis=redis://HOST:PORT[/DB] --queues=q1,q2 "
             "--concurrency=N");
  log::SetComponent("worker");
  if (absl::Status s = redis::CheckSharedFlags(absl::GetFlag(FLAGS_redis_timeout)); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  WorkerOptions options;
  options.queues = absl::StrSplit(absl::GetFlag(FLAGS_queues), ',', absl::SkipWhitespace());
  if (options.queues.empty()) return Fail("--queues: name at least one queue");
  absl::StatusOr<broker::PartitionLimits> partition_limits = broker::PartitionLimitsFlag();
  if (!partition_limits.ok()) return Fail(std::string(partition_limits.status().message()));
  options.watched_partitions = *std::move(partition_limits);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  if (options.concurrency < 1 || options.concurrency > 4096) {
    return Fail("--concurrency must be from 1 to 4096");
  }
  broker::ConsumerOptions consumer_options;
  consumer_options.consumer = absl::GetFlag(FLAGS_consumer);
  if (consumer_options.consumer.empty()) consumer_options.consumer = DefaultConsumer();
  consumer_options.lease = absl::GetFlag(FLAGS_lease);
  if (consumer_options.lease < absl::Milliseconds(100)) return Fail("--lease must be >= 100ms");
  consumer_options.poison_after = absl::GetFlag(FLAGS_poison_after);
  if (consumer_options.poison_after < 1) return Fail("--poison_after must be >= 1");
  options.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  options.default_timeout = absl::GetFlag(FLAGS_default_timeout);
  options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    options.heartbeat_interval = std::min(consumer_options.lease / 3, absl::Seconds(2));
  }
  if (options.heartbeat_interval >= consumer_options.lease) {
    return Fail("--heartbeat_interval must be shorter than --lease");
  }
  options.reclaim_interval = absl::GetFlag(FLAGS_reclaim_interval);
  options.promote_interval = absl::GetFlag(FLAGS_promote_interval);
  options.retry_base = absl::GetFlag(FLAGS_retry_base);
  options.retry_cap = absl::GetFlag(FLAGS_retry_cap);
  if (options.reclaim_interval <= absl::ZeroDuration() ||
      options.promote_interval <= absl::ZeroDuration() ||
      options.retry_base < absl::ZeroDuration() || options.retry_cap < options.retry_base) {
    return Fail("intervals must be positive and --retry_cap >= --retry_base >= 0");
  }
  if (absl::GetFlag(FLAGS_redis_connections) < 1) return Fail("--redis_connections must be >= 1");

  std::vector<PeriodicEntry> periodic;
  if (const std::string path = absl::GetFlag(FLAGS_periodic_config); !path.empty()) {
    std::ifstream in(path);
    if (!in) return Fail(absl::StrCat("--periodic_config: cannot read ", path));
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::vector<PeriodicEntry>> parsed =
        ParsePeriodicConfig(text.str());
    if (!parsed.ok()) return Fail(absl::StrCat("--periodic_config: ", parsed.status().message()));
    periodic = *std::move(parsed);
  }

  // Debian's Abseil is built with deadlock detection on: measured at about
  // 4% of a request's CPU (bench/RESULTS.md). Lock order is kept by design.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  BlockShutdownSignals();
  redis::ClientOptions client_options;
  client_options.connection.command_timeout = absl::GetFlag(FLAGS_redis_timeout);
  // The workers' outcomes (Complete) wait for replicas too.
  redis::ApplySharedFlags(client_options);
  client_options.connections = absl::GetFlag(FLAGS_redis_connections);
  // A standalone server or a Redis Cluster (INFO cluster, once one answers;
  // until then fetches fail and back off, and health is NOT_SERVING).
  absl::StatusOr<std::unique_ptr<redis::AutoClient>> opened =
      redis::AutoClient::Create(redis::UrlFlag(), client_options);
  if (!opened.ok()) return Fail(absl::StrCat("--redis: ", opened.status().message()));
  redis::Commands& client = **opened;
  broker::Consumer consumer(&client, broker::BrokerOptions{}, consumer_options);
  HandlerRegistry registry;
  register_handlers(registry);
  Worker worker(options, &registry, &consumer);
  broker::Broker producer(&client, broker::BrokerOptions{});
  PeriodicScheduler scheduler(periodic, &producer, &client);

  std::unique_ptr<grpc::Server> health_server;
  const std::string health_listen = absl::GetFlag(FLAGS_health_listen);
  if (!health_listen.empty()) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(health_listen, grpc::InsecureServerCredentials(), &port);
    health_server = builder.BuildAndStart();
    if (health_server == nullptr || port == 0) {
      return Fail(absl::StrCat("--health_listen: cannot listen on ", health_listen));
    }
    log::Info("health serving", {{"listen", health_listen}, {"port", absl::StrCat(port)}});
  }

  if (absl::Status s = worker.Start(); !s.ok()) return Fail(std::string(s.message()));
  log::Info("handlers", {{"types", absl::StrJoin(registry.Types(), ",")},
                         {"redis", redis::UrlFlagForLogs()}});

  std::unique_ptr<MetricsServer> metrics;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> m = MetricsServer::Start(listen, [&] {
      const WorkerStats st = worker.stats();
      return PrometheusFamily(
                 "taskmesh_worker_outcomes_total", "counter",
                 "Attempt outcomes recorded by this worker; fenced: a late outcome of an attempt "
                 "that had lost its lease, dropped.",
                 {{"outcome=\"succeeded\"", st.succeeded},
                  {"outcome=\"retried\"", st.retried},
                  {"outcome=\"failed\"", st.failed},
                  {"outcome=\"cancelled\"", st.cancelled},
                  {"outcome=\"fenced\"", st.fenced},
                  {"outcome=\"handed_back\"", st.handed_back},
                  {"outcome=\"reclaimed\"", st.reclaimed}}) +
             PrometheusFamily("taskmesh_worker_tasks_in_flight", "gauge",
                              "Tasks this worker holds a lease on.",
                              {{"", worker.in_flight()}}) +
             PrometheusFamily("taskmesh_worker_redis_connected", "gauge",
                              "1 while the fetch connection to Redis is up.",
                              {{"", worker.connected() ? 1 : 0}});
    });
    if (!m.ok()) return Fail(absl::StrCat("--metrics_listen: ", m.status().message()));
    metrics = *std::move(m);
    log::Info("metrics serving", {{"listen", listen}, {"port", absl::StrCat(metrics->port())}});
  }

  std::unique_ptr<HealthReporter> health;
  if (health_server != nullptr) {
    health = std::make_unique<HealthReporter>(health_server->GetHealthCheckService(),
                                              [&worker] { return worker.connected(); });
  }

  StopSignal stop;
  std::thread periodic_thread([&] {
    if (periodic.empty()) return;
    log::Info("periodic tasks", {{"count", absl::StrCat(periodic.size())}});
    std::string last_error;
    while (!stop.WaitFor(absl::Milliseconds(250))) {
      absl::StatusOr<int> n = scheduler.RunOnce();
      if (!n.ok() && std::string(n.status().message()) != last_error) {
        last_error = std::string(n.status().message());
        log::Warning("periodic scheduling failed; retrying", {{"error", last_error}});
      }
    }
  });

  const int sig = WaitForShutdownSignal();
  log::Info("draining", {{"signal", absl::StrCat(sig)},
                         {"drain_timeout", absl::FormatDuration(options.drain_timeout)}});
  stop.Notify();
  periodic_thread.join();
  const bool drained = worker.Stop();
  if (health != nullptr) health->Stop();
  if (health_server != nullptr) health_server->Shutdown();
  const WorkerStats stats = worker.stats();
  log::Info("stopped", {{"drained", drained ? "true" : "false"},
                        {"succeeded", absl::StrCat(stats.succeeded)},
                        {"retried", absl::StrCat(stats.retried)},
                        {"failed", absl::StrCat(stats.failed)},
                        {"handed_back", absl::StrCat(stats.handed_back)}});
  if (!drained) {
    // Handler threads that ignored cancellation are still running: leave
    // without running their destructors.
    std::fflush(stderr);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace taskmesh::workers
