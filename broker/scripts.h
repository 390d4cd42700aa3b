// The Lua scripts of the queue protocol: each state transition of a task is
// one script, so it is atomic. Time comes from the Redis server clock (TIME),
// never from callers. Streams are never trimmed by length: an entry is
// XACKed and XDELed once its task no longer needs it.
//
// KEYS and ARGV of each script are documented in scripts.cc.
#ifndef TASKMESH_BROKER_SCRIPTS_H_
#define TASKMESH_BROKER_SCRIPTS_H_

#include "redis/script.h"

namespace taskmesh::broker::scripts {

// Task record + stream entry + idempotency record, in one step.
const redis::Script& Enqueue();
// PENDING -> RUNNING for a delivered stream entry; drops stale entries.
const redis::Script& Start();
// RUNNING -> SUCCEEDED | PENDING (retry) | FAILED, fenced by attempt.
const redis::Script& Complete();

}  // namespace taskmesh::broker::scripts

#endif  // TASKMESH_BROKER_SCRIPTS_H_
