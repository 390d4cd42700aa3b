// The Redis layout of a queue. Every key of queue Q starts with the prefix
// `taskmesh:{Q}:`, whose hash tag {Q} puts one queue in one Redis Cluster slot.
//
//   taskmesh:{Q}:stream          stream of PENDING task ids (DEFAULT priority);
//   taskmesh:{Q}:stream:high     ... HIGH and LOW priority; consumer group
//   taskmesh:{Q}:stream:low      "workers" on each
//   taskmesh:{Q}:t:ID            hash: one task's record (see task_codec.h)
//   taskmesh:{Q}:idem:REQID      string: the task id created for a request_id
//   taskmesh:{Q}:scheduled       sorted set: SCHEDULED ids by due time (ms)
//   taskmesh:{Q}:s:STATE         sorted set: ids in STATE by time entered (ms)
//   taskmesh:{Q}:meta            hash: queue settings (paused, rate) and the
//                                rate limiter's bucket (tokens, tts)
//   taskmesh:{Q}:periodic:NAME   string: the last tick a periodic task ran for
//   taskmesh:{Q}:n:ok|fail:SEC   counters of outcomes per second (2 min TTL)
//   taskmesh:{Q}:slot-guard      never exists: declared by every script call (ScriptKeys)
//   taskmesh:{Q}:events          sharded pub/sub channel (SPUBLISH): "ID VERSION STATE
//                                ATTEMPT" and the record, for watched tasks
//   taskmesh:queues              set: every queue name (global, not per slot)
#ifndef TASKMESH_BROKER_KEYS_H_
#define TASKMESH_BROKER_KEYS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace taskmesh::broker {

inline constexpr absl::string_view kConsumerGroup = "workers";
inline constexpr absl::string_view kQueuesKey = "taskmesh:queues";

inline std::string QueuePrefix(absl::string_view queue) {
  return absl::StrCat("taskmesh:{", queue, "}:");
}

// A key of the queue's slot that never exists, declared by every script of
// the queue after its own KEYS. The scripts also touch keys they do not
// declare (built from the prefix, ARGV[1]), but while a slot migrates Redis
// routes a script by its declared keys alone: without the guard a script
// could run on the node that holds only part of the queue's keys and create
// the rest there (its stream, counters), splitting the queue, and MIGRATE
// then fails with BUSYKEY. With the guard missing on both nodes, Redis
// answers TRYAGAIN (the source: some keys missing; the importing target: a
// multi-key call with keys missing) until the slot has moved; the cluster
// client retries TRYAGAIN (tests/fault:f9_cluster_reshard_test).
inline std::string SlotGuardKey(absl::string_view queue) {
  return absl::StrCat(QueuePrefix(queue), "slot-guard");
}

// The KEYS of a script call of `queue` that declares one key of its own.
inline std::vector<std::string> ScriptKeys(absl::string_view queue, std::string key) {
  return {std::move(key), SlotGuardKey(queue)};
}

// The stream of DEFAULT priority; `suffix` "high" or "low" for the others.
inline std::string StreamKey(absl::string_view queue, absl::string_view suffix = "") {
  if (suffix.empty()) return absl::StrCat(QueuePrefix(queue), "stream");
  return absl::StrCat(QueuePrefix(queue), "stream:", suffix);
}

inline std::string TaskKey(absl::string_view queue, absl::string_view id) {
  return absl::StrCat(QueuePrefix(queue), "t:", id);
}

inline std::string IdempotencyKey(absl::string_view queue, absl::string_view request_id) {
  return absl::StrCat(QueuePrefix(queue), "idem:", request_id);
}

inline std::string ScheduledKey(absl::string_view queue) {
  return absl::StrCat(QueuePrefix(queue), "scheduled");
}

inline std::string StateIndexKey(absl::string_view queue, absl::string_view state) {
  return absl::StrCat(QueuePrefix(queue), "s:", state);
}

inline std::string MetaKey(absl::string_view queue) {
  return absl::StrCat(QueuePrefix(queue), "meta");
}

inline std::string PeriodicTickKey(absl::string_view queue, absl::string_view name) {
  return absl::StrCat(QueuePrefix(queue), "periodic:", name);
}

// The channel of a queue's task events (SSUBSCRIBE, broker/watch_hub.h).
inline std::string EventsChannel(absl::string_view queue) {
  return absl::StrCat(QueuePrefix(queue), "events");
}

// The queue of an events channel; empty when `channel` is not one.
inline std::string QueueOfEventsChannel(absl::string_view channel) {
  if (!absl::ConsumePrefix(&channel, "taskmesh:{") ||
      !absl::ConsumeSuffix(&channel, "}:events")) {
    return "";
  }
  return std::string(channel);
}

}  // namespace taskmesh::broker

#endif  // TASKMESH_BROKER_KEYS_H_
