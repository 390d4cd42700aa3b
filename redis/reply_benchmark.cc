// Micro-benchmarks of reply parsing: hiredis's reader, then Reply's deep
// copy and typed accessors, on replies shaped like taskmesh's hot paths.
//
//   bazel run -c opt //redis:reply_benchmark
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "hiredis/hiredis.h"
#include "hiredis/read.h"
#include "redis/reply.h"

namespace taskmesh::redis {
namespace {

std::string Bulk(const std::string& s) { return absl::StrCat("$", s.size(), "\r\n", s, "\r\n"); }

// One task record as HGETALL returns it (about 24 fields).
std::string RecordResp() {
  const std::vector<std::string> fields = {
      "id",       "01m8abmywjc2n31mt6xr9xt277", "type",    "echo",     "pk",     "j",
      "payload",  "{\"hello\":\"world\"}",       "prio",    "0",        "max_att", "3",
      "tmo_ms",   "0",                          "sched_ms", "0",       "attempt", "1",
      "lost",     "0",                          "ver",     "2",        "ctime",  "1764108000000",
      "state",    "RUNNING",                    "mtime",   "1764108000001",
      "sid",      "1764108000000-0",            "stime",   "1764108000001",
      "lease",    "1764108030001",              "consumer", "vm-32628"};
  std::string out = absl::StrCat("*", fields.size(), "\r\n");
  for (const std::string& f : fields) out += Bulk(f);
  return out;
}

// A Fetch script reply for `n` tasks: {'ok', stream, entry id, record, ...}.
std::string FetchResp(int n) {
  std::string out = absl::StrCat("*", 1 + 3 * n, "\r\n", Bulk("ok"));
  const std::string record = RecordResp();
  for (int i = 0; i < n; ++i) {
    out += Bulk("taskmesh:{bench}:stream");
    out += Bulk(absl::StrCat("1764108000000-", i));
    out += record;
  }
  return out;
}

// The Enqueue script's reply: {1, now, state}.
std::string EnqueueResp() { return "*3\r\n:1\r\n:1764108000000\r\n$7\r\nPENDING\r\n"; }

redisReply* Parse(redisReader* reader, const std::string& bytes) {
  redisReaderFeed(reader, bytes.data(), bytes.size());
  void* reply = nullptr;
  if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr) std::abort();
  return static_cast<redisReply*>(reply);
}

void BM_HiredisRead(benchmark::State& state, const std::string& bytes) {
  redisReader* reader = redisReaderCreate();
  for (auto _ : state) {
    redisReply* r = Parse(reader, bytes);
    benchmark::DoNotOptimize(r);
    freeReplyObject(r);
  }
  redisReaderFree(reader);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

// What the client does per reply: hiredis parse + Reply deep copy + free.
void BM_ReadAndCopy(benchmark::State& state, const std::string& bytes) {
  redisReader* reader = redisReaderCreate();
  for (auto _ : state) {
    redisReply* r = Parse(reader, bytes);
    Reply reply = Reply::FromHiredis(r);
    freeReplyObject(r);
    benchmark::DoNotOptimize(reply);
  }
  redisReaderFree(reader);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

void BM_Enqueue_Read(benchmark::State& state) { BM_HiredisRead(state, EnqueueResp()); }
void BM_Enqueue_ReadAndCopy(benchmark::State& state) { BM_ReadAndCopy(state, EnqueueResp()); }
void BM_Record_ReadAndCopy(benchmark::State& state) { BM_ReadAndCopy(state, RecordResp()); }

void BM_Fetch_Read(benchmark::State& state) {
  BM_HiredisRead(state, FetchResp(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
void BM_Fetch_ReadAndCopy(benchmark::State& state) {
  BM_ReadAndCopy(state, FetchResp(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// The record of a started task becomes a map (Consumer::ParseStarted).
void BM_Record_AsMap(benchmark::State& state) {
  redisReader* reader = redisReaderCreate();
  redisReply* r = Parse(reader, RecordResp());
  const Reply reply = Reply::FromHiredis(r);
  freeReplyObject(r);
  redisReaderFree(reader);
  for (auto _ : state) {
    auto map = reply.AsMap();
    benchmark::DoNotOptimize(map);
  }
}

BENCHMARK(BM_Enqueue_Read);
BENCHMARK(BM_Enqueue_ReadAndCopy);
BENCHMARK(BM_Record_ReadAndCopy);
BENCHMARK(BM_Record_AsMap);
BENCHMARK(BM_Fetch_Read)->Arg(1)->Arg(64);
BENCHMARK(BM_Fetch_ReadAndCopy)->Arg(1)->Arg(64);

}  // namespace
}  // namespace taskmesh::redis
