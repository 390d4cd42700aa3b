#include "broker/task_codec.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "broker/partitions.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace taskmesh::broker {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::taskmesh::v1::Task;

int64_t IntField(const Record& record, absl::string_view field) {
  auto it = record.find(field);
  int64_t value = 0;
  if (it != record.end()) (void)absl::SimpleAtoi(it->second, &value);
  return value;
}

const std::string& StrField(const Record& record, absl::string_view field) {
  static const std::string* empty = new std::string();
  auto it = record.find(field);
  return it == record.end() ? *empty : it->second;
}

// A time field (Unix ms), or nullopt when absent or zero.
absl::optional<google::protobuf::Timestamp> TimeField(const Record& record,
                                                      absl::string_view field) {
  const int64_t ms = IntField(record, field);
  if (ms <= 0) return absl::nullopt;
  return TimeUtil::MillisecondsToTimestamp(ms);
}

absl::Status ParseJsonValue(const std::string& json, google::protobuf::Value* value) {
  auto status = google::protobuf::util::JsonStringToMessage(json, value);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("stored JSON does not parse: ", status.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t RecordVersion(const Record& record) { return IntField(record, "ver"); }

std::string TaskName(absl::string_view queue, absl::string_view id) {
  return absl::StrCat("queues/", QueueOfPartition(queue), "/tasks/", id);
}

absl::StatusOr<Blob> PayloadOf(const Task& task) {
  Blob blob;
  if (task.payload_kind_case() == Task::kPayloadBytes) {
    blob.data = task.payload_bytes();
    return blob;
  }
  blob.is_json = true;
  if (task.payload_kind_case() != Task::kPayload) {
    blob.data = "null";
    return blob;
  }
  auto status = google::protobuf::util::MessageToJsonString(task.payload(), &blob.data);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("task.payload: ", status.ToString()));
  }
  return blob;
}

absl::StatusOr<std::vector<std::string>> NewTaskFields(const Task& task, int max_attempts) {
  auto payload = PayloadOf(task);
  if (!payload.ok()) return payload.status();
  std::vector<std::string> f = {
      "type", task.type(),
      "pk", payload->is_json ? "j" : "b",
      "payload", std::move(payload->data),
      "prio", absl::StrCat(static_cast<int>(task.priority())),
      "max_att", absl::StrCat(task.max_attempts() > 0 ? task.max_attempts() : max_attempts),
      "tmo_ms", absl::StrCat(task.has_attempt_timeout()
                                 ? TimeUtil::DurationToMilliseconds(task.attempt_timeout())
                                 : 0),
      "sched_ms", absl::StrCat(task.has_schedule_time()
                                   ? TimeUtil::TimestampToMilliseconds(task.schedule_time())
                                   : 0),
  };
  if (!task.request_id().empty()) {
    f.push_back("req_id");
    f.push_back(task.request_id());
  }
  for (const auto& [key, value] : task.labels()) {
    f.push_back(absl::StrCat("l:", key));
    f.push_back(value);
  }
  return f;
}

absl::StatusOr<Task> TaskFromRecord(absl::string_view queue, absl::string_view id,
                                    const Record& record) {
  if (record.empty() || !record.contains("state")) {
    return absl::NotFoundError(absl::StrCat("task ", TaskName(queue, id), " not found"));
  }
  Task task;
  task.set_name(TaskName(queue, id));
  task.set_type(StrField(record, "type"));
  if (StrField(record, "pk") == "b") {
    task.set_payload_bytes(StrField(record, "payload"));
  } else if (record.contains("payload")) {
    if (auto s = ParseJsonValue(StrField(record, "payload"), task.mutable_payload()); !s.ok()) {
      return s;
    }
  }
  const int64_t prio = IntField(record, "prio");
  if (Task::Priority_IsValid(static_cast<int>(prio))) {
    task.set_priority(static_cast<Task::Priority>(prio));
  }
  task.set_max_attempts(static_cast<int32_t>(IntField(record, "max_att")));
  if (const int64_t ms = IntField(record, "tmo_ms"); ms > 0) {
    *task.mutable_attempt_timeout() = TimeUtil::MillisecondsToDuration(ms);
  }
  if (auto t = TimeField(record, "sched_ms")) *task.mutable_schedule_time() = *t;
  task.set_request_id(StrField(record, "req_id"));
  for (const auto& [field, value] : record) {
    if (absl::StartsWith(field, "l:")) (*task.mutable_labels())[field.substr(2)] = value;
  }
  Task::State state = Task::STATE_UNSPECIFIED;
  if (!Task::State_Parse(StrField(record, "state"), &state)) {
    return absl::DataLossError(
        absl::StrCat("task ", id, " has unknown state '", StrField(record, "state"), "'"));
  }
  task.set_state(state);
  task.set_attempt(static_cast<int32_t>(IntField(record, "attempt")));
  if (auto t = TimeField(record, "ctime")) *task.mutable_create_time() = *t;
  if (auto t = TimeField(record, "mtime")) *task.mutable_update_time() = *t;
  if (auto t = TimeField(record, "stime")) *task.mutable_start_time() = *t;
  if (auto t = TimeField(record, "etime")) *task.mutable_end_time() = *t;
  if (record.contains("rk")) {
    if (StrField(record, "rk") == "b") {
      task.set_result_bytes(StrField(record, "result"));
    } else if (auto s = ParseJsonValue(StrField(record, "result"), task.mutable_result());
               !s.ok()) {
      return s;
    }
  }
  if (const int64_t code = IntField(record, "err_code"); code != 0) {
    task.mutable_last_error()->set_code(static_cast<int32_t>(code));
    task.mutable_last_error()->set_message(StrField(record, "err_msg"));
  }
  if (record.contains("prog_pct")) {
    task.mutable_progress()->set_percent(static_cast<int32_t>(IntField(record, "prog_pct")));
    task.mutable_progress()->set_message(StrField(record, "prog_msg"));
  }
  return task;
}

}  // namespace taskmesh::broker
