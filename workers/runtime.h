// Worker: the worker runtime that fetches tasks from Redis Streams and runs
// them, safely alongside any number of other worker processes.
//
// Threads:
//   fetcher      reclaims expired leases (any worker's), then fetches and
//                starts as many tasks as there are free handler slots
//                (weighted by priority), blocking on Redis when all is idle;
//   M handlers   run the handlers and record outcomes (pipelined);
//   maintainer   renews the leases of every task this worker holds
//                (heartbeat; relays cancellation) and promotes due
//                scheduled tasks and retries.
//
// Thread-safe: Start() once, then Stop() once (from any thread).
//
// Example:
//   HandlerRegistry registry;
//   RegisterBuiltinHandlers(registry);
//   Worker worker(options, &registry, &consumer);
//   RETURN_IF_ERROR(worker.Start());
//   ...
//   worker.Stop();  // drains
#ifndef TASKMESH_WORKERS_RUNTIME_H_
#define TASKMESH_WORKERS_RUNTIME_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "broker/consumer.h"
#include "common/stop_signal.h"
#include "redis/options.h"
#include "workers/handler.h"
#include "workers/node_waiters.h"

namespace taskmesh::workers {

struct WorkerOptions {
  std::vector<std::string> queues = {"default"};
  // Handler threads, and so the most tasks run at once.
  int concurrency = 8;
  // Longest blocking wait for new tasks; bounds how fast Stop() takes effect.
  absl::Duration fetch_block = absl::Seconds(1);
  // Attempt timeout for tasks that set none.
  absl::Duration default_timeout = absl::Minutes(30);
  // On Stop(): how long running tasks may take to finish before they are
  // handed back to the queue.
  absl::Duration drain_timeout = absl::Seconds(30);
  // How often leases are renewed; well under the consumer's lease.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // How often expired leases are looked for.
  absl::Duration reclaim_interval = absl::Seconds(1);
  // Partitions the autoscaler watches per queue (--partition_limits): their
  // streams and groups are made at start, even before the queue has them.
  std::map<std::string, int> watched_partitions;
  // How often the queues' partitions are looked up (broker/partitions.h): a
  // queue given more partitions is fetched from all of them within this.
  absl::Duration partitions_refresh = absl::Seconds(2);
  // Longest sleep between promotions of due scheduled tasks (precision).
  absl::Duration promote_interval = absl::Milliseconds(100);
  // Retry backoff: a delay drawn uniformly from [0, min(cap, base * 2^(n-1)))
  // after the n-th failed attempt (exponential backoff, full jitter).
  absl::Duration retry_base = absl::Seconds(1);
  absl::Duration retry_cap = absl::Minutes(10);
};

struct WorkerStats {
  int64_t succeeded = 0;
  int64_t retried = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
  int64_t fenced = 0;
  int64_t handed_back = 0;
  int64_t reclaimed = 0;
};

// The retry delay after failed attempt `attempt` (1-based), given a uniform
// draw in [0, 1).
absl::Duration RetryDelay(int attempt, absl::Duration base, absl::Duration cap, double draw);

class Worker {
 public:
  // `registry` and `consumer` must outlive the worker.
  Worker(WorkerOptions options, const HandlerRegistry* registry, broker::Consumer* consumer);
  ~Worker();

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the threads; they connect in the background.
  absl::Status Start();

  // Drains: stops fetching (a blocking read in progress gives back what it
  // receives, unstarted), lets the tasks it started, running or waiting for
  // a handler, finish for drain_timeout, then hands back the rest (another
  // worker takes them at once) and asks their handlers to stop. Returns true
  // when every task finished or was handed back.
  bool Stop();

  // True while the fetch connection is up.
  bool connected() const { return connected_.load(); }
  // True once Stop() has begun.
  bool draining() const;

  WorkerStats stats() const;
  // Tasks this worker holds a lease on (starting, waiting, running, ending).
  int in_flight() const;

 private:
  struct Job {
    broker::Lease lease;
    std::atomic<bool> cancel{false};
    // Set by whichever of the outcome or the hand-back comes first (see
    // Finish()); the other is then dropped, and the lease is no longer this
    // worker's to renew.
    std::atomic<bool> finishing{false};
  };
  using JobPtr = std::shared_ptr<Job>;

  void FetchLoop();
  // Looks up the queues' partitions, makes sure their consumer groups exist,
  // and stores them in partitions_ (logging a change).
  absl::StatusOr<std::vector<std::string>> RefreshPartitions();
  // The idle path of FetchLoop: with `active` on one node, a blocking read
  // there (Consumer::Wait) on its connection in `conns` (made when missing),
  // which starts what arrives; on several nodes, NodeWaiters::Wait (the loop
  // then fetches).
  absl::StatusOr<std::vector<broker::Lease>> WaitIdle(
      absl::flat_hash_map<std::string, std::unique_ptr<redis::Connection>>& conns,
      const std::vector<std::string>& active, absl::Duration wait);
  void HandlerLoop();
  void MaintainLoop();
  void Accept(std::vector<broker::Lease> leases);
  void Run(const JobPtr& job);
  // Claims the job's one way out (its outcome or a hand-back); false when
  // the other way was taken already.
  static bool Finish(const JobPtr& job) { return !job->finishing.exchange(true); }
  void HandBack(const JobPtr& job);
  void Release(const JobPtr& job);
  void Count(absl::StatusOr<broker::Completion> completion, const broker::Lease& lease);
  std::vector<JobPtr> Leased() const;
  // Waits, on the monotonic clock, until `done` (called under mu_) holds or
  // `timeout` passes; true when it holds.
  bool WaitUntil(absl::Duration timeout, const std::function<bool()>& done);
  // Brackets an asynchronous call whose callback uses this object.
  void BeginCall();
  void EndCall();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasCapacity() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How many more tasks the fetcher may lease now.
  int FreeSlots() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Drained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerOptions options_;
  const HandlerRegistry* const registry_;
  broker::Consumer* const consumer_;

  mutable absl::Mutex mu_;
  // What the worker fetches from: the partitions of options_.queues (each
  // queue alone unless partitioned), set by the fetcher.
  std::vector<std::string> partitions_ ABSL_GUARDED_BY(mu_);
  // The fetcher's own: the groups of partitions_ and of the watched
  // partitions were made since the last (re)connection.
  bool readied_ = false;
  // Started tasks waiting for a handler thread.
  std::deque<JobPtr> ready_ ABSL_GUARDED_BY(mu_);
  // Every task this worker holds a lease on, by "queue/id".
  absl::flat_hash_map<std::string, JobPtr> leased_ ABSL_GUARDED_BY(mu_);
  // Handler threads inside Run().
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  // Asynchronous calls whose callbacks have not run yet.
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool exit_handlers_ ABSL_GUARDED_BY(mu_) = false;
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);

  // Timed waits of the loops run on the monotonic clock (see StopSignal).
  StopSignal stop_fetching_;
  // The idle wait when the queues live on several Redis Cluster nodes.
  NodeWaiters node_waiters_;
  StopSignal stop_maintenance_;
  std::atomic<bool> connected_{false};
  std::thread fetcher_;
  std::thread maintainer_;
  std::vector<std::thread> handlers_;
};

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_RUNTIME_H_
