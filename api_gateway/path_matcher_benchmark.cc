// Micro-benchmark of route lookup (bazel run -c opt
// //api_gateway:path_matcher_benchmark): taskmesh's own routes, then the
// same among N extra services' routes, for a hit, a custom verb, a 404 and
// a 405.
#include <string>

#include "absl/strings/str_cat.h"
#include "api_gateway/path_matcher.h"
#include "benchmark/benchmark.h"

namespace taskmesh::gateway {
namespace {

// taskmesh.v1.TaskService's bindings, plus `extra` services of 8 routes each.
PathMatcher Routes(int extra) {
  PathMatcher::Builder b;
  int v = 0;
  const auto add = [&](const char* method, const std::string& path) {
    (void)b.Add(method, path, v++);
  };
  add("POST", "/v1/{parent=queues/*}/tasks");
  add("POST", "/v1/{parent=queues/*}/tasks:batchCreate");
  add("GET", "/v1/{name=queues/*/tasks/*}");
  add("GET", "/v1/{parent=queues/*}/tasks");
  add("POST", "/v1/{name=queues/*/tasks/*}:cancel");
  add("POST", "/v1/{name=queues/*/tasks/*}:retry");
  add("DELETE", "/v1/{name=queues/*/tasks/*}");
  add("GET", "/v1/{name=queues/*/tasks/*}:watch");
  add("GET", "/v1/{name=queues/*}");
  add("GET", "/v1/queues");
  add("PATCH", "/v1/{queue.name=queues/*}");
  add("POST", "/v1/{name=queues/*}:pause");
  add("POST", "/v1/{name=queues/*}:resume");
  add("POST", "/v1/{name=queues/*}:purge");
  for (int i = 0; i < extra; ++i) {
    const std::string s = absl::StrCat("/v", i % 3 + 1, "/svc", i);
    add("GET", s + "/{name=items/*}");
    add("POST", s + "/{parent=shelves/*}/items");
    add("DELETE", s + "/{name=shelves/*/items/*}");
    add("PATCH", s + "/{item.name=shelves/*/items/*}");
    add("GET", s + "/{name=shelves/*/items/*}:watch");
    add("POST", s + "/{name=shelves/*/items/*}:move");
    add("GET", s + "/{path=files/**}");
    add("GET", s + "/static/health");
  }
  return std::move(b).Build();
}

void Lookup(benchmark::State& state, const char* method, const char* path,
            PathMatcher::Outcome want) {
  const PathMatcher m = Routes(static_cast<int>(state.range(0)));
  if (m.Lookup(method, path).outcome != want) {
    state.SkipWithError("unexpected outcome");
    return;
  }
  for (auto _ : state) {
    PathMatcher::Result r = m.Lookup(method, path);
    benchmark::DoNotOptimize(r);
  }
}

void BM_Match(benchmark::State& state) {
  Lookup(state, "GET", "/v1/queues/emails/tasks/01m8ajmy732h6fbev879t6812v",
         PathMatcher::Outcome::kMatched);
}
void BM_MatchVerb(benchmark::State& state) {
  Lookup(state, "POST", "/v1/queues/emails/tasks/01m8ajmy732h6fbev879t6812v:cancel",
         PathMatcher::Outcome::kMatched);
}
void BM_NotFound(benchmark::State& state) {
  Lookup(state, "GET", "/v2/nothing/here/at/all", PathMatcher::Outcome::kNotFound);
}
void BM_MethodNotAllowed(benchmark::State& state) {
  Lookup(state, "PUT", "/v1/queues/emails/tasks/01m8ajmy732h6fbev879t6812v",
         PathMatcher::Outcome::kMethodNotAllowed);
}
BENCHMARK(BM_Match)->Arg(0)->Arg(25)->Arg(125);
BENCHMARK(BM_MatchVerb)->Arg(0)->Arg(25)->Arg(125);
BENCHMARK(BM_NotFound)->Arg(0)->Arg(25)->Arg(125);
BENCHMARK(BM_MethodNotAllowed)->Arg(0)->Arg(25)->Arg(125);

}  // namespace
}  // namespace taskmesh::gateway
