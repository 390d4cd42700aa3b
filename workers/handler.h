// The handler API: what users implement to run a task type.
//
// A handler is a function from a TaskContext (the payload, the task's name,
// attempt, deadline and a cancellation flag) to a Result or an error. It runs
// on one of the worker's handler threads and may block (I/O, CPU work).
//
//   * Return a Result: the task SUCCEEDED with that result.
//   * Return an error: the attempt failed; the task is retried while attempts
//     remain, unless the error is wrapped in SkipRetry().
//   * Watch ctx.cancelled() and ctx.deadline in long work: past the deadline
//     the attempt fails with DEADLINE_EXCEEDED whatever the handler returns.
//
// Delivery is at-least-once: make effects idempotent, keyed on ctx.task_name.
//
// Example:
//   registry.Register("resize", [](const TaskContext& ctx) -> absl::StatusOr<Result> {
//     ASSIGN_OR_RETURN(auto image, Fetch(ctx.payload.data));
//     if (ctx.cancelled()) return absl::CancelledError("stopped");
//     return Result::Json(R"({"ok":true})");
//   });
#ifndef TASKMESH_WORKERS_HANDLER_H_
#define TASKMESH_WORKERS_HANDLER_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace taskmesh::workers {

struct Payload {
  // True: `data` is JSON text (REST clients, `payload` field); false: raw
  // bytes (`payload_bytes`).
  bool is_json = true;
  std::string data;
};

struct TaskContext {
  // `queues/{queue}/tasks/{task}`: a stable key for idempotent effects.
  std::string task_name;
  std::string type;
  Payload payload;
  // 1 for the first attempt.
  int attempt = 1;
  int max_attempts = 1;
  // When this attempt times out.
  absl::Time deadline = absl::InfiniteFuture();
  // Set when the handler should stop: CancelTask, a lost lease, shutdown.
  const std::atomic<bool>* cancel_flag = nullptr;
  // Reports progress (0-100 and a short message), visible in GetTask and
  // WatchTask. Asynchronous and cheap; may be null in tests.
  std::function<void(int percent, const std::string& message)> progress;

  bool cancelled() const { return cancel_flag != nullptr && cancel_flag->load(); }
  // Cancelled, or past the deadline: long work should stop.
  bool should_stop() const { return cancelled() || absl::Now() >= deadline; }
  void ReportProgress(int percent, const std::string& message) const {
    if (progress) progress(percent, message);
  }
};

struct Result {
  static Result Json(std::string json) { return Result{true, std::move(json)}; }
  static Result Bytes(std::string bytes) { return Result{false, std::move(bytes)}; }

  bool is_json = true;
  std::string data;
};

using Handler = std::function<absl::StatusOr<Result>(const TaskContext&)>;

// Marks an error as final: the task fails now without further attempts.
absl::Status SkipRetry(absl::Status status);
bool IsSkipRetry(const absl::Status& status);

// Maps task types to handlers. Build it before the worker starts; it is
// read-only (and so thread-safe) afterwards.
class HandlerRegistry {
 public:
  // Replaces any handler registered for `type`.
  void Register(std::string type, Handler handler);
  // nullptr when no handler is registered for `type`.
  const Handler* Find(absl::string_view type) const;
  // Sorted, for messages and --help.
  std::vector<std::string> Types() const;

 private:
  absl::flat_hash_map<std::string, Handler> handlers_;
};

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_HANDLER_H_
