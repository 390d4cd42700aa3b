// Worker: the worker runtime that fetches tasks from Redis Streams and runs them.
//
// One fetch thread reads new entries for the consumer group (XREADGROUP,
// only as many as there are free handler slots) on its own connection, and
// starts each task (PENDING -> RUNNING) through the pipelined client; M
// handler threads run the handlers and report outcomes, which the client
// pipelines in batches. Any number of worker processes may run at once.
//
// Thread-safe: Start() once, then Stop() once (from any thread).
//
// Example:
//   HandlerRegistry registry;
//   RegisterBuiltinHandlers(registry);
//   Worker worker(options, &registry, &broker);
//   RETURN_IF_ERROR(worker.Start());
//   ...
//   worker.Stop();  // drains
#ifndef TASKMESH_WORKERS_RUNTIME_H_
#define TASKMESH_WORKERS_RUNTIME_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/broker.h"
#include "redis/options.h"
#include "workers/handler.h"

namespace taskmesh::workers {

struct WorkerOptions {
  // For the fetch connection (the broker's client carries the rest).
  redis::ConnectionOptions redis;
  std::vector<std::string> queues = {"default"};
  // Handler threads, and so the most tasks run at once.
  int concurrency = 8;
  // This worker's stable consumer name in the group.
  std::string consumer = "worker";
  // Longest wait of one XREADGROUP; bounds how fast Stop() takes effect.
  absl::Duration fetch_block = absl::Seconds(1);
  // Attempt timeout for tasks that set none.
  absl::Duration default_timeout = absl::Minutes(30);
  // On Stop(): how long in-flight tasks may take to finish.
  absl::Duration drain_timeout = absl::Seconds(30);
};

struct WorkerStats {
  int64_t succeeded = 0;
  int64_t retried = 0;
  int64_t failed = 0;
  int64_t fenced = 0;
};

class Worker {
 public:
  // `registry` and `broker` must outlive the worker.
  Worker(WorkerOptions options, const HandlerRegistry* registry, broker::Broker* broker);
  ~Worker();

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the fetch and handler threads; they connect in the background.
  absl::Status Start();

  // Stops fetching, then waits up to drain_timeout for in-flight tasks to
  // finish; handlers still running then are cancelled (ctx.cancelled()).
  // Returns true when everything in flight finished.
  bool Stop();

  // True while the fetch connection is up.
  bool connected() const { return connected_.load(); }

  WorkerStats stats() const;

 private:
  void FetchLoop();
  void HandlerLoop();
  void Run(const broker::Lease& lease);
  void Finished(absl::StatusOr<broker::Completion> completion, const broker::Lease& lease);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasCapacity() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Drained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerOptions options_;
  const HandlerRegistry* const registry_;
  broker::Broker* const broker_;

  mutable absl::Mutex mu_;
  // Leased tasks waiting for a handler thread.
  std::deque<broker::Lease> ready_ ABSL_GUARDED_BY(mu_);
  // Fetched and not yet completed (starting, ready, running, completing).
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool exit_handlers_ ABSL_GUARDED_BY(mu_) = false;
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);

  // Read by handlers through TaskContext::cancel_flag.
  std::atomic<bool> cancel_all_{false};
  std::atomic<bool> connected_{false};
  std::thread fetcher_;
  std::vector<std::thread> handlers_;
};

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_RUNTIME_H_
