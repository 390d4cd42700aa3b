// The messages of a queue's events channel (taskmesh:{Q}:events), published
// by the transition scripts for watched tasks (see broker/lua/includes/prelude.lua set_state):
//
//   ID VERSION STATE ATTEMPT            a deletion (STATE "DELETED")
//   ID VERSION STATE ATTEMPT\nRECORD    a transition, with the task record
//                                       as it is at VERSION
//
// RECORD is the record's fields and values as netstrings ("3:ver,1:2,..."),
// so a watcher needs no read of its own to report the new state.
#ifndef TASKMESH_BROKER_EVENTS_H_
#define TASKMESH_BROKER_EVENTS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/task_codec.h"

namespace taskmesh::broker {

struct TaskEvent {
  std::string id;
  int64_t version = 0;
  // A Task.State name, or "DELETED".
  std::string state;
  int attempt = 0;
  // The record at `version`; null when the message carried none.
  std::shared_ptr<const Record> record;
};

// INVALID_ARGUMENT for a message not in the form above.
absl::StatusOr<TaskEvent> ParseTaskEvent(absl::string_view message);

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_EVENTS_H_
