#include "broker/scripts.h"

namespace taskmesh::broker::scripts {
namespace {

// Milliseconds on the Redis server clock.
#define TM_LUA_NOW                           \
  "local t = redis.call('TIME')\n"          \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

}  // namespace

// KEYS: task record, stream[, idempotency record]
// ARGV: task id, idempotency TTL in seconds, field, value, ...
// Returns {1, now_ms, stream_id} when created, {0, existing_id} for a known
// request_id, {-1} when the task id is taken.
const redis::Script& Enqueue() {
  static const redis::Script* script = new redis::Script(
      "if #KEYS >= 3 then\n"
      "  local existing = redis.call('GET', KEYS[3])\n"
      "  if existing then return {0, existing} end\n"
      "end\n"
      "if redis.call('EXISTS', KEYS[1]) == 1 then return {-1} end\n"
      TM_LUA_NOW
      "local fields = {'state', 'PENDING', 'attempt', 0, 'ctime', now, 'mtime', now}\n"
      "for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end\n"
      "redis.call('HSET', KEYS[1], unpack(fields))\n"
      "local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])\n"
      "redis.call('HSET', KEYS[1], 'sid', sid)\n"
      "if #KEYS >= 3 then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2]) end\n"
      "return {1, now, sid}\n");
  return *script;
}

// KEYS: task record, stream
// ARGV: consumer group, stream entry id
// Returns the record (HGETALL) of the task now RUNNING, or nil when the entry
// is stale (task cancelled, deleted, or re-enqueued under another entry);
// a stale entry is acknowledged and deleted.
const redis::Script& Start() {
  static const redis::Script* script = new redis::Script(
      "local cur = redis.call('HMGET', KEYS[1], 'state', 'sid')\n"
      "if cur[1] ~= 'PENDING' or cur[2] ~= ARGV[2] then\n"
      "  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])\n"
      "  redis.call('XDEL', KEYS[2], ARGV[2])\n"
      "  return false\n"
      "end\n"
      TM_LUA_NOW
      "redis.call('HINCRBY', KEYS[1], 'attempt', 1)\n"
      "redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'stime', now, 'mtime', now)\n"
      "return redis.call('HGETALL', KEYS[1])\n");
  return *script;
}

// KEYS: task record, stream
// ARGV: group, stream entry id, attempt, outcome ('S' or 'F'), result kind,
//       result, error code, error message, retention ms, retryable ('1'/'0'),
//       task id
// Returns 'succeeded', 'retrying', 'failed', or 'fenced' when the caller no
// longer holds the task (another attempt or state took over): then nothing
// is written.
const redis::Script& Complete() {
  static const redis::Script* script = new redis::Script(
      "local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'max_att', 'sid')\n"
      "if cur[1] ~= 'RUNNING' or cur[2] ~= ARGV[3] or cur[4] ~= ARGV[2] then\n"
      "  return 'fenced'\n"
      "end\n"
      TM_LUA_NOW
      "redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])\n"
      "redis.call('XDEL', KEYS[2], ARGV[2])\n"
      "if ARGV[4] == 'S' then\n"
      "  redis.call('HSET', KEYS[1], 'state', 'SUCCEEDED', 'rk', ARGV[5], 'result', ARGV[6],\n"
      "             'etime', now, 'mtime', now)\n"
      "  redis.call('PEXPIRE', KEYS[1], ARGV[9])\n"
      "  return 'succeeded'\n"
      "end\n"
      "redis.call('HSET', KEYS[1], 'err_code', ARGV[7], 'err_msg', ARGV[8], 'mtime', now)\n"
      "if ARGV[10] == '1' and tonumber(cur[2]) < tonumber(cur[3]) then\n"
      "  local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[11])\n"
      "  redis.call('HSET', KEYS[1], 'state', 'PENDING', 'sid', sid)\n"
      "  return 'retrying'\n"
      "end\n"
      "redis.call('HSET', KEYS[1], 'state', 'FAILED', 'etime', now)\n"
      "redis.call('PEXPIRE', KEYS[1], ARGV[9])\n"
      "return 'failed'\n");
  return *script;
}

#undef TM_LUA_NOW

}  // namespace taskmesh::broker::scripts
