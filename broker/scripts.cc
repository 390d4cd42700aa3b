#include "broker/scripts.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace taskmesh::broker::scripts {
namespace {

// Shared by every script: key helpers, the clock, state moves and events.
constexpr char kPrelude[] = R"lua(
local P = ARGV[1]
local RETENTION = tonumber(ARGV[2])
local G = 'workers'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Numbers go to Redis as text. Lua's own conversion is a float printf (about
-- a tenth of Redis's CPU per task when it was measured); integer formatting
-- is far cheaper. T(now) formats the script's clock once per call.
local function I(n)
  if type(n) == 'number' then return string.format('%d', n) end
  return n
end
local now_text, now_of
local function T(now)
  if now ~= now_of then now_text, now_of = I(now), now end
  return now_text
end

local function tkey(id) return P .. 't:' .. id end

-- States with an index (sorted set of ids by the time they entered it).
-- PENDING and RUNNING tasks have none: they are the entries of the priority
-- streams not yet delivered, and those delivered and not yet acknowledged
-- (see kStreamStates), which Redis keeps anyway.
local INDEXED = {SCHEDULED = true, SUCCEEDED = true, FAILED = true, CANCELLED = true}

-- The stream of a priority (Task.Priority: 3 HIGH, 1 LOW, else DEFAULT).
local function stream_for(prio)
  if prio == '3' then return P .. 'stream:high' end
  if prio == '1' then return P .. 'stream:low' end
  return P .. 'stream'
end

-- Moves a task between state indexes (if indexed) and writes its new state together with
-- `fields` (a flat field, value list) in one HSET; bumps its version and,
-- for a watched task, tells watchers. `attempt`: the task's attempt number
-- (read when nil). `ver`: its version before this move, when the caller read
-- it (saves a call). `watched`: its 'w' field, when the caller read it
-- (false: unwatched); nil: looked up here. WatchTask sets 'w' (the Watch
-- script) before its first read, so a watcher misses no transition, and
-- unwatched tasks cost no event.
local function set_state(id, task, from, to, now, attempt, fields, ver, watched)
  if from ~= to then
    if INDEXED[from] then redis.call('ZREM', P .. 's:' .. from, id) end
    if INDEXED[to] then redis.call('ZADD', P .. 's:' .. to, T(now), id) end
  end
  local hset = {'state', to, 'mtime', T(now)}
  if fields then
    for i = 1, #fields do hset[#hset + 1] = fields[i] end
  end
  if ver then
    ver = (tonumber(ver) or 0) + 1
    hset[#hset + 1] = 'ver'
    hset[#hset + 1] = I(ver)
  end
  redis.call('HSET', task, unpack(hset))
  if not ver then ver = redis.call('HINCRBY', task, 'ver', '1') end
  if watched == nil then watched = redis.call('HEXISTS', task, 'w') == 1 end
  if watched then
    attempt = attempt or redis.call('HGET', task, 'attempt') or '0'
    -- The record as of this version rides along (broker/events.h), so the
    -- watcher needs no read of its own.
    local rec = redis.call('HGETALL', task)
    local parts = {id .. ' ' .. I(ver) .. ' ' .. to .. ' ' .. I(attempt) .. '\n'}
    for i = 1, #rec do parts[#parts + 1] = #rec[i] .. ':' .. rec[i] .. ',' end
    redis.call('PUBLISH', P .. 'events', table.concat(parts))
  end
end

-- Counts an outcome in a per-second bucket kept for two minutes. True for
-- the first outcome of its second.
local function count(what, now)
  local k = P .. 'n:' .. what .. ':' .. math.floor(now / 1000)
  if redis.call('INCR', k) == 1 then
    redis.call('EXPIRE', k, 120)
    return true
  end
  return false
end

-- Ends a task: terminal state (with `fields`, as for set_state), expiry
-- after the retention. With `prune` (about once a second), index entries
-- older than the retention go too.
local function finish(id, task, from, to, now, attempt, fields, prune, ver, watched)
  -- No lease any more, and a cancel request is answered: emptied in the
  -- same HSET (cheaper than an HDEL; readers treat '' as unset).
  local f = {'etime', T(now), 'lease', '', 'cancel', ''}
  if fields then
    for i = 1, #fields do f[#f + 1] = fields[i] end
  end
  set_state(id, task, from, to, now, attempt, f, ver, watched)
  redis.call('PEXPIRE', task, ARGV[2])
  if prune then redis.call('ZREMRANGEBYSCORE', P .. 's:' .. to, '-inf', now - RETENTION) end
end

-- Appends a task id to a stream. A new stream gets its consumer group at
-- once, so that its lag is visible (to KEDA) before any worker exists.
-- (Checked once per stream and script call.)
local grouped = {}
local function xadd(stream, id)
  if not grouped[stream] then
    if redis.call('EXISTS', stream) == 0 then
      redis.call('XGROUP', 'CREATE', stream, G, '0', 'MKSTREAM')
    end
    grouped[stream] = true
  end
  return redis.call('XADD', stream, '*', 'id', id)
end

local function ack(stream, sid)
  redis.call('XACK', stream, G, sid)
  redis.call('XDEL', stream, sid)
end

-- The id of the last entry the workers' group was given; nil without a
-- stream.
local function last_delivered(stream)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return nil end
  for _, g in ipairs(groups) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    if name == G then return last end
  end
  return '0-0'
end

-- Stream entry ids ('ms-seq') in order.
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

-- Deletes entries of a stream, some of which the group may not have
-- delivered yet (a cancelled, deleted or purged PENDING task), keeping the
-- group's lag exact. KEDA scales the workers on that lag (XINFO GROUPS).
-- Redis cannot compute it (it reports nil, and KEDA reads -1: no wake-up
-- from zero workers) once an undelivered entry is XDELed, until the group
-- reads past it. So the stream's counters are set to what they would be had
-- the deleted entries never been added: entries-added minus the undelivered
-- ones removed, and no deletion after the group's position (XSETID).
local function xdel_entries(stream, sids)
  local last = last_delivered(stream) or '0-0'
  local undelivered = 0
  for _, sid in ipairs(sids) do
    if redis.call('XDEL', stream, sid) == 1 and id_less(last, sid) then
      undelivered = undelivered + 1
    end
  end
  if undelivered == 0 then return end
  local info = redis.call('XINFO', 'STREAM', stream)
  local added, top
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'last-generated-id' then top = info[i + 1] end
  end
  redis.call('XSETID', stream, top, 'ENTRIESADDED', I(added - undelivered), 'MAXDELETEDID', '0-1')
end

-- Starts the task of a delivered stream entry under a lease; returns the
-- fields a worker needs (id, type, payload, pk, attempt, max_att, tmo_ms),
-- or nil when there is nothing to run (stale entry, dead letter).
local function start(stream, sid, id, consumer, lease_ms, poison_after, now)
  local task = tkey(id)
  -- One read: the fields that decide, then those a worker needs.
  local cur = redis.call('HMGET', task, 'state', 'sid', 'attempt', 'max_att', 'cancel', 'ver',
                         'id', 'type', 'payload', 'pk', 'tmo_ms', 'w')
  local state = cur[1]
  if cur[2] ~= sid or (state ~= 'PENDING' and state ~= 'RUNNING') then
    ack(stream, sid)
    return nil
  end
  if state == 'RUNNING' then
    -- The previous attempt's lease expired: its worker crashed or froze.
    local lost = redis.call('HINCRBY', task, 'lost', '1')
    if cur[5] == '1' then
      ack(stream, sid)
      finish(id, task, 'RUNNING', 'CANCELLED', now, cur[3],
             {'err_code', '1', 'err_msg', 'cancelled while running'}, true)
      return nil
    end
    local attempt = tonumber(cur[3])
    if lost >= poison_after or attempt >= tonumber(cur[4]) then
      ack(stream, sid)
      local first = count('fail', now)
      finish(id, task, 'RUNNING', 'FAILED', now, cur[3], {'err_code', '10', 'err_msg',
        'attempt ' .. attempt .. ' was lost: its worker stopped renewing the lease (crashed or ' ..
        'stalled); ' .. lost .. ' attempt(s) lost in all, dead-lettered'}, first)
      return nil
    end
  end
  local attempt = (tonumber(cur[3]) or 0) + 1
  set_state(id, task, state, 'RUNNING', now, attempt,
            {'attempt', I(attempt), 'stime', T(now), 'lease', I(now + lease_ms), 'consumer', consumer},
            cur[6], cur[12])
  -- Only what the worker needs to run it (see Consumer::ParseStarted).
  return {cur[7], cur[8], cur[9] or false, cur[10] or false, I(attempt), cur[4],
          cur[11] or false}
end

local function id_of(fields)
  if not fields then return nil end
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then return fields[i + 1] end
  end
  return nil
end

-- Starts each entry of an XREADGROUP/XAUTOCLAIM entry list; appends
-- stream, entry id, record to `out`. Returns how many entries it saw.
local function start_entries(out, stream, entries, consumer, lease_ms, poison_after, now)
  for _, e in ipairs(entries) do
    local id = id_of(e[2])
    if id then
      local rec = start(stream, e[1], id, consumer, lease_ms, poison_after, now)
      if rec then
        out[#out + 1] = stream
        out[#out + 1] = e[1]
        out[#out + 1] = rec
      end
    else
      -- Deleted entry still pending: nothing to run.
      redis.call('XACK', stream, G, e[1])
    end
  end
  return #entries
end
)lua";

// For the scripts that list or count PENDING and RUNNING tasks.
constexpr char kStreamStates[] = R"lua(
local STREAMS = {P .. 'stream:high', P .. 'stream', P .. 'stream:low'}


-- The stream entries of `state` tasks in priority order: PENDING, those not
-- yet delivered; RUNNING, those delivered and not yet acknowledged. Skips
-- `offset` entries, then returns up to `n` {stream, entry id, task id} and
-- how many entries it passed (fewer than `n` when there are no more).
local function stream_entries(state, offset, n)
  local out, passed = {}, 0
  for _, stream in ipairs(STREAMS) do
    if passed >= n then break end
    local got = {}
    if state == 'PENDING' then
      local last = last_delivered(stream)
      if last then
        for _, e in ipairs(redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT',
                                      offset + n - passed)) do
          got[#got + 1] = {e[1], e[2][2]}
        end
      end
    else
      local ok, pel = pcall(redis.call, 'XPENDING', stream, G, '-', '+', offset + n - passed)
      if ok then
        for _, p in ipairs(pel) do
          local e = redis.call('XRANGE', stream, p[1], p[1])[1]
          if e then got[#got + 1] = {e[1], e[2][2]} end
        end
      end
    end
    if #got <= offset then
      offset = offset - #got
    else
      for i = offset + 1, #got do
        if passed >= n then break end
        out[#out + 1] = {stream, got[i][1], got[i][2]}
        passed = passed + 1
      end
      offset = 0
    end
  end
  return out, passed
end
)lua";

const redis::Script* Make(const char* body) {
  return new redis::Script(absl::StrCat(kPrelude, body));
}

const redis::Script* MakeWithStreamStates(const char* body) {
  return new redis::Script(absl::StrCat(kPrelude, kStreamStates, body));
}

}  // namespace

// A batch (see ScriptBatcher). KEYS: one task record per item.
// ARGV: P, retention, then per item: its length, id, idempotency TTL (s),
//       idempotency key or '', periodic tick key or '', tick (Unix s),
//       '1' for an id the broker just generated (no need to check it is
//       free) else '0', field, value, ...
// -> per item: {1, now, state} created; {0, existing id} for a known
//    request_id; {-1} when the id is taken; {-2} when the periodic tick was
//    done already.
// No event is published: nobody can watch a task before it exists.
const redis::Script& Enqueue() {
  static const redis::Script* s = Make(R"lua(
local now = now_ms()
local function enqueue(key, a, last)
  local id, idem, tick_key, tick = ARGV[a], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  if idem ~= '' then
    local existing = redis.call('GET', idem)
    if existing then return {0, existing} end
  end
  if tick_key ~= '' then
    -- Exactly once per tick, whoever asks and however often.
    if (tonumber(redis.call('GET', tick_key)) or -1) >= tonumber(tick) then return {-2} end
    redis.call('SET', tick_key, tick)
  end
  if ARGV[a + 5] ~= '1' and redis.call('EXISTS', key) == 1 then return {-1} end
  -- One HSET writes the whole record, its state included.
  local fields = {'id', id, 'attempt', '0', 'lost', '0', 'ver', '1', 'ctime', T(now), 'mtime', T(now)}
  local sched, prio = 0, nil
  for i = a + 6, last, 2 do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'sched_ms' then sched = tonumber(ARGV[i + 1]) or 0 end
    if ARGV[i] == 'prio' then prio = ARGV[i + 1] end
  end
  local state = 'PENDING'
  if sched > now then
    redis.call('ZADD', P .. 'scheduled', I(sched), id)
    state = 'SCHEDULED'
  else
    fields[#fields + 1] = 'sid'
    fields[#fields + 1] = xadd(stream_for(prio), id)
  end
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = state
  redis.call('HSET', key, unpack(fields))
  if state == 'SCHEDULED' then redis.call('ZADD', P .. 's:SCHEDULED', T(now), id) end
  if idem ~= '' then redis.call('SET', idem, id, 'EX', ARGV[a + 1]) end
  return {1, now, state}
end
local out = {}
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  out[#out + 1] = enqueue(KEYS[#out + 1], i + 1, i + n)
  i = i + n + 1
end
return out
)lua");
  return *s;
}

// KEYS: queue meta
// ARGV: P, retention, consumer, count, lease ms, poison after, stream order
//       (a string of h/d/l: high, default, low)
// -> {'paused'} | {'nogroup'} | {'ok' or 'limited', ms until a token is
//    due (rate-limited queues), stream, entry id, record, ...}
const redis::Script& Fetch() {
  static const redis::Script* s = Make(R"lua(
local meta = redis.call('HMGET', KEYS[1], 'paused', 'rate', 'tokens', 'tts')
if meta[1] == '1' then return {'paused'} end
local now = now_ms()
local want = tonumber(ARGV[4])
-- Rate limit: a token bucket shared by every worker.
local rate = tonumber(meta[2]) or 0
local tokens = 0
if rate > 0 then
  local burst = math.max(1, rate)
  tokens = math.min(burst, (tonumber(meta[3]) or burst) +
                           (now - (tonumber(meta[4]) or now)) * rate / 1000)
  want = math.min(want, math.floor(tokens))
end
local names = {h = P .. 'stream:high', d = P .. 'stream', l = P .. 'stream:low'}
local out = {'ok', 0}
local started = 0
for i = 1, #ARGV[7] do
  if want <= 0 then break end
  local stream = names[string.sub(ARGV[7], i, i)]
  local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', G, ARGV[3], 'COUNT', want,
                      'STREAMS', stream, '>')
  if not ok then return {'nogroup'} end
  if r then
    local before = #out
    want = want - start_entries(out, stream, r[1][2], ARGV[3], tonumber(ARGV[5]),
                                tonumber(ARGV[6]), now)
    started = started + (#out - before) / 3
  end
end
if rate > 0 then
  tokens = tokens - started
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'tts', T(now))
  out[1] = 'limited'
  if tokens < 1 then out[2] = math.ceil((1 - tokens) * 1000 / rate) end
end
return out
)lua");
  return *s;
}

// KEYS: queue meta
// ARGV: P, retention, consumer, lease ms, poison after, '1' to start them
//       ('0': the worker is draining), then triples of stream, entry id,
//       task id
// -> {'ok', 0, stream, entry id, record, ...} | {'paused'} | {'returned'}
//    (paused or draining: nothing started, the entries went back)
const redis::Script& StartDelivered() {
  static const redis::Script* s = Make(R"lua(
-- A pause (or the worker's drain) may come while the worker waits in its
-- blocking read: what that read delivered then goes back to the stream's
-- end, not started, for a later read (of any worker) to deliver again.
local paused = redis.call('HGET', KEYS[1], 'paused') == '1'
if paused or ARGV[6] ~= '1' then
  for i = 7, #ARGV, 3 do
    local stream, sid, id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local task = tkey(id)
    local cur = redis.call('HMGET', task, 'state', 'sid')
    ack(stream, sid)
    if cur[1] == 'PENDING' and cur[2] == sid then
      redis.call('HSET', task, 'sid', xadd(stream, id))
    end
  end
  if paused then return {'paused'} end
  return {'returned'}
end
local now = now_ms()
local out = {'ok', 0}
for i = 7, #ARGV, 3 do
  start_entries(out, ARGV[i], {{ARGV[i + 1], {'id', ARGV[i + 2]}}}, ARGV[3],
                tonumber(ARGV[4]), tonumber(ARGV[5]), now)
end
return out
)lua");
  return *s;
}

// KEYS: queue meta
// ARGV: P, retention, consumer, lease ms, poison after, count
// -> {'paused'} | {'ok', 0, stream, entry id, record, ...}
const redis::Script& Reclaim() {
  static const redis::Script* s = Make(R"lua(
if redis.call('HGET', KEYS[1], 'paused') == '1' then return {'paused'} end
local now = now_ms()
local out = {'ok', 0}
for _, stream in ipairs({P .. 'stream:high', P .. 'stream', P .. 'stream:low'}) do
  local ok, r = pcall(redis.call, 'XAUTOCLAIM', stream, G, ARGV[3], ARGV[4], '0-0',
                      'COUNT', ARGV[6])
  if ok then
    start_entries(out, stream, r[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
  end
end
return out
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention, consumer, lease ms, entry id, attempt, stream
// -> 'ok' | 'cancel' (asked to stop) | 'lost' (another attempt took over)
const redis::Script& Renew() {
  static const redis::Script* s = Make(R"lua(
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'sid', 'cancel')
if cur[1] ~= 'RUNNING' or cur[2] ~= ARGV[6] or cur[3] ~= ARGV[5] then return 'lost' end
redis.call('HSET', KEYS[1], 'lease', I(now_ms() + tonumber(ARGV[4])))
-- Resets the entry's idle time, so XAUTOCLAIM leaves it alone.
redis.call('XCLAIM', ARGV[7], G, ARGV[3], 0, ARGV[5], 'JUSTID')
if cur[4] == '1' then return 'cancel' end
return 'ok'
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention, id, entry id, attempt, percent, message
// -> 1 recorded, 0 fenced
const redis::Script& Progress() {
  static const redis::Script* s = Make(R"lua(
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'sid')
if cur[1] ~= 'RUNNING' or cur[2] ~= ARGV[5] or cur[3] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'prog_pct', ARGV[6], 'prog_msg', ARGV[7])
set_state(ARGV[3], KEYS[1], 'RUNNING', 'RUNNING', now_ms(), ARGV[5])
return 1
)lua");
  return *s;
}

// A batch (see ScriptBatcher). KEYS: one task record per item.
// ARGV: P, retention, then per item: its length (11), id, entry id,
//       attempt, stream, outcome ('S' or 'F'), result kind, result, error
//       code, error message, retryable ('1'/'0'), retry delay ms
// -> per item: 'succeeded' | 'retrying' | 'failed' | 'cancelled' | 'fenced'
//    (the caller no longer holds the task: nothing was written)
const redis::Script& Complete() {
  static const redis::Script* s = Make(R"lua(
local now = now_ms()
local acks, streams = {}, {}
local tally = {ok = 0, fail = 0}
local function complete(key, a)
  local id, sid, attempt, stream = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local cur = redis.call('HMGET', key, 'state', 'attempt', 'sid', 'max_att', 'cancel', 'prio', 'ver',
                         'w')
  if cur[1] ~= 'RUNNING' or cur[2] ~= attempt or cur[3] ~= sid then return 'fenced' end
  if not acks[stream] then
    acks[stream] = {}
    streams[#streams + 1] = stream
  end
  local ids = acks[stream]
  ids[#ids + 1] = sid
  -- A requested cancellation wins over whatever the attempt produced.
  if cur[5] == '1' then
    finish(id, key, 'RUNNING', 'CANCELLED', now, attempt,
           {'err_code', '1', 'err_msg', 'cancelled while running'}, true, cur[7], cur[8])
    return 'cancelled'
  end
  if ARGV[a + 4] == 'S' then
    tally.ok = tally.ok + 1
    finish(id, key, 'RUNNING', 'SUCCEEDED', now, attempt,
           {'rk', ARGV[a + 5], 'result', ARGV[a + 6]}, false, cur[7], cur[8])
    return 'succeeded'
  end
  tally.fail = tally.fail + 1
  local err = {'err_code', ARGV[a + 7], 'err_msg', ARGV[a + 8]}
  if ARGV[a + 9] == '1' and tonumber(cur[2]) < tonumber(cur[4]) then
    redis.call('HDEL', key, 'lease')
    local delay = tonumber(ARGV[a + 10])
    if delay > 0 then
      redis.call('ZADD', P .. 'scheduled', I(now + delay), id)
      err[#err + 1] = 'sid'
      err[#err + 1] = ''
      set_state(id, key, 'RUNNING', 'SCHEDULED', now, attempt, err, cur[7], cur[8])
    else
      err[#err + 1] = 'sid'
      err[#err + 1] = xadd(stream_for(cur[6]), id)
      set_state(id, key, 'RUNNING', 'PENDING', now, attempt, err, cur[7], cur[8])
    end
    return 'retrying'
  end
  finish(id, key, 'RUNNING', 'FAILED', now, attempt, err, false, cur[7], cur[8])
  return 'failed'
end
local out = {}
local i = 3
while i <= #ARGV do
  out[#out + 1] = complete(KEYS[#out + 1], i + 1)
  i = i + tonumber(ARGV[i]) + 1
end
for _, stream in ipairs(streams) do
  redis.call('XACK', stream, G, unpack(acks[stream]))
  redis.call('XDEL', stream, unpack(acks[stream]))
end
-- Outcome counters, once per batch; the first of their second also prunes
-- the finished-state index of entries past the retention.
for what, state in pairs({ok = 'SUCCEEDED', fail = 'FAILED'}) do
  local n = tally[what]
  if n > 0 then
    local k = P .. 'n:' .. what .. ':' .. math.floor(now / 1000)
    if redis.call('INCRBY', k, n) == n then
      redis.call('EXPIRE', k, 120)
      redis.call('ZREMRANGEBYSCORE', P .. 's:' .. state, '-inf', now - RETENTION)
    end
  end
end
return out
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention, id, entry id, attempt, stream
// -> 1 handed back (PENDING again at once, the attempt not counted), 0 fenced
const redis::Script& HandBack() {
  static const redis::Script* s = Make(R"lua(
local id = ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'sid', 'prio', 'cancel')
if cur[1] ~= 'RUNNING' or cur[2] ~= ARGV[5] or cur[3] ~= ARGV[4] then return 0 end
local now = now_ms()
ack(ARGV[6], ARGV[4])
if cur[5] == '1' then
  finish(id, KEYS[1], 'RUNNING', 'CANCELLED', now, cur[2],
         {'err_code', '1', 'err_msg', 'cancelled while running'}, true)
  return 1
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', -1)
redis.call('HDEL', KEYS[1], 'lease')
set_state(id, KEYS[1], 'RUNNING', 'PENDING', now, attempt,
          {'sid', xadd(stream_for(cur[4]), id)})
return 1
)lua");
  return *s;
}

// KEYS: scheduled set
// ARGV: P, retention, most tasks to promote
// -> {promoted, ms until the next scheduled task or -1}
const redis::Script& Promote() {
  static const redis::Script* s = Make(R"lua(
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local task = tkey(id)
  local cur = redis.call('HMGET', task, 'state', 'prio', 'attempt')
  if cur[1] == 'SCHEDULED' then
    set_state(id, task, 'SCHEDULED', 'PENDING', now, cur[3], {'sid', xadd(stream_for(cur[2]), id)})
  end
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if next_due[2] then wait = math.max(0, tonumber(next_due[2]) - now) end
return {#due, wait}
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention, id
// -> 'cancelled' | 'requested' (RUNNING: the worker stops it) |
//    'notfound' | the terminal state it is already in
const redis::Script& Cancel() {
  static const redis::Script* s = Make(R"lua(
local id = ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'state', 'sid', 'prio')
local state = cur[1]
if not state then return 'notfound' end
local now = now_ms()
if state == 'PENDING' then
  xdel_entries(stream_for(cur[3]), {cur[2]})
elseif state == 'SCHEDULED' then
  redis.call('ZREM', P .. 'scheduled', id)
elseif state == 'RUNNING' then
  set_state(id, KEYS[1], 'RUNNING', 'RUNNING', now, nil, {'cancel', '1'})
  return 'requested'
else
  return state
end
finish(id, KEYS[1], state, 'CANCELLED', now, nil,
       {'err_code', 1, 'err_msg', 'cancelled before it ran'}, true)
return 'cancelled'
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention, id
// -> 'retried' | 'notfound' | the state that cannot be retried
const redis::Script& Retry() {
  static const redis::Script* s = Make(R"lua(
local id = ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'state', 'prio')
local state = cur[1]
if not state then return 'notfound' end
if state ~= 'FAILED' and state ~= 'CANCELLED' then return state end
local now = now_ms()
redis.call('PERSIST', KEYS[1])
redis.call('HDEL', KEYS[1], 'err_code', 'err_msg', 'rk', 'result', 'etime', 'stime',
           'prog_pct', 'prog_msg', 'cancel', 'lease', 'consumer')
set_state(id, KEYS[1], state, 'PENDING', now, 0,
          {'attempt', '0', 'lost', '0', 'sid', xadd(stream_for(cur[2]), id)})
return 'retried'
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention, id
// -> 'deleted' | 'notfound' | 'RUNNING'
const redis::Script& Delete() {
  static const redis::Script* s = Make(R"lua(
local id = ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'state', 'sid', 'prio', 'req_id', 'ver')
local state = cur[1]
if not state then return 'notfound' end
if state == 'RUNNING' then return 'RUNNING' end
if state == 'PENDING' then xdel_entries(stream_for(cur[3]), {cur[2]}) end
if state == 'SCHEDULED' then redis.call('ZREM', P .. 'scheduled', id) end
if INDEXED[state] then redis.call('ZREM', P .. 's:' .. state, id) end
if cur[4] then redis.call('DEL', P .. 'idem:' .. cur[4]) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', P .. 'events', id .. ' ' .. ((tonumber(cur[5]) or 0) + 1) .. ' DELETED 0')
return 'deleted'
)lua");
  return *s;
}

// KEYS: queue meta
// ARGV: P, retention, include waiting tasks ('1'/'0'), most tasks to delete
// -> how many were deleted (call again while it returns the maximum)
const redis::Script& Purge() {
  static const redis::Script* s = MakeWithStreamStates(R"lua(
local limit = tonumber(ARGV[4])
local deleted = 0
-- Stream entries to delete, by stream (xdel_entries keeps the lag exact).
local gone = {}
local function forget(stream, sid)
  if not gone[stream] then gone[stream] = {} end
  local sids = gone[stream]
  sids[#sids + 1] = sid
end
local function drop(id, state)
  local task = tkey(id)
  local cur = redis.call('HMGET', task, 'state', 'sid', 'prio', 'req_id')
  if cur[1] ~= state then return end
  if state == 'PENDING' then forget(stream_for(cur[3]), cur[2]) end
  if state == 'SCHEDULED' then redis.call('ZREM', P .. 'scheduled', id) end
  if cur[4] then redis.call('DEL', P .. 'idem:' .. cur[4]) end
  if INDEXED[state] then redis.call('ZREM', P .. 's:' .. state, id) end
  redis.call('DEL', task)
  deleted = deleted + 1
end
for _, id in ipairs(redis.call('ZRANGE', P .. 's:FAILED', 0, limit - 1)) do
  drop(id, 'FAILED')
end
if ARGV[3] == '1' and deleted < limit then
  local entries = stream_entries('PENDING', 0, limit - deleted)
  for _, e in ipairs(entries) do
    local cur = e[3] and redis.call('HMGET', tkey(e[3]), 'state', 'sid') or {}
    if cur[1] == 'PENDING' and cur[2] == e[2] then
      drop(e[3], 'PENDING')
    else
      -- An entry whose task moved on or vanished is stale: it goes too.
      forget(e[1], e[2])
    end
  end
end
if ARGV[3] == '1' and deleted < limit then
  for _, id in ipairs(redis.call('ZRANGE', P .. 's:SCHEDULED', 0, limit - deleted - 1)) do
    drop(id, 'SCHEDULED')
  end
end
for stream, sids in pairs(gone) do xdel_entries(stream, sids) end
return deleted
)lua");
  return *s;
}

// KEYS: task record
// ARGV: P, retention
// -> the record (HGETALL; empty when there is no such task), after marking
//    the task watched: its transitions publish events from now on.
const redis::Script& Watch() {
  static const redis::Script* s = Make(R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'w', 1) end
return redis.call('HGETALL', KEYS[1])
)lua");
  return *s;
}

// KEYS: queue meta
// ARGV: P, retention, states (comma-separated, in page order), index of the
//       state to start in, offset within it, page size
// -> {next state index, next offset (-1: no more), id, record, id, record, ...}
const redis::Script& List() {
  static const redis::Script* s = MakeWithStreamStates(R"lua(
local states = {}
for st in string.gmatch(ARGV[3], '[^,]+') do states[#states + 1] = st end
local si, offset, want = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {0, -1}
while si <= #states and want > 0 do
  local state = states[si]
  local ids, passed = {}, 0
  if INDEXED[state] then
    ids = redis.call('ZRANGE', P .. 's:' .. state, offset, offset + want - 1)
    passed = #ids
  else
    local entries
    entries, passed = stream_entries(state, offset, want)
    for i, e in ipairs(entries) do ids[i] = e[3] end
  end
  for _, id in ipairs(ids) do
    local rec = redis.call('HGETALL', tkey(id))
    local ok = #rec > 0
    if ok and not INDEXED[state] then
      -- A stream entry may be stale (its task moved on).
      ok = false
      for i = 1, #rec, 2 do
        if rec[i] == 'state' then ok = rec[i + 1] == state end
      end
    end
    if ok then
      out[#out + 1] = id
      out[#out + 1] = rec
    end
  end
  want = want - passed
  offset = offset + passed
  if want > 0 then
    si = si + 1
    offset = 0
  end
end
if si <= #states then
  out[1] = si
  out[2] = offset
end
return out
)lua");
  return *s;
}

// KEYS: queue meta
// ARGV: P, retention
// -> {paused (0/1), pending, running, scheduled, dead, ok in last 60 s,
//     failed attempts in last 60 s, rate limit}
const redis::Script& Stats() {
  static const redis::Script* s = MakeWithStreamStates(R"lua(
local now = now_ms()
for _, st in ipairs({'SUCCEEDED', 'FAILED', 'CANCELLED'}) do
  redis.call('ZREMRANGEBYSCORE', P .. 's:' .. st, '-inf', now - RETENTION)
end
local sec = math.floor(now / 1000)
local ok_keys, fail_keys = {}, {}
for i = 1, 60 do
  ok_keys[i] = P .. 'n:ok:' .. (sec - i)
  fail_keys[i] = P .. 'n:fail:' .. (sec - i)
end
local function sum(keys)
  local total = 0
  for _, v in ipairs(redis.call('MGET', unpack(keys))) do total = total + (tonumber(v) or 0) end
  return total
end
local meta = redis.call('HMGET', KEYS[1], 'paused', 'rate')
local paused = 0
if meta[1] == '1' then paused = 1 end
local pending, running = 0, 0
for _, stream in ipairs(STREAMS) do
  local ok, summary = pcall(redis.call, 'XPENDING', stream, G)
  if ok then
    local len = redis.call('XLEN', stream)
    running = running + summary[1]
    pending = pending + math.max(0, len - summary[1])
  end
end
return {paused, pending, running,
        redis.call('ZCARD', P .. 's:SCHEDULED'), redis.call('ZCARD', P .. 's:FAILED'),
        sum(ok_keys), sum(fail_keys), meta[2] or '0'}
)lua");
  return *s;
}

}  // namespace taskmesh::broker::scripts
