// loadgen: a load generator for taskmesh's gRPC TaskService and for HTTP
// servers, closed-loop (--concurrency) or open-loop (--rate), bounded by
// --duration and --requests, reporting throughput, p50/p90/p99/p99.9
// latency (an HDR-style histogram) and errors by code.
//
// Scenarios (--scenario):
//   create      CreateTask, unary
//   batch       BatchCreateTasks of --batch_size tasks; with --redis, then
//               waits until every created task SUCCEEDED (end to end)
//   roundtrip   CreateTask, then WatchTask until the task is terminal
//   http        --method --path --body against --http (HOST:PORT)
//
// Prints a human-readable report on stderr and one line
// `RESULT {json}` on stdout.
//
// Example:
//   loadgen --scenario=create --server=127.0.0.1:50051 --concurrency=64 --duration=5s
//   loadgen --scenario=create --rate=20000 --duration=5s
//   loadgen --scenario=http --http=127.0.0.1:8080 --method=POST
//           --path=/v1/queues/q/tasks --body='{"type":"echo"}' --connections=64
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/loadgen/grpc_targets.h"
#include "bench/loadgen/http_target.h"
#include "bench/loadgen/runner.h"
#include "common/flags.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, scenario, "create", "create | batch | roundtrip | http");
ABSL_FLAG(std::string, name, "", "Label of the result (default: the scenario)");
ABSL_FLAG(std::string, server, "127.0.0.1:50051", "gRPC server (HOST:PORT)");
ABSL_FLAG(int32_t, channels, 1, "gRPC channels (separate HTTP/2 connections)");
ABSL_FLAG(std::string, queue, "bench", "Queue of the created tasks");
ABSL_FLAG(std::string, type, "echo", "Type (handler name) of the created tasks");
ABSL_FLAG(std::string, payload, "", "JSON payload of the created tasks (empty: none)");
ABSL_FLAG(int32_t, batch_size, 100, "batch: tasks per BatchCreateTasks");
ABSL_FLAG(int32_t, concurrency, 1, "Closed loop: requests in flight");
ABSL_FLAG(double, rate, 0, "Open loop: requests per second (0: closed loop)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Longest run (after the warm-up)");
ABSL_FLAG(int64_t, requests, 0, "Most requests (0: bounded by --duration only)");
ABSL_FLAG(absl::Duration, warmup, absl::ZeroDuration(), "Unrecorded warm-up");
ABSL_FLAG(int32_t, max_outstanding, 20000, "Open loop: most requests in flight");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(10), "Deadline of each gRPC call");
ABSL_FLAG(std::string, redis, "",
          "batch: Redis HOST:PORT[/QUEUE],...; after the load, wait until the tasks SUCCEEDED "
          "(counted in each entry's QUEUE, default --queue: one entry per partition of a "
          "partitioned queue, on the node serving it)");
ABSL_FLAG(absl::Duration, wait_timeout, absl::Seconds(60), "Longest wait for --redis");
ABSL_FLAG(std::string, http, "127.0.0.1:8080", "http: server HOST:PORT (IPv4)");
ABSL_FLAG(std::string, method, "GET", "http: method");
ABSL_FLAG(std::string, path, "/", "http: request target");
ABSL_FLAG(std::string, body, "", "http: request body");
ABSL_FLAG(std::vector<std::string>, header, {}, "http: extra headers, 'Name: value',...");
ABSL_FLAG(int32_t, connections, 16, "http: connections (one request each at a time)");
ABSL_FLAG(int32_t, http_threads, 1, "http: I/O threads");

namespace taskmesh::bench {
namespace {

using ::taskmesh::v1::CreateTaskRequest;

int Fail(const std::string& why) {
  std::fprintf(stderr, "ERROR: %s\n", why.c_str());
  return 2;
}

long long Succeeded(redisContext* c, const std::string& queue) {
  const std::string key = absl::StrCat("taskmesh:{", queue, "}:s:SUCCEEDED");
  auto* r = static_cast<redisReply*>(redisCommand(c, "ZCARD %b", key.data(), key.size()));
  long long n = (r != nullptr && r->type == REDIS_REPLY_INTEGER) ? r->integer : -1;
  if (r != nullptr) freeReplyObject(r);
  return n;
}

int Main() {
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  const std::string name = absl::GetFlag(FLAGS_name).empty() ? scenario : absl::GetFlag(FLAGS_name);
  RunOptions run;
  run.concurrency = absl::GetFlag(FLAGS_concurrency);
  run.rate = absl::GetFlag(FLAGS_rate);
  run.duration = absl::GetFlag(FLAGS_duration);
  run.requests = absl::GetFlag(FLAGS_requests);
  run.warmup = absl::GetFlag(FLAGS_warmup);
  run.max_outstanding = absl::GetFlag(FLAGS_max_outstanding);
  if (run.concurrency < 1 || run.rate < 0 || run.duration <= absl::ZeroDuration()) {
    return Fail("--concurrency >= 1, --rate >= 0, --duration > 0");
  }

  CreateTaskRequest create;
  create.set_parent(absl::StrCat("queues/", absl::GetFlag(FLAGS_queue)));
  create.mutable_task()->set_type(absl::GetFlag(FLAGS_type));
  if (!absl::GetFlag(FLAGS_payload).empty()) {
    auto s = google::protobuf::util::JsonStringToMessage(absl::GetFlag(FLAGS_payload),
                                                         create.mutable_task()->mutable_payload());
    if (!s.ok()) return Fail(absl::StrCat("--payload: ", s.ToString()));
  }

  GrpcOptions grpc_options;
  grpc_options.server = absl::GetFlag(FLAGS_server);
  grpc_options.channels = absl::GetFlag(FLAGS_channels);
  grpc_options.deadline = absl::GetFlag(FLAGS_deadline);
  std::unique_ptr<Channels> channels;
  std::unique_ptr<Target> target;
  if (scenario == "http") {
    HttpOptions h;
    std::vector<std::string> hp = absl::StrSplit(absl::GetFlag(FLAGS_http), ':');
    if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &h.port)) return Fail("--http: HOST:PORT");
    h.host = hp[0] == "localhost" ? "127.0.0.1" : hp[0];
    h.method = absl::GetFlag(FLAGS_method);
    h.path = absl::GetFlag(FLAGS_path);
    h.body = absl::GetFlag(FLAGS_body);
    h.headers = absl::GetFlag(FLAGS_header);
    h.connections = absl::GetFlag(FLAGS_connections);
    h.threads = absl::GetFlag(FLAGS_http_threads);
    auto http = std::make_unique<HttpTarget>(h);
    if (absl::Status s = http->Start(); !s.ok()) return Fail(std::string(s.message()));
    target = std::move(http);
  } else {
    channels = std::make_unique<Channels>(grpc_options);
    if (!channels->WaitConnected(absl::Seconds(10))) {
      return Fail(absl::StrCat("cannot connect to ", grpc_options.server));
    }
    if (scenario == "create") {
      target = std::make_unique<CreateTarget>(channels.get(), create);
    } else if (scenario == "roundtrip") {
      if (run.rate > 0) return Fail("roundtrip is closed-loop only");
      target = std::make_unique<RoundTripTarget>(channels.get(), create);
    } else if (scenario == "batch") {
      const int n = absl::GetFlag(FLAGS_batch_size);
      if (n < 1) return Fail("--batch_size >= 1");
      taskmesh::v1::BatchCreateTasksRequest batch;
      batch.set_parent(create.parent());
      for (int i = 0; i < n; ++i) *batch.add_requests() = create;
      target = std::make_unique<BatchTarget>(channels.get(), std::move(batch));
    } else {
      return Fail(absl::StrCat("--scenario: unknown ", scenario));
    }
  }

  // Where SUCCEEDED tasks are counted: (connection, queue or partition).
  std::vector<std::pair<redisContext*, std::string>> counters;
  auto succeeded = [&counters] {
    long long total = 0;
    for (auto& [c, q] : counters) total += Succeeded(c, q);
    return total;
  };
  long long before = 0;
  for (absl::string_view entry :
       absl::StrSplit(absl::GetFlag(FLAGS_redis), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> where = absl::StrSplit(entry, absl::MaxSplits('/', 1));
    std::vector<std::string> hp = absl::StrSplit(where.first, ':');
    int port = 0;
    if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &port)) return Fail("--redis: HOST:PORT[/QUEUE]");
    redisContext* c = redisConnect(hp[0].c_str(), port);
    if (c == nullptr || c->err) return Fail("--redis: cannot connect");
    counters.emplace_back(c, where.second.empty() ? absl::GetFlag(FLAGS_queue) : where.second);
  }
  if (!counters.empty()) before = succeeded();

  const absl::Time start = absl::Now();
  RunResult r = Runner(run).Run(*target);
  std::string extra;
  if (!counters.empty()) {
    const long long want = before + r.items_ok;
    const absl::Time give_up = absl::Now() + absl::GetFlag(FLAGS_wait_timeout);
    long long got = succeeded();
    while (got < want && absl::Now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      got = succeeded();
    }
    const double secs = absl::ToDoubleSeconds(absl::Now() - start);
    const long long done = got - before;
    extra = absl::StrFormat(
        ",\"e2e_tasks\":%lld,\"e2e_succeeded\":%lld,\"e2e_seconds\":%.3f,\"e2e_tasks_per_s\":%.1f",
        static_cast<long long>(r.items_ok), done, secs, secs > 0 ? done / secs : 0.0);
    std::fprintf(stderr, "  end to end: %lld of %lld tasks SUCCEEDED in %.2f s: %.0f tasks/s\n",
                 done, static_cast<long long>(r.items_ok), secs, secs > 0 ? done / secs : 0.0);
    for (auto& [c, q] : counters) redisFree(c);
  }
  std::fputs(r.ToText(name).c_str(), stderr);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                     (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  absl::StrAppend(&extra, absl::StrFormat(",\"loadgen_cpu_s\":%.3f", cpu));
  std::string json = r.ToJson(name);
  json.insert(json.size() - 1, extra);
  std::printf("RESULT %s\n", json.c_str());
  std::fflush(stdout);
  // Late callbacks of a drain timeout must not touch destroyed targets.
  std::_Exit(r.unfinished > 0 ? 1 : 0);
}

}  // namespace
}  // namespace taskmesh::bench

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG: every absl::Mutex (gRPC's too)
  // would run deadlock detection, 3x the cost of a lock. Not in a benchmark.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  taskmesh::ParseFlags(argc, argv,
                       "loadgen: closed- or open-loop load on taskmesh's gRPC TaskService or an "
                       "HTTP server, with an HDR-style latency histogram.");
  return taskmesh::bench::Main();
}
