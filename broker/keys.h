// The Redis layout of a queue. Every key of queue Q carries the hash tag {Q},
// so that one queue lives in one Redis Cluster slot.
//
//   taskmesh:{Q}:stream        stream of task ids; consumer group "workers"
//   taskmesh:{Q}:t:ID          hash: one task's record (see task_codec.h)
//   taskmesh:{Q}:idem:REQID    string: the task id created for a request_id
//   taskmesh:queues            set: every queue name (global, not per slot)
#ifndef TASKMESH_BROKER_KEYS_H_
#define TASKMESH_BROKER_KEYS_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace taskmesh::broker {

inline constexpr absl::string_view kConsumerGroup = "workers";
inline constexpr absl::string_view kQueuesKey = "taskmesh:queues";

inline std::string StreamKey(absl::string_view queue) {
  return absl::StrCat("taskmesh:{", queue, "}:stream");
}

inline std::string TaskKey(absl::string_view queue, absl::string_view id) {
  return absl::StrCat("taskmesh:{", queue, "}:t:", id);
}

inline std::string IdempotencyKey(absl::string_view queue, absl::string_view request_id) {
  return absl::StrCat("taskmesh:{", queue, "}:idem:", request_id);
}

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_KEYS_H_
