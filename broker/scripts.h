// The Lua scripts of the queue protocol. Each state transition of a task is
// one script, so it is atomic; every transition also moves the task between
// the queue's state indexes and publishes an event for watchers.
//
// Conventions shared by all scripts:
//   KEYS[1]  a key of the queue (routes the call to the queue's slot)
//   ARGV[1]  the queue's key prefix, `taskmesh:{QUEUE}:` (see keys.h)
//   ARGV[2]  retention of finished tasks, in ms
//   ARGV[3...] the script's own arguments, documented atop its file
// Each script is a file of broker/lua/ (lines `--- @include "includes/..."`
// pull in shared helpers); the build embeds them (lua/embed.py), and a Redis
// error names the file and line it came from (redis::Script::Locate).
// luacheck lints them (//broker:lua_lint_test).
// Time comes from the Redis server clock (TIME), never from callers. Streams
// are never trimmed by length: an entry is XACKed and XDELed once its task no
// longer needs it.
#ifndef TASKMESH_BROKER_SCRIPTS_H_
#define TASKMESH_BROKER_SCRIPTS_H_

#include "redis/script.h"

namespace taskmesh::broker::scripts {

// Task record + stream entry (or scheduled set) + idempotency record, for
// a batch of tasks (ScriptBatcher).
const redis::Script& Enqueue();
// Reads new entries of the queue's priority streams (weighted order) and
// starts them: PENDING -> RUNNING under a lease.
const redis::Script& Fetch();
// Starts entries that a blocking XREADGROUP delivered.
const redis::Script& StartDelivered();
// Claims entries whose lease expired (XAUTOCLAIM) and starts them again, or
// dead-letters a task that lost too many attempts.
const redis::Script& Reclaim();
// Extends a running attempt's lease; reports cancellation or a lost lease.
const redis::Script& Renew();
// Records a running attempt's progress.
const redis::Script& Progress();
// RUNNING -> SUCCEEDED | SCHEDULED/PENDING (retry) | FAILED | CANCELLED,
// for a batch of outcomes (ScriptBatcher).
const redis::Script& Complete();
// RUNNING -> PENDING without using up an attempt (drain).
const redis::Script& HandBack();
// SCHEDULED -> PENDING for due tasks.
const redis::Script& Promote();
// PENDING/SCHEDULED -> CANCELLED; RUNNING: asks the worker to stop.
const redis::Script& Cancel();
// FAILED/CANCELLED -> PENDING with fresh attempts.
const redis::Script& Retry();
// Removes a task that is not RUNNING.
const redis::Script& Delete();
// Removes up to N dead (and optionally waiting) tasks.
const redis::Script& Purge();
// Reads a task record and marks the task watched (its transitions publish
// events from then on).
const redis::Script& Watch();
// A page of task records from the state indexes.
const redis::Script& List();
// A queue's figures: paused, counts by state, outcomes in the last minute.
const redis::Script& Stats();
// Readies a partition (streams, groups, pause, rate limit) before a queue's
// new partition count is published (broker/partitions.h).
const redis::Script& InitPartition();

}  // namespace taskmesh::broker::scripts

#endif  // TASKMESH_BROKER_SCRIPTS_H_
