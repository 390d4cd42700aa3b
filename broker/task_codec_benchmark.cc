// Micro-benchmarks of the task record codec and of JSON <-> proto for a
// Task (what the api_gateway's transcoding and taskctl do per task).
//
//   bazel run -c opt //broker:task_codec_benchmark
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "broker/task_codec.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "taskmesh/v1/task.pb.h"

namespace taskmesh::broker {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::taskmesh::v1::Task;

// A typical small task: a JSON payload of a few fields and two labels.
Task SmallTask() {
  Task t;
  t.set_type("resize");
  auto* fields = t.mutable_payload()->mutable_struct_value()->mutable_fields();
  (*fields)["image"].set_string_value("s3://bucket/images/2026/11/25/cat.jpg");
  (*fields)["width"].set_number_value(640);
  (*fields)["height"].set_number_value(480);
  (*fields)["keep_ratio"].set_bool_value(true);
  t.set_max_attempts(5);
  (*t.mutable_labels())["tenant"] = "acme";
  (*t.mutable_labels())["source"] = "upload";
  return t;
}

// The record of that task once it SUCCEEDED, as HGETALL returns it.
Record SucceededRecord() {
  Record r;
  absl::StatusOr<std::vector<std::string>> f = NewTaskFields(SmallTask(), 3);
  for (size_t i = 0; i + 1 < f->size(); i += 2) r[(*f)[i]] = (*f)[i + 1];
  r["id"] = "01m8abmywjc2n31mt6xr9xt277";
  r["state"] = "SUCCEEDED";
  r["attempt"] = "1";
  r["ver"] = "3";
  r["ctime"] = "1764108000000";
  r["mtime"] = "1764108000003";
  r["stime"] = "1764108000001";
  r["etime"] = "1764108000003";
  r["sid"] = "1764108000000-0";
  r["rk"] = "j";
  r["result"] = R"({"ok":true,"bytes":12345})";
  return r;
}

Task FullTask() {
  absl::StatusOr<Task> t = TaskFromRecord("images", "01m8abmywjc2n31mt6xr9xt277",
                                          SucceededRecord());
  return *t;
}

void BM_NewTaskFields(benchmark::State& state) {
  const Task t = SmallTask();
  for (auto _ : state) {
    auto f = NewTaskFields(t, 3);
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(BM_NewTaskFields);

void BM_NewTaskFields_NoPayload(benchmark::State& state) {
  Task t;
  t.set_type("echo");
  for (auto _ : state) {
    auto f = NewTaskFields(t, 3);
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(BM_NewTaskFields_NoPayload);

void BM_TaskFromRecord(benchmark::State& state) {
  const Record r = SucceededRecord();
  for (auto _ : state) {
    auto t = TaskFromRecord("images", "01m8abmywjc2n31mt6xr9xt277", r);
    benchmark::DoNotOptimize(t);
  }
}
BENCHMARK(BM_TaskFromRecord);

// Broker::Enqueue's callback captures the request's Task by value.
void BM_TaskCopy(benchmark::State& state) {
  const Task t = SmallTask();
  for (auto _ : state) {
    Task copy = t;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_TaskCopy);

void BM_TaskToJson(benchmark::State& state) {
  const Task t = FullTask();
  google::protobuf::util::JsonPrintOptions options;
  for (auto _ : state) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(t, &json, options);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_TaskToJson);

void BM_TaskFromJson(benchmark::State& state) {
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(FullTask(), &json);
  for (auto _ : state) {
    Task t;
    auto s = google::protobuf::util::JsonStringToMessage(json, &t);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(json.size()));
}
BENCHMARK(BM_TaskFromJson);

void BM_TaskToBinary(benchmark::State& state) {
  const Task t = FullTask();
  for (auto _ : state) {
    std::string bytes = t.SerializeAsString();
    benchmark::DoNotOptimize(bytes);
  }
}
BENCHMARK(BM_TaskToBinary);

void BM_TaskFromBinary(benchmark::State& state) {
  const std::string bytes = FullTask().SerializeAsString();
  for (auto _ : state) {
    Task t;
    benchmark::DoNotOptimize(t.ParseFromString(bytes));
  }
}
BENCHMARK(BM_TaskFromBinary);

}  // namespace
}  // namespace taskmesh::broker
