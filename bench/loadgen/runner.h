// Runner: drives a Target closed-loop (a fixed number of requests in
// flight) or open-loop (requests started at a fixed rate, whatever is in
// flight), bounded by a duration and a request count, and records latency
// in a Histogram and outcomes by code.
//
// Open-loop latency is measured from each request's *intended* start time,
// so a stalled server is not hidden by the client waiting for it
// (coordinated omission).
//
// Example:
//   Runner runner(options);
//   RunResult r = runner.Run(target);
//   std::puts(r.ToJson("create").c_str());
//
// Runner is used from one thread; the Target's callbacks may run on any.
#ifndef TASKMESH_BENCH_LOADGEN_RUNNER_H_
#define TASKMESH_BENCH_LOADGEN_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "bench/loadgen/histogram.h"

namespace taskmesh::bench {

// One request's outcome: 0 is success. gRPC status codes as they are; HTTP
// statuses as 1000 + status (a 2xx counts as success); kTransportError for
// a broken connection; kClientOverload for an open-loop request not started
// because max_outstanding requests were already in flight.
inline constexpr int kTransportError = 9998;
inline constexpr int kClientOverload = 9999;
std::string CodeName(int code);

class Target {
 public:
  using Done = std::function<void(int code)>;
  virtual ~Target() = default;
  // Asynchronous targets start a request and call `done` exactly once, on
  // any thread, never inside Issue().
  virtual void Issue(Done done) = 0;
  // Blocking targets (IsBlocking()) instead run one request on the calling
  // thread; the runner gives each concurrency slot its own thread.
  virtual bool IsBlocking() const { return false; }
  virtual int Call() { return kTransportError; }
  // Work items per successful request (tasks per BatchCreateTasks).
  virtual int ItemsPerRequest() const { return 1; }
};

struct RunOptions {
  // Closed loop: requests kept in flight. Ignored when rate > 0.
  int concurrency = 1;
  // Open loop: requests started per second (0: closed loop).
  double rate = 0;
  // Whichever bound comes first ends the run.
  absl::Duration duration = absl::Seconds(5);
  int64_t requests = 0;  // 0: no count bound
  // Requests started during the warm-up are not recorded.
  absl::Duration warmup = absl::ZeroDuration();
  // Open loop: at most this many in flight; beyond, kClientOverload.
  int max_outstanding = 20000;
  // After the bounds: how long to wait for requests still in flight.
  absl::Duration drain_timeout = absl::Seconds(10);
};

struct RunResult {
  int64_t issued = 0;      // requests started (including warm-up)
  int64_t recorded = 0;    // requests recorded (after warm-up)
  int64_t ok = 0;          // recorded successes
  int64_t items_ok = 0;    // ok * items per request
  int64_t unfinished = 0;  // still in flight after drain_timeout
  absl::Time first_issue;  // first recorded request started
  absl::Time last_done;    // last recorded request finished
  double seconds = 0;      // first_issue .. last_done
  double rps = 0;          // ok / seconds
  double items_per_s = 0;  // items_ok / seconds
  double target_rate = 0;
  int concurrency = 0;
  std::map<int, int64_t> codes;  // by code, recorded requests
  std::shared_ptr<Histogram> latency;  // ns, successes only

  // One line of JSON: {"name":..., "rps":..., "p50_us":..., ...}.
  std::string ToJson(const std::string& name) const;
  // A human-readable block.
  std::string ToText(const std::string& name) const;
};

class Runner {
 public:
  explicit Runner(RunOptions options) : options_(options) {}
  RunResult Run(Target& target);

 private:
  RunOptions options_;
};

}  // namespace taskmesh::bench

#endif  // TASKMESH_BENCH_LOADGEN_RUNNER_H_
