#include "workers/runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "broker/partitions.h"
#include "broker/task_codec.h"
#include "common/backoff.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "redis/connection.h"

namespace taskmesh::workers {
namespace {

// How often a rate-limited queue with no token to spare is polled at most.
constexpr absl::Duration kLimitedPoll = absl::Milliseconds(20);

std::string KeyOf(const broker::Lease& lease) {
  return absl::StrCat(lease.queue, "/", lease.task_id);
}

std::string NameOf(const broker::Lease& lease) {
  return broker::TaskName(lease.queue, lease.task_id);
}

}  // namespace

absl::Duration RetryDelay(int attempt, absl::Duration base, absl::Duration cap, double draw) {
  // base * 2^(attempt-1), computed without overflow.
  absl::Duration ceiling = base;
  for (int i = 1; i < attempt && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  return absl::Milliseconds(std::floor(absl::ToDoubleMilliseconds(ceiling) * draw));
}

Worker::Worker(WorkerOptions options, const HandlerRegistry* registry, broker::Consumer* consumer)
    : options_(std::move(options)),
      registry_(registry),
      consumer_(consumer),
      partitions_(options_.queues),
      node_waiters_(consumer) {}

Worker::~Worker() {
  bool running;
  {
    absl::MutexLock lock(&mu_);
    running = !handlers_.empty() && !exit_handlers_;
  }
  if (running) Stop();
}

absl::Status Worker::Start() {
  if (options_.queues.empty()) return absl::InvalidArgumentError("no queues to fetch from");
  if (options_.concurrency < 1) return absl::InvalidArgumentError("concurrency must be >= 1");
  for (int i = 0; i < options_.concurrency; ++i) handlers_.emplace_back([this] { HandlerLoop(); });
  maintainer_ = std::thread([this] { MaintainLoop(); });
  fetcher_ = std::thread([this] { FetchLoop(); });
  log::Info("worker started", {{"queues", absl::StrJoin(options_.queues, ",")},
                               {"concurrency", absl::StrCat(options_.concurrency)},
                               {"consumer", consumer_->options().consumer},
                               {"lease", absl::FormatDuration(consumer_->options().lease)}});
  return absl::OkStatus();
}

bool Worker::HasWork() const { return exit_handlers_ || !ready_.empty(); }
int Worker::FreeSlots() const {
  // A task counts until its outcome is recorded, so a worker never holds a
  // task it is not running: a crash loses only the attempts it was running
  // (prefetching more measured no faster, and the fault test F5 caught it
  // costing innocent tasks an attempt when a poison task crashed the worker).
  return options_.concurrency - static_cast<int>(leased_.size());
}
bool Worker::HasCapacity() const { return stopping_ || FreeSlots() > 0; }
bool Worker::Drained() const { return leased_.empty(); }

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Worker::draining() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

int Worker::in_flight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(leased_.size());
}

std::vector<Worker::JobPtr> Worker::Leased() const {
  absl::MutexLock lock(&mu_);
  std::vector<JobPtr> jobs;
  jobs.reserve(leased_.size());
  for (const auto& [key, job] : leased_) jobs.push_back(job);
  return jobs;
}

bool Worker::WaitUntil(absl::Duration timeout, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (done()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

bool Worker::Stop() {
  // The drain is measured from the stop request, whatever the fetcher is doing.
  const auto drain_deadline =
      std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.drain_timeout);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || handlers_.empty()) return Drained();
    stopping_ = true;
  }
  stop_fetching_.Notify();
  node_waiters_.Stop();
  // Every task this worker started is RUNNING for the API, so it runs here
  // (leases never outnumber handler threads, so none waits long for one),
  // including what the fetcher still brings in: its blocking read returns
  // within fetch_block, and gives back unstarted what arrives after the stop
  // (Consumer::Wait).
  if (fetcher_.joinable()) fetcher_.join();

  const absl::Duration left = absl::FromChrono(drain_deadline - std::chrono::steady_clock::now());
  bool drained = WaitUntil(left, [this] { return Drained(); });
  if (!drained) {
    std::vector<JobPtr> running = Leased();
    {
      // Not yet taken by a handler: handed back below, never started.
      absl::MutexLock lock(&mu_);
      ready_.clear();
    }
    log::Warning("drain timeout: handing running tasks back",
                 {{"tasks", absl::StrCat(running.size())},
                  {"drain_timeout", absl::FormatDuration(options_.drain_timeout)}});
    for (const JobPtr& job : running) {
      HandBack(job);
      job->cancel = true;  // Its outcome, if any, is dropped (see Run()).
    }
    drained = WaitUntil(absl::Seconds(5), [this] { return Drained(); });
  }
  stop_maintenance_.Notify();
  if (maintainer_.joinable()) maintainer_.join();
  {
    absl::MutexLock lock(&mu_);
    exit_handlers_ = true;
  }
  const bool handlers_idle = WaitUntil(absl::Seconds(2), [this] { return busy_ == 0; });
  // A handler that ignores cancellation must not hang shutdown: its task was
  // handed back, so its thread is left behind (the process is about to exit).
  for (std::thread& t : handlers_) {
    if (handlers_idle) {
      t.join();
    } else {
      t.detach();
    }
  }
  WaitUntil(absl::Seconds(5), [this] { return outstanding_ == 0; });
  log::Info("worker stopped", {{"drained", drained ? "true" : "false"}});
  return drained && handlers_idle;
}

void Worker::Accept(std::vector<broker::Lease> leases) {
  absl::MutexLock lock(&mu_);
  for (broker::Lease& lease : leases) {
    auto job = std::make_shared<Job>();
    job->lease = std::move(lease);
    leased_[KeyOf(job->lease)] = job;
    ready_.push_back(std::move(job));
  }
}

void Worker::Release(const JobPtr& job) {
  absl::MutexLock lock(&mu_);
  auto it = leased_.find(KeyOf(job->lease));
  if (it != leased_.end() && it->second == job) leased_.erase(it);
}

absl::StatusOr<std::vector<broker::Lease>> Worker::WaitIdle(
    absl::flat_hash_map<std::string, std::unique_ptr<redis::Connection>>& conns,
    const std::vector<std::string>& active, absl::Duration wait) {
  // The active queues by the node that serves them.
  std::vector<std::pair<redis::ConnectionOptions, std::vector<std::string>>> nodes;
  for (const std::string& q : active) {
    ASSIGN_OR_RETURN(redis::ConnectionOptions node, consumer_->NodeOf(q));
    auto same = [&](const auto& n) { return redis::HostPort(n.first) == redis::HostPort(node); };
    auto it = std::find_if(nodes.begin(), nodes.end(), same);
    if (it == nodes.end()) {
      nodes.push_back({node, {q}});
    } else {
      it->second.push_back(q);
    }
  }
  if (nodes.size() > 1) {
    // Queues on several nodes (a Redis Cluster): wait on all of them at
    // once, then fetch.
    node_waiters_.Wait(nodes, wait);
    return std::vector<broker::Lease>();
  }
  const auto& [node, queues] = nodes[0];
  std::unique_ptr<redis::Connection>& conn = conns[redis::HostPort(node)];
  if (conn == nullptr || conn->broken()) {
    ASSIGN_OR_RETURN(conn, redis::Connection::Connect(node));
  }
  return consumer_->Wait(*conn, queues, wait, [this] {
    absl::MutexLock lock(&mu_);
    return !stopping_;
  });
}

absl::StatusOr<std::vector<std::string>> Worker::RefreshPartitions() {
  std::vector<std::string> all;
  for (const std::string& q : options_.queues) {
    ASSIGN_OR_RETURN(std::vector<std::string> partitions, consumer_->Partitions(q));
    all.insert(all.end(), partitions.begin(), partitions.end());
  }
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    changed = all != partitions_;
  }
  if (changed || !readied_) {
    // Groups for what is fetched, and for what the autoscaler watches.
    std::vector<std::string> ready = all;
    for (const std::string& q : options_.queues) {
      auto watched = options_.watched_partitions.find(q);
      if (watched == options_.watched_partitions.end()) continue;
      for (int p = 1; p < watched->second; ++p) ready.push_back(broker::PartitionName(q, p));
    }
    RETURN_IF_ERROR(consumer_->EnsureGroups(ready));
    readied_ = true;
  }
  {
    absl::MutexLock lock(&mu_);
    partitions_ = all;
  }
  if (changed) {
    log::Info("fetching from the queues' partitions",
              {{"partitions", absl::StrJoin(all, ",")}});
  }
  return all;
}

void Worker::FetchLoop() {
  // Blocking connections by node ("host:port"): one for a standalone Redis;
  // in a Redis Cluster, one per master that serves some of the queues.
  absl::flat_hash_map<std::string, std::unique_ptr<redis::Connection>> conns;
  bool groups = false;  // The queues' consumer groups exist.
  // The partitions fetched from (RefreshPartitions), and when to look again.
  std::vector<std::string> queues;
  absl::Time next_refresh = absl::InfinitePast();
  Backoff backoff(absl::Milliseconds(50), absl::Seconds(2));
  absl::Status last_error;
  absl::Time next_reclaim = absl::Now();
  size_t rotate = 0;

  // Waits before the next try, unless Stop() comes first. False on stop.
  auto pause = [&](absl::Duration d) { return !stop_fetching_.WaitFor(d); };
  auto failed = [&](const absl::Status& status) {
    if (status.message() != last_error.message()) {
      log::Warning("fetch failed; retrying", {{"error", status.message()}});
    }
    last_error = status;
    conns.clear();
    groups = false;
    connected_ = false;
    return pause(backoff.Next());
  };
  auto capacity = [&]() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &Worker::HasCapacity));
    return stopping_ ? 0 : FreeSlots();
  };

  while (true) {
    int free = capacity();
    if (free <= 0) break;  // Stopping.
    if (!groups) readied_ = false;  // Redis may have lost them (a restart).
    if (!groups || absl::Now() >= next_refresh) {
      absl::StatusOr<std::vector<std::string>> refreshed = RefreshPartitions();
      if (!refreshed.ok()) {
        if (!failed(refreshed.status())) break;
        continue;
      }
      queues = *std::move(refreshed);
      next_refresh = absl::Now() + options_.partitions_refresh;
    }
    if (!groups) {
      groups = true;
      connected_ = true;
      backoff.Reset();
      if (!last_error.ok()) log::Info("fetch connection restored");
      last_error = absl::OkStatus();
    }

    absl::Status error;
    int got = 0;
    // Tasks whose worker died or froze come first: they waited longest.
    if (absl::Now() >= next_reclaim) {
      next_reclaim = absl::Now() + options_.reclaim_interval;
      for (const std::string& q : queues) {
        if (free - got <= 0) break;
        absl::StatusOr<std::vector<broker::Lease>> r = consumer_->Reclaim(q, free - got);
        if (!r.ok()) {
          error = r.status();
          break;
        }
        if (!r->empty()) {
          log::Warning("reclaimed tasks with expired leases",
                       {{"queue", q}, {"tasks", absl::StrCat(r->size())}});
          absl::MutexLock lock(&mu_);
          stats_.reclaimed += static_cast<int64_t>(r->size());
        }
        got += static_cast<int>(r->size());
        Accept(*std::move(r));
      }
    }
    // Then new tasks, partition by partition (a queue's own name when it has
    // one), starting with a different one each round so that none is
    // favoured.
    // Queues to block on when all is idle: not paused, not rate-limited (a
    // blocking read would bypass the limiter; those are polled instead).
    std::vector<std::string> active;
    absl::Duration idle_wait = options_.fetch_block;
    for (size_t i = 0; error.ok() && i < queues.size() && free - got > 0; ++i) {
      const std::string& q = queues[(rotate + i) % queues.size()];
      absl::StatusOr<broker::Consumer::Fetched> f = consumer_->Fetch(q, free - got);
      if (!f.ok()) {
        error = f.status();
        break;
      }
      if (f->limited) {
        idle_wait = std::min(idle_wait, std::max(f->retry_after, kLimitedPoll));
      } else if (!f->paused) {
        active.push_back(q);
      }
      got += static_cast<int>(f->leases.size());
      Accept(std::move(f->leases));
    }
    ++rotate;
    if (error.ok() && got == 0) {
      if (active.empty()) {
        // Every queue is paused or rate-limited: look again in a while.
        if (!pause(idle_wait)) break;
        continue;
      }
      // All idle: block until something arrives (or the wait passes), on
      // the node of the queues (or on each of several, NodeWaiters).
      absl::StatusOr<std::vector<broker::Lease>> w = WaitIdle(conns, active, idle_wait);
      if (w.ok()) {
        Accept(*std::move(w));
      } else {
        error = w.status();
      }
    }
    if (!error.ok()) {
      if (!failed(error)) break;
      continue;
    }
    backoff.Reset();
  }
  connected_ = false;
}

void Worker::HandlerLoop() {
  while (true) {
    JobPtr job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Worker::HasWork));
      if (ready_.empty()) return;  // exit_handlers_ and nothing left.
      job = std::move(ready_.front());
      ready_.pop_front();
      ++busy_;
    }
    Run(job);
    absl::MutexLock lock(&mu_);
    --busy_;
  }
}

void Worker::Run(const JobPtr& job) {
  const broker::Lease& lease = job->lease;
  TaskContext ctx;
  ctx.task_name = NameOf(lease);
  ctx.type = lease.type;
  ctx.payload = Payload{lease.payload.is_json, lease.payload.data};
  ctx.attempt = lease.attempt;
  ctx.max_attempts = lease.max_attempts;
  const absl::Duration timeout =
      lease.timeout > absl::ZeroDuration() ? lease.timeout : options_.default_timeout;
  ctx.deadline = absl::Now() + timeout;
  ctx.cancel_flag = &job->cancel;
  ctx.progress = [this, job](int percent, const std::string& message) {
    consumer_->Progress(job->lease, std::clamp(percent, 0, 100), message,
                        [](absl::StatusOr<bool>) {});
  };

  broker::Outcome outcome;
  const Handler* handler = registry_->Find(lease.type);
  if (handler == nullptr) {
    outcome.status = absl::UnimplementedError(
        absl::StrCat("no handler for task type '", lease.type, "' on this worker (it has: ",
                     absl::StrJoin(registry_->Types(), ", "), ")"));
    outcome.retryable = false;
  } else {
    absl::StatusOr<Result> result = (*handler)(ctx);
    if (absl::Now() > ctx.deadline) {
      // A late return is not a success: the attempt overran its timeout.
      outcome.status = absl::DeadlineExceededError(
          absl::StrCat("attempt ", lease.attempt, " overran its timeout of ",
                       absl::FormatDuration(timeout)));
    } else if (result.ok()) {
      outcome.result = broker::Blob{result->is_json, std::move(result->data)};
    } else {
      outcome.status = result.status();
      outcome.retryable = !IsSkipRetry(result.status());
    }
  }
  absl::Duration delay = absl::ZeroDuration();
  if (!outcome.status.ok() && outcome.retryable) {
    thread_local absl::BitGen gen;
    delay = RetryDelay(lease.attempt, options_.retry_base, options_.retry_cap,
                       absl::Uniform(gen, 0.0, 1.0));
  }
  // Handed back while the handler ran (drain timeout): the task is already
  // waiting for another worker, and this outcome does not count.
  if (!Finish(job)) return;
  BeginCall();
  consumer_->Complete(lease, outcome, delay,
                      [this, job](absl::StatusOr<broker::Completion> completion) {
                        Count(std::move(completion), job->lease);
                        Release(job);
                        EndCall();
                      });
}

void Worker::BeginCall() {
  absl::MutexLock lock(&mu_);
  ++outstanding_;
}

void Worker::EndCall() {
  absl::MutexLock lock(&mu_);
  --outstanding_;
}

void Worker::HandBack(const JobPtr& job) {
  if (!Finish(job)) return;  // Its outcome is on the way.
  BeginCall();
  consumer_->HandBack(job->lease, [this, job](absl::StatusOr<bool> done) {
    if (!done.ok()) {
      // Not handed back: the lease will expire and another worker reclaims it.
      log::Error("could not hand a task back",
                 {{"task", NameOf(job->lease)}, {"error", done.status().message()}});
    } else if (*done) {
      absl::MutexLock lock(&mu_);
      ++stats_.handed_back;
    }
    Release(job);
    EndCall();
  });
}

void Worker::Count(absl::StatusOr<broker::Completion> completion, const broker::Lease& lease) {
  if (!completion.ok()) {
    log::Error("could not record an outcome; the lease will expire and the task run again",
               {{"task", NameOf(lease)}, {"error", completion.status().message()}});
    return;
  }
  absl::MutexLock lock(&mu_);
  switch (*completion) {
    case broker::Completion::kSucceeded:
      ++stats_.succeeded;
      break;
    case broker::Completion::kRetrying:
      ++stats_.retried;
      break;
    case broker::Completion::kFailed:
      ++stats_.failed;
      break;
    case broker::Completion::kCancelled:
      ++stats_.cancelled;
      break;
    case broker::Completion::kFenced:
      ++stats_.fenced;
      log::Warning("outcome fenced: another attempt holds the task",
                   {{"task", NameOf(lease)}, {"attempt", absl::StrCat(lease.attempt)}});
      break;
  }
}

void Worker::MaintainLoop() {
  // Monotonic: a wall clock stepped back must not delay heartbeats.
  using Clock = std::chrono::steady_clock;
  const auto interval = absl::ToChronoNanoseconds(options_.heartbeat_interval);
  auto next_heartbeat = Clock::now() + interval;
  while (true) {
    absl::Duration sleep = options_.promote_interval;
    std::vector<std::string> partitions;
    {
      absl::MutexLock lock(&mu_);
      partitions = partitions_;
    }
    for (const std::string& q : partitions) {
      absl::StatusOr<absl::Duration> next = consumer_->Promote(q, 1000);
      if (next.ok()) sleep = std::min(sleep, *next);
    }
    if (Clock::now() >= next_heartbeat) {
      next_heartbeat = Clock::now() + interval;
      for (const JobPtr& job : Leased()) {
        if (job->finishing) continue;
        consumer_->Renew(job->lease, [job](absl::StatusOr<broker::Renewal> r) {
          // A renewal that crossed the task's own outcome says nothing.
          if (!r.ok() || *r == broker::Renewal::kOk || job->finishing) return;
          if (*r == broker::Renewal::kLost) {
            log::Warning("lease lost: another attempt holds the task; stopping this one",
                         {{"task", NameOf(job->lease)}});
          }
          job->cancel = true;
        });
      }
    }
    sleep = std::min(sleep, absl::FromChrono(next_heartbeat - Clock::now()));
    if (stop_maintenance_.WaitFor(std::max(sleep, absl::Milliseconds(1)))) return;
  }
}

}  // namespace taskmesh::workers
