// The task record: how a taskmesh.v1.Task is stored as a Redis hash.
//
// Field        Meaning
// id           the task id
// type         handler name
// pk, payload  payload kind ("j": compact JSON text, "b": raw bytes) and data
// prio         Task.Priority number
// max_att      attempts allowed
// tmo_ms       per-attempt timeout in ms (0: the worker's default)
// sched_ms     schedule time, Unix ms (0: none)
// req_id       request_id
// l:KEY        one label
// state        Task.State name, e.g. "PENDING"
// attempt      attempts started
// ctime mtime stime etime   create/update/start/end time, Unix ms (Redis clock)
// rk, result   result kind ("j" or "b") and data
// err_code err_msg          last error (google.rpc.Code number, message)
// prog_pct prog_msg         last progress
// sid          the task's current stream entry id (empty while SCHEDULED)
// lease        RUNNING: when the lease expires, Unix ms (Redis clock); "" after
// consumer     RUNNING: the worker that holds the lease
// lost         attempts lost to a crashed or frozen worker
// cancel       "1" when cancellation of a RUNNING task was requested ("" or none: not)
// ver          version: bumped by every transition (see the events channel)
// w            "1" once a WatchTask opened: transitions publish events
//
// Thread-compatible free functions.
#ifndef TASKMESH_BROKER_TASK_CODEC_H_
#define TASKMESH_BROKER_TASK_CODEC_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "taskmesh/v1/task.pb.h"

namespace taskmesh::broker {

using Record = absl::flat_hash_map<std::string, std::string>;

// Payload or result data as a handler sees it.
struct Blob {
  bool is_json = false;
  std::string data;
};

// The caller-settable fields of `task` as alternating field, value strings,
// for the enqueue script. `max_attempts` replaces an unset task.max_attempts.
absl::StatusOr<std::vector<std::string>> NewTaskFields(const taskmesh::v1::Task& task,
                                                       int max_attempts);

// Rebuilds a Task from its record. NOT_FOUND for an empty record.
absl::StatusOr<taskmesh::v1::Task> TaskFromRecord(absl::string_view queue,
                                                  absl::string_view id, const Record& record);

// The record's version ("ver"): bumped by every transition.
int64_t RecordVersion(const Record& record);

// The task's payload (a Value becomes compact JSON text).
absl::StatusOr<Blob> PayloadOf(const taskmesh::v1::Task& task);

// `queues/{queue}/tasks/{id}`; for a partition (`Q~p`, partitions.h), its queue's name.
std::string TaskName(absl::string_view queue, absl::string_view id);

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_TASK_CODEC_H_
