// stream_cycle: the Redis ceiling for a queue on Redis Streams. One producer
// pipelines XADD --pipeline deep; --consumers consumers in one group loop on
// XREADGROUP COUNT --count and XACK what they read (the XACK pipelined with
// the next XREADGROUP). Reports messages/s through the whole cycle
// (XADD -> XREADGROUP -> XACK) and the queueing latency (XADD sent ->
// delivered to a consumer) as p50/p99.
//
// Prints `RESULT {json}` on stdout.
//
// Usage: stream_cycle --redis=127.0.0.1:6379 --duration=5s --pipeline=64 --consumers=2
#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/loadgen/histogram.h"
#include "common/flags.h"

ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis HOST:PORT");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "How long the producer produces");
ABSL_FLAG(int32_t, pipeline, 64, "XADDs per producer write");
ABSL_FLAG(int32_t, consumers, 2, "Consumers in the group (one connection each)");
ABSL_FLAG(int32_t, count, 100, "XREADGROUP COUNT");
ABSL_FLAG(int64_t, messages, 5000000, "Most messages produced");
ABSL_FLAG(std::string, stream, "bench:cycle", "Stream key (deleted first and after)");

namespace taskmesh::bench {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

redisContext* Connect(const std::string& host, int port) {
  redisContext* c = redisConnect(host.c_str(), port);
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "ERROR: cannot connect to %s:%d\n", host.c_str(), port);
    std::exit(2);
  }
  return c;
}

redisReply* Get(redisContext* c) {
  void* r = nullptr;
  if (redisGetReply(c, &r) != REDIS_OK) {
    std::fprintf(stderr, "ERROR: redis: %s\n", c->errstr);
    std::exit(1);
  }
  return static_cast<redisReply*>(r);
}

int Main() {
  std::vector<std::string> hp = absl::StrSplit(absl::GetFlag(FLAGS_redis), ':');
  int port = 0;
  if (hp.size() != 2 || !absl::SimpleAtoi(hp[1], &port)) {
    std::fprintf(stderr, "ERROR: --redis HOST:PORT\n");
    return 2;
  }
  const std::string host = hp[0];
  const std::string stream = absl::GetFlag(FLAGS_stream);
  const int pipeline = std::max(1, absl::GetFlag(FLAGS_pipeline));
  const int consumers = std::max(1, absl::GetFlag(FLAGS_consumers));
  const std::string count = absl::StrCat(std::max(1, absl::GetFlag(FLAGS_count)));
  const int64_t max_messages = absl::GetFlag(FLAGS_messages);

  redisContext* admin = Connect(host, port);
  freeReplyObject(redisCommand(admin, "DEL %s", stream.c_str()));
  freeReplyObject(redisCommand(admin, "XGROUP CREATE %s g $ MKSTREAM", stream.c_str()));

  std::atomic<int64_t> produced{0};
  std::atomic<int64_t> acked{0};
  std::atomic<bool> producing{true};
  std::atomic<int64_t> last_ack{0};
  Histogram latency;
  const int64_t start = NowNs();
  const int64_t end = start + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));

  std::thread producer([&] {
    redisContext* c = Connect(host, port);
    int64_t n = 0;
    while (NowNs() < end && n < max_messages) {
      const std::string t = absl::StrCat(NowNs());
      for (int i = 0; i < pipeline; ++i) {
        redisAppendCommand(c, "XADD %s * t %s", stream.c_str(), t.c_str());
      }
      for (int i = 0; i < pipeline; ++i) freeReplyObject(Get(c));
      n += pipeline;
      produced.store(n);
    }
    producing = false;
    redisFree(c);
  });

  std::vector<std::thread> threads;
  for (int k = 0; k < consumers; ++k) {
    threads.emplace_back([&, k] {
      redisContext* c = Connect(host, port);
      const std::string name = absl::StrCat("c", k);
      std::vector<std::string> ids;
      const int64_t give_up = end + absl::ToInt64Nanoseconds(absl::Seconds(30));
      while (NowNs() < give_up) {
        // Acks of the last read ride with the next read.
        size_t replies = 1;
        if (!ids.empty()) {
          std::vector<const char*> argv = {"XACK", stream.c_str(), "g"};
          for (const std::string& id : ids) argv.push_back(id.c_str());
          redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), nullptr);
          replies = 2;
        }
        redisAppendCommand(c, "XREADGROUP GROUP g %s COUNT %s BLOCK 10 STREAMS %s >",
                           name.c_str(), count.c_str(), stream.c_str());
        if (replies == 2) {
          redisReply* ack = Get(c);
          acked.fetch_add(ack->integer);
          last_ack.store(NowNs());
          freeReplyObject(ack);
          ids.clear();
        }
        redisReply* r = Get(c);
        const int64_t now = NowNs();
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
          redisReply* entries = r->element[0]->element[1];
          for (size_t i = 0; i < entries->elements; ++i) {
            redisReply* e = entries->element[i];
            ids.emplace_back(e->element[0]->str, e->element[0]->len);
            int64_t t = 0;
            if (e->element[1]->elements >= 2 &&
                absl::SimpleAtoi(absl::string_view(e->element[1]->element[1]->str,
                                                   e->element[1]->element[1]->len),
                                 &t)) {
              latency.Record(now - t);
            }
          }
        }
        freeReplyObject(r);
        if (ids.empty() && !producing.load() && acked.load() >= produced.load()) break;
      }
      redisFree(c);
    });
  }
  producer.join();
  for (std::thread& t : threads) t.join();
  freeReplyObject(redisCommand(admin, "DEL %s", stream.c_str()));
  redisFree(admin);

  const double secs = (last_ack.load() - start) / 1e9;
  const double rate = secs > 0 ? acked.load() / secs : 0;
  std::fprintf(stderr,
               "stream cycle: %lld produced, %lld acked in %.2f s: %.0f msgs/s; queueing "
               "latency us p50 %.1f p99 %.1f\n",
               static_cast<long long>(produced.load()), static_cast<long long>(acked.load()),
               secs, rate, latency.Percentile(50) / 1000.0, latency.Percentile(99) / 1000.0);
  std::printf(
      "RESULT {\"name\":\"stream_cycle\",\"pipeline\":%d,\"consumers\":%d,\"produced\":%lld,"
      "\"acked\":%lld,\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
      "\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
      pipeline, consumers, static_cast<long long>(produced.load()),
      static_cast<long long>(acked.load()), secs, rate, latency.Percentile(50) / 1000.0,
      latency.Percentile(90) / 1000.0, latency.Percentile(99) / 1000.0,
      latency.Percentile(99.9) / 1000.0);
  return acked.load() == produced.load() ? 0 : 1;
}

}  // namespace
}  // namespace taskmesh::bench

int main(int argc, char** argv) {
  taskmesh::ParseFlags(argc, argv, "stream_cycle: XADD -> XREADGROUP -> XACK ceiling on Redis.");
  return taskmesh::bench::Main();
}
