-- Shared by every script: arguments common to all, the clock, number
-- formatting, state moves, events, stream helpers and the start of a task.
-- See broker/scripts.h for the conventions (ARGV[1] the queue's key prefix,
-- ARGV[2] the retention in ms).
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
    redis.call('SPUBLISH', P .. 'events', table.concat(parts))
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
-- once, so that its lag is visible (to KEDA) before any worker exists, and
-- so do the queue's other priority streams: KEDA reads the pending entries
-- of all three, and a missing group (NOGROUP) puts the whole ScaledObject in
-- error, which blocks its scale-down (tests/keda). (Checked once per stream
-- and script call.)
local grouped = {}
local function xadd(stream, id)
  if not grouped[stream] then
    if redis.call('EXISTS', stream) == 0 then
      for _, s in ipairs({P .. 'stream:high', P .. 'stream', P .. 'stream:low'}) do
        if redis.call('EXISTS', s) == 0 then
          redis.call('XGROUP', 'CREATE', s, G, '0', 'MKSTREAM')
        end
      end
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
            {'attempt', I(attempt), 'stime', T(now), 'lease', I(now + lease_ms),
             'consumer', consumer},
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
