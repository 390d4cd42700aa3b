// Micro-benchmarks of the enqueue script path (Broker::Create):
//
//   BM_EnqueueArgs      the client side: record fields, keys, EVALSHA
//                       arguments and the RESP encoding of the command;
//   BM_EnqueueRedis/W   the whole path on a private redis-server, W creates
//                       in flight on one auto-pipelined redis::Client; also
//                       reports Redis CPU time per create (INFO cpu).
//   BM_EnqueueBare/W    the floor: HSET + XADD of the same fields pipelined
//                       without Lua, for scale.
//
//   bazel run -c opt //broker:enqueue_benchmark
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "broker/broker.h"
#include "broker/keys.h"
#include "broker/options.h"
#include "broker/scripts.h"
#include "broker/task_codec.h"
#include "redis/client.h"
#include "tests/support/redis_server.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::v1::Task;

Task EchoTask() {
  Task t;
  t.set_type("echo");
  return t;
}

void BM_EnqueueArgs(benchmark::State& state) {
  const Task task = EchoTask();
  const BrokerOptions options;
  const std::string queue = "bench";
  const std::string id = "01m8abmywjc2n31mt6xr9xt277";
  for (auto _ : state) {
    auto fields = NewTaskFields(task, 3);
    std::vector<std::string> keys = {TaskKey(queue, id)};
    // One item of the batch script: its length, then its arguments.
    std::vector<std::string> rest = {absl::StrCat(6 + fields->size()), id, "604800", "", "",
                                     "0", "1"};
    rest.insert(rest.end(), fields->begin(), fields->end());
    redis::Args args = scripts::Enqueue().EvalShaArgs(
        keys, ScriptArgs(QueuePrefix(queue), options, std::move(rest)));
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    char* cmd = nullptr;
    const int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(),
                                         lens.data());
    benchmark::DoNotOptimize(n);
    redisFreeCommand(cmd);
  }
}
BENCHMARK(BM_EnqueueArgs);

struct Env {
  std::unique_ptr<testing::RedisServer> redis;
  std::unique_ptr<redis::Client> client;
};

Env& GetEnv() {
  static Env* env = [] {
    auto* e = new Env;
    auto server = testing::RedisServer::Start();
    if (!server.ok()) {
      std::fprintf(stderr, "redis-server: %s\n", server.status().ToString().c_str());
      std::abort();
    }
    e->redis = *std::move(server);
    redis::ClientOptions options;
    options.connection = e->redis->options();
    e->client = std::make_unique<redis::Client>(options);
    return e;
  }();
  return *env;
}

double RedisCpuSeconds(redis::Client& client) {
  absl::StatusOr<redis::Reply> info = client.Call({"INFO", "cpu"});
  double total = 0;
  if (!info.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(info->str(), "\r\n")) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ':');
    double v = 0;
    if ((kv.first == "used_cpu_sys" || kv.first == "used_cpu_user") &&
        absl::SimpleAtod(kv.second, &v)) {
      total += v;
    }
  }
  return total;
}

// Keeps at most `window` asynchronous operations in flight.
class Window {
 public:
  explicit Window(int window) : window_(window) {}
  void Acquire() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Window* w) { return w->in_flight_ < w->window_; }, this));
    ++in_flight_;
  }
  void Release(bool ok) {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (!ok) ++errors_;
  }
  int Drain() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](Window* w) { return w->in_flight_ == 0; }, this));
    return errors_;
  }

 private:
  absl::Mutex mu_;
  const int window_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int errors_ ABSL_GUARDED_BY(mu_) = 0;
};

void BM_EnqueueRedis(benchmark::State& state) {
  Env& env = GetEnv();
  Broker broker(env.client.get(), BrokerOptions{});
  const Task task = EchoTask();
  Window window(static_cast<int>(state.range(0)));
  (void)env.client->Call({"FLUSHALL"});
  const double cpu0 = RedisCpuSeconds(*env.client);
  int64_t n = 0;
  for (auto _ : state) {
    window.Acquire();
    broker.Create("bench", absl::StrCat("t", n++), task,
                  [&window](absl::StatusOr<Broker::Created> c) { window.Release(c.ok()); });
  }
  const int errors = window.Drain();
  const double cpu1 = RedisCpuSeconds(*env.client);
  state.counters["redis_cpu_us_per_op"] = (cpu1 - cpu0) * 1e6 / static_cast<double>(n);
  state.counters["errors"] = errors;
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EnqueueRedis)->Arg(1)->Arg(64)->Arg(512)->UseRealTime();

void BM_EnqueueBare(benchmark::State& state) {
  Env& env = GetEnv();
  Window window(static_cast<int>(state.range(0)));
  (void)env.client->Call({"FLUSHALL"});
  const double cpu0 = RedisCpuSeconds(*env.client);
  int64_t n = 0;
  auto fields = NewTaskFields(EchoTask(), 3);
  for (auto _ : state) {
    window.Acquire();
    redis::Args hset = {"HSET", TaskKey("bench", absl::StrCat("t", n++))};
    hset.insert(hset.end(), fields->begin(), fields->end());
    env.client->Send(std::move(hset), [](absl::StatusOr<redis::Reply>) {});
    env.client->Send({"XADD", StreamKey("bench"), "*", "id", absl::StrCat("t", n)},
                     [&window](absl::StatusOr<redis::Reply> r) { window.Release(r.ok()); });
  }
  window.Drain();
  const double cpu1 = RedisCpuSeconds(*env.client);
  state.counters["redis_cpu_us_per_op"] = (cpu1 - cpu0) * 1e6 / static_cast<double>(n);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EnqueueBare)->Arg(64)->Arg(512)->UseRealTime();

}  // namespace
}  // namespace taskmesh::broker
