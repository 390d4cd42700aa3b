#include "workers/runtime.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "broker/task_codec.h"
#include "common/logging.h"
#include "redis/connection.h"

namespace taskmesh::workers {

Worker::Worker(WorkerOptions options, const HandlerRegistry* registry, broker::Broker* broker)
    : options_(std::move(options)), registry_(registry), broker_(broker) {}

Worker::~Worker() {
  bool started;
  {
    absl::MutexLock lock(&mu_);
    started = fetcher_.joinable() && !exit_handlers_;
  }
  if (started) Stop();
}

absl::Status Worker::Start() {
  if (options_.queues.empty()) return absl::InvalidArgumentError("no queues to fetch from");
  if (options_.concurrency < 1) return absl::InvalidArgumentError("concurrency must be >= 1");
  for (int i = 0; i < options_.concurrency; ++i) handlers_.emplace_back([this] { HandlerLoop(); });
  fetcher_ = std::thread([this] { FetchLoop(); });
  log::Info("worker started", {{"queues", absl::StrJoin(options_.queues, ",")},
                               {"concurrency", absl::StrCat(options_.concurrency)},
                               {"consumer", options_.consumer}});
  return absl::OkStatus();
}

bool Worker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return Drained();
    stopping_ = true;
  }
  if (fetcher_.joinable()) fetcher_.join();  // Returns within fetch_block.
  bool drained;
  {
    absl::MutexLock lock(&mu_);
    drained = mu_.AwaitWithTimeout(absl::Condition(this, &Worker::Drained),
                                   options_.drain_timeout);
    if (!drained) {
      log::Warning("drain timeout: cancelling running tasks",
                   {{"in_flight", absl::StrCat(in_flight_)},
                    {"drain_timeout", absl::FormatDuration(options_.drain_timeout)}});
    }
  }
  if (!drained) {
    cancel_all_ = true;
    // Handlers that honour cancellation finish promptly; give them a moment
    // to report, but never wait on one that ignores it.
    absl::MutexLock lock(&mu_);
    drained = mu_.AwaitWithTimeout(absl::Condition(this, &Worker::Drained), absl::Seconds(2));
  }
  {
    absl::MutexLock lock(&mu_);
    exit_handlers_ = true;
  }
  for (std::thread& t : handlers_) {
    if (drained) {
      t.join();
    } else {
      t.detach();  // A handler ignoring cancellation must not hang shutdown.
    }
  }
  log::Info("worker stopped", {{"drained", drained ? "true" : "false"}});
  return drained;
}

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Worker::HasWork() const { return exit_handlers_ || !ready_.empty(); }
bool Worker::HasCapacity() const { return stopping_ || in_flight_ < options_.concurrency; }
bool Worker::Drained() const { return in_flight_ == 0; }

void Worker::FetchLoop() {
  std::unique_ptr<redis::Connection> conn;
  absl::Duration backoff = absl::Milliseconds(50);
  absl::Status last_error;

  // Waits before the next try, unless Stop() comes first. Returns false on stop.
  auto pause = [&]() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
    return !stopping_;
  };
  auto report = [&](const absl::Status& status) {
    if (status.message() != last_error.message()) {
      log::Warning("fetch failed; retrying", {{"error", status.message()}});
    }
    last_error = status;
  };

  while (true) {
    int capacity;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Worker::HasCapacity));
      if (stopping_) break;
      capacity = options_.concurrency - in_flight_;
    }
    if (conn == nullptr || conn->broken()) {
      connected_ = false;
      auto c = redis::Connection::Connect(options_.redis);
      absl::Status s = c.ok() ? broker_->EnsureGroups(**c, options_.queues) : c.status();
      if (!s.ok()) {
        report(s);
        if (!pause()) break;
        continue;
      }
      conn = *std::move(c);
      connected_ = true;
      backoff = absl::Milliseconds(50);
      if (!last_error.ok()) log::Info("fetch connection restored");
      last_error = absl::OkStatus();
    }
    absl::StatusOr<std::vector<broker::Delivery>> deliveries =
        broker_->Fetch(*conn, options_.consumer, options_.queues, capacity, options_.fetch_block);
    if (!deliveries.ok()) {
      report(deliveries.status());
      if (!pause()) break;
      continue;
    }
    if (deliveries->empty()) continue;
    {
      absl::MutexLock lock(&mu_);
      in_flight_ += static_cast<int>(deliveries->size());
    }
    for (const broker::Delivery& d : *deliveries) {
      broker_->Start(d, [this, d](absl::StatusOr<absl::optional<broker::Lease>> lease) {
        absl::MutexLock lock(&mu_);
        if (lease.ok() && lease->has_value()) {
          ready_.push_back(**std::move(lease));
          return;
        }
        // A stale entry (cancelled or deleted task) or an error: nothing runs.
        if (!lease.ok()) {
          log::Error("could not start task", {{"task", broker::TaskName(d.queue, d.task_id)},
                                              {"error", lease.status().message()}});
        }
        --in_flight_;
      });
    }
  }
  connected_ = false;
}

void Worker::HandlerLoop() {
  while (true) {
    broker::Lease lease;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Worker::HasWork));
      if (ready_.empty()) return;  // exit_handlers_ and nothing left.
      lease = std::move(ready_.front());
      ready_.pop_front();
    }
    Run(lease);
  }
}

void Worker::Run(const broker::Lease& lease) {
  const broker::Delivery& d = lease.delivery;
  TaskContext ctx;
  ctx.task_name = broker::TaskName(d.queue, d.task_id);
  ctx.type = lease.type;
  ctx.payload = Payload{lease.payload.is_json, lease.payload.data};
  ctx.attempt = lease.attempt;
  ctx.max_attempts = lease.max_attempts;
  const absl::Duration timeout =
      lease.timeout > absl::ZeroDuration() ? lease.timeout : options_.default_timeout;
  ctx.deadline = absl::Now() + timeout;
  ctx.cancel_flag = &cancel_all_;

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
  broker_->Complete(lease, outcome,
                    [this, lease](absl::StatusOr<broker::Completion> completion) {
                      Finished(std::move(completion), lease);
                    });
}

void Worker::Finished(absl::StatusOr<broker::Completion> completion, const broker::Lease& lease) {
  const std::string name = broker::TaskName(lease.delivery.queue, lease.delivery.task_id);
  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (!completion.ok()) {
    log::Error("could not record outcome", {{"task", name}, {"error", completion.status().message()}});
    return;
  }
  switch (*completion) {
    case broker::Completion::kSucceeded:
      ++stats_.succeeded;
      break;
    case broker::Completion::kRetrying:
      ++stats_.retried;
      break;
    case broker::Completion::kFailed:
      ++stats_.failed;
      log::Info("task failed", {{"task", name}, {"attempt", absl::StrCat(lease.attempt)}});
      break;
    case broker::Completion::kFenced:
      ++stats_.fenced;
      log::Warning("outcome fenced: the task moved on without this attempt", {{"task", name}});
      break;
  }
}

}  // namespace taskmesh::workers
