// Request validation for TaskService: every rule, limit and error message.
// Each failure is INVALID_ARGUMENT naming the field and the rule, so a
// client can fix its request without reading our code.
//
// Limits (also in README.md):
//   queue name     1-64 characters of [A-Za-z0-9_-]
//   task id        1-128 characters of [A-Za-z0-9_-]
//   task type      1-128 characters of [A-Za-z0-9_.:-]
//   payload        at most 1 MiB (raw bytes, or the JSON value's encoded size)
//   max_attempts   0 (queue default) to 100
//   attempt_timeout  0 to 24 h
//   schedule_time  at most 365 days ahead
//   request_id     at most 128 characters
//   labels         at most 64; keys 1-256 characters, values at most 256
//   batch          1 to 1000 tasks
//   page_size      0 (default 50) to 1000
//   rate_limit     0 (unlimited) to 1,000,000 tasks per second
//
// Thread-compatible free functions.
#ifndef TASKMESH_TASK_SERVICE_VALIDATION_H_
#define TASKMESH_TASK_SERVICE_VALIDATION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "taskmesh/v1/task_service.pb.h"

namespace taskmesh::task_service {

inline constexpr size_t kMaxPayloadBytes = 1 << 20;
inline constexpr int kMaxAttempts = 100;
inline constexpr int kMaxBatch = 1000;
inline constexpr int kMaxLabels = 64;
inline constexpr int kMaxPageSize = 1000;
inline constexpr double kMaxRateLimit = 1e6;
inline constexpr absl::Duration kMaxScheduleAhead = absl::Hours(24 * 365);

struct TaskRef {
  std::string queue;
  std::string id;
};

// `queues/{queue}` -> queue. `field` names the request field in errors.
absl::StatusOr<std::string> ParseQueueName(absl::string_view name, absl::string_view field);

// `queues/{queue}/tasks/{task}` -> {queue, task}.
absl::StatusOr<TaskRef> ParseTaskName(absl::string_view name, absl::string_view field);

// Checks a CreateTaskRequest (its parent may be empty inside a batch).
// `now` bounds how far ahead schedule_time may lie. Returns the queue.
// page_size: 0 (the default) to kMaxPageSize.
absl::Status ValidatePageSize(int page_size);

absl::StatusOr<std::string> ValidateCreate(const taskmesh::v1::CreateTaskRequest& request,
                                           absl::string_view field_prefix, absl::Time now);

}  // namespace taskmesh::task_service

#endif  // TASKMESH_TASK_SERVICE_VALIDATION_H_
