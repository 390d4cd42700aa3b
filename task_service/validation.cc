#include "task_service/validation.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"

namespace taskmesh::task_service {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::taskmesh::v1::Task;

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-';
}

bool IsTypeChar(char c) { return IsIdChar(c) || c == '.' || c == ':'; }

template <typename Pred>
bool AllOf(absl::string_view s, Pred pred) {
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

// Quotes user text in messages, shortened so that errors stay one line.
std::string Quote(absl::string_view s) {
  if (s.size() > 80) return absl::StrCat("'", s.substr(0, 80), "...'");
  return absl::StrCat("'", s, "'");
}

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckQueueId(absl::string_view queue, absl::string_view field,
                          absl::string_view name) {
  if (queue.empty() || queue.size() > 64 || !AllOf(queue, IsIdChar)) {
    return Invalid(field, absl::StrCat("queue name must be 1-64 characters of [A-Za-z0-9_-]; got ",
                                       Quote(name)));
  }
  return absl::OkStatus();
}

absl::Status CheckTaskId(absl::string_view id, absl::string_view field) {
  if (id.empty() || id.size() > 128 || !AllOf(id, IsIdChar)) {
    return Invalid(field,
                   absl::StrCat("task id must be 1-128 characters of [A-Za-z0-9_-]; got ", Quote(id)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ParseQueueName(absl::string_view name, absl::string_view field) {
  absl::string_view rest = name;
  if (name.empty()) return Invalid(field, "required (queues/{queue})");
  if (!absl::ConsumePrefix(&rest, "queues/")) {
    return Invalid(field, absl::StrCat("must look like queues/{queue}; got ", Quote(name)));
  }
  if (auto s = CheckQueueId(rest, field, name); !s.ok()) return s;
  return std::string(rest);
}

absl::StatusOr<TaskRef> ParseTaskName(absl::string_view name, absl::string_view field) {
  if (name.empty()) return Invalid(field, "required (queues/{queue}/tasks/{task})");
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 4 || parts[0] != "queues" || parts[2] != "tasks") {
    return Invalid(field,
                   absl::StrCat("must look like queues/{queue}/tasks/{task}; got ", Quote(name)));
  }
  if (auto s = CheckQueueId(parts[1], field, name); !s.ok()) return s;
  if (auto s = CheckTaskId(parts[3], field); !s.ok()) return s;
  return TaskRef{std::string(parts[1]), std::string(parts[3])};
}

absl::Status ValidatePageSize(int page_size) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return Invalid("page_size", absl::StrCat("must be 0 (default 50) to ", kMaxPageSize,
                                             "; got ", page_size));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ValidateCreate(const taskmesh::v1::CreateTaskRequest& request,
                                           absl::string_view field_prefix, absl::Time now) {
  auto f = [&](absl::string_view field) { return absl::StrCat(field_prefix, field); };
  std::string queue;
  if (!request.parent().empty() || field_prefix.empty()) {
    auto parsed = ParseQueueName(request.parent(), f("parent"));
    if (!parsed.ok()) return parsed.status();
    queue = *parsed;
  }
  if (!request.task_id().empty()) {
    if (auto s = CheckTaskId(request.task_id(), f("task_id")); !s.ok()) return s;
  }
  if (!request.has_task()) return Invalid(f("task"), "required");
  const Task& task = request.task();
  if (task.type().empty()) return Invalid(f("task.type"), "required (the handler name)");
  if (task.type().size() > 128 || !AllOf(task.type(), IsTypeChar)) {
    return Invalid(f("task.type"),
                   absl::StrCat("must be 1-128 characters of [A-Za-z0-9_.:-]; got ",
                                Quote(task.type())));
  }
  const size_t payload_size = task.payload_kind_case() == Task::kPayloadBytes
                                  ? task.payload_bytes().size()
                                  : task.payload().ByteSizeLong();
  if (payload_size > kMaxPayloadBytes) {
    return Invalid(f("task.payload"), absl::StrCat("at most ", kMaxPayloadBytes,
                                                   " bytes; got ", payload_size));
  }
  if (!Task::Priority_IsValid(task.priority())) {
    return Invalid(f("task.priority"), absl::StrCat("unknown priority ", task.priority()));
  }
  if (task.max_attempts() < 0 || task.max_attempts() > kMaxAttempts) {
    return Invalid(f("task.max_attempts"),
                   absl::StrCat("must be 0 (queue default) to ", kMaxAttempts, "; got ",
                                task.max_attempts()));
  }
  if (task.has_attempt_timeout()) {
    const auto& d = task.attempt_timeout();
    if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() > 999999999 ||
        d.seconds() > 24 * 3600 || (d.seconds() == 24 * 3600 && d.nanos() > 0)) {
      return Invalid(f("task.attempt_timeout"), "must be from 0s to 86400s");
    }
  }
  if (task.has_schedule_time()) {
    const auto& ts = task.schedule_time();
    // RFC 3339's range, as google/protobuf/timestamp.proto defines it.
    if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 || ts.nanos() < 0 ||
        ts.nanos() > 999999999) {
      return Invalid(f("task.schedule_time"), "not a valid timestamp");
    }
    const absl::Time when =
        absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(task.schedule_time()));
    if (when > now + kMaxScheduleAhead) {
      return Invalid(f("task.schedule_time"), "at most 365 days ahead");
    }
  }
  if (task.request_id().size() > 128) {
    return Invalid(f("task.request_id"), "at most 128 characters");
  }
  if (task.labels_size() > kMaxLabels) {
    return Invalid(f("task.labels"), absl::StrCat("at most ", kMaxLabels, " labels; got ",
                                                  task.labels_size()));
  }
  for (const auto& [key, value] : task.labels()) {
    if (key.empty() || key.size() > 256) {
      return Invalid(f("task.labels"), "keys must be 1-256 characters");
    }
    if (value.size() > 256) {
      return Invalid(f("task.labels"),
                     absl::StrCat("value of ", Quote(key), " is longer than 256 characters"));
    }
  }
  return queue;
}

}  // namespace taskmesh::task_service
