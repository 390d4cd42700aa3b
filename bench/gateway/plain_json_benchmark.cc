// Micro-benchmark of the api_gateway's JSON fast path (api_gateway/plain_json)
// alone: for representative request bodies, the fast path against protobuf's
// JSON parser, and the ratio. Per body:
//   fast_path            EncodePlainJson alone (it may give up: see the label)
//   gateway              what RequestTranslator does for a `body: "*"` route:
//                        the fast path, and JsonToBinaryString when it gives up
//   JsonToBinaryString   protobuf's parser as the gateway calls it (its
//                        caching TypeResolver): the gateway without the fast path
//   JsonStringToMessage  protobuf's parser into a generated message
// and at the end a table of medians with the gain (JsonToBinaryString / gateway).
//
//   bazel run -c opt //bench/gateway:plain_json_benchmark --
//     --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//     --benchmark_report_aggregates_only=true
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/plain_json.h"
#include "bench/gateway/v1/echo.pb.h"
#include "benchmark/benchmark.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/util/json_util.h"
#include "taskmesh/v1/task.pb.h"
#include "taskmesh/v1/task_service.pb.h"

namespace taskmesh::gateway {
namespace {

namespace pb = ::google::protobuf;

struct Body {
  const char* name;
  const pb::Descriptor* generated;  // its type in the generated pool
  std::string json;
  const char* note;
};

std::string BatchBody(int n) {
  std::string json = R"({"parent":"queues/emails","requests":[)";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&json, i ? "," : "",
                    R"({"task":{"type":"email.send","payload":{"to":"user)", i,
                    R"(@example.com","template":"welcome"},"priority":"DEFAULT","maxAttempts":5}})");
  }
  return json + "]}";
}

const std::vector<Body>& Bodies() {
  static const std::vector<Body>* bodies = new std::vector<Body>{
      {"echo", bench::gateway::v1::EchoRequest::descriptor(), R"({"message":"hello","n":42})",
       "bench/gateway/run.sh's POST /v1/echo (body: \"*\")"},
      {"create_task", taskmesh::v1::Task::descriptor(),
       R"({"type":"email.send","payload":{"to":"a@example.com","subject":"Welcome"},)"
       R"("priority":"HIGH","maxAttempts":5,"requestId":"6f1c2e9a-3b7d-4f0e-9a51-0c2d8e7b4a10"})",
       "a CreateTask body (a Task); its route is body: \"task\", never the fast path"},
      {"create_task_no_payload", taskmesh::v1::Task::descriptor(),
       R"({"type":"email.send","priority":"HIGH","maxAttempts":5,)"
       R"("requestId":"6f1c2e9a-3b7d-4f0e-9a51-0c2d8e7b4a10"})",
       "the same without payload (what the fast path could take)"},
      {"batch_10", taskmesh::v1::BatchCreateTasksRequest::descriptor(), BatchBody(10),
       "BatchCreateTasks, 10 tasks (body: \"*\")"},
      {"purge", taskmesh::v1::PurgeQueueRequest::descriptor(), R"({"includePending":true})",
       "PurgeQueue (body: \"*\")"},
  };
  return *bodies;
}

// The gateway's descriptors (and caching TypeResolver), made from the
// generated pool's files, as if loaded from a descriptor set.
const ApiDescriptors& Api() {
  static const ApiDescriptors* api = [] {
    pb::FileDescriptorSet set;
    std::set<const pb::FileDescriptor*> added;
    const auto add = [&](const pb::FileDescriptor* f, const auto& self) -> void {
      if (!added.insert(f).second) return;
      for (int i = 0; i < f->dependency_count(); ++i) self(f->dependency(i), self);
      f->CopyTo(set.add_file());
    };
    for (const Body& b : Bodies()) add(b.generated->file(), add);
    return ApiDescriptors::Load({set.SerializeAsString()}).value().release();
  }();
  return *api;
}

const pb::Descriptor* GatewayType(const Body& b) {
  return Api().pool().FindMessageTypeByName(b.generated->full_name());
}

void FastPath(benchmark::State& state, const Body& b) {
  const pb::Descriptor* type = GatewayType(b);
  std::string out;
  bool took = false;
  for (auto _ : state) {
    out.clear();
    took = EncodePlainJson(b.json, type, &out);
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(took ? "takes it" : "gives up");
}

void Gateway(benchmark::State& state, const Body& b) {
  const pb::Descriptor* type = GatewayType(b);
  const std::string url = ApiDescriptors::TypeUrl(type);
  const pb::util::JsonParseOptions options;
  std::string out;
  for (auto _ : state) {
    out.clear();
    if (!EncodePlainJson(b.json, type, &out)) {
      out.clear();
      if (!pb::util::JsonToBinaryString(Api().resolver(), url, b.json, &out, options).ok()) {
        state.SkipWithError("protobuf rejected the body");
        break;
      }
    }
    benchmark::DoNotOptimize(out);
  }
}

void JsonToBinary(benchmark::State& state, const Body& b) {
  const std::string url = ApiDescriptors::TypeUrl(GatewayType(b));
  const pb::util::JsonParseOptions options;
  std::string out;
  for (auto _ : state) {
    out.clear();
    if (!pb::util::JsonToBinaryString(Api().resolver(), url, b.json, &out, options).ok()) {
      state.SkipWithError("protobuf rejected the body");
      break;
    }
    benchmark::DoNotOptimize(out);
  }
}

void JsonToMessage(benchmark::State& state, const Body& b) {
  std::unique_ptr<pb::Message> m(
      pb::MessageFactory::generated_factory()->GetPrototype(b.generated)->New());
  const pb::util::JsonParseOptions options;
  for (auto _ : state) {
    m->Clear();
    if (!pb::util::JsonStringToMessage(b.json, m.get(), options).ok()) {
      state.SkipWithError("protobuf rejected the body");
      break;
    }
    benchmark::DoNotOptimize(m);
  }
}

constexpr const char* kColumns[] = {"fast_path", "gateway", "JsonToBinaryString",
                                    "JsonStringToMessage"};

// The console output, then a table of medians (CPU time) per body.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(isatty(fileno(stdout)) ? OO_Defaults : OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const std::string name = r.run_name.function_name;  // "body/column"
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name == "median") medians_[name] = r.GetAdjustedCPUTime();
      } else {
        samples_[name].push_back(r.GetAdjustedCPUTime());
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nMedian CPU time per body (ns); gain = JsonToBinaryString / gateway\n");
    std::printf("%-24s %6s %10s %10s %20s %20s %7s %9s\n", "body", "bytes", "fast_path",
                "gateway", "JsonToBinaryString", "JsonStringToMessage", "gain",
                "fast path");
    for (const Body& b : Bodies()) {
      double t[4];
      bool all = true;
      for (int i = 0; i < 4; ++i) all = Median(absl::StrCat(b.name, "/", kColumns[i]), &t[i]) && all;
      if (!all) continue;
      std::string out;
      const bool took = EncodePlainJson(b.json, GatewayType(b), &out);
      std::printf("%-24s %6zu %10.0f %10.0f %20.0f %20.0f %6.2fx %9s\n", b.name, b.json.size(),
                  t[0], t[1], t[2], t[3], t[2] / t[1], took ? "takes it" : "gives up");
    }
    for (const Body& b : Bodies()) std::printf("  %s: %s\n", b.name, b.note);
  }

 private:
  bool Median(const std::string& name, double* out) {
    if (auto it = medians_.find(name); it != medians_.end()) {
      *out = it->second;
      return true;
    }
    auto it = samples_.find(name);
    if (it == samples_.end() || it->second.empty()) return false;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    *out = v[v.size() / 2];
    return true;
  }

  std::map<std::string, double> medians_;
  std::map<std::string, std::vector<double>> samples_;
};

}  // namespace
}  // namespace taskmesh::gateway

int main(int argc, char** argv) {
  using namespace taskmesh::gateway;  // NOLINT
  for (const Body& b : Bodies()) {
    const auto add = [&](const char* column, void (*fn)(benchmark::State&, const Body&)) {
      benchmark::RegisterBenchmark(absl::StrCat(b.name, "/", column).c_str(), fn, b)
          ->Unit(benchmark::kNanosecond);
    };
    add(kColumns[0], FastPath);
    add(kColumns[1], Gateway);
    add(kColumns[2], JsonToBinary);
    add(kColumns[3], JsonToMessage);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
