-- A batch (see ScriptBatcher). KEYS: one task record per item.
-- ARGV: P, retention, then per item: its length (11), id, entry id,
--       attempt, stream, outcome ('S' or 'F'), result kind, result, error
--       code, error message, retryable ('1'/'0'), retry delay ms
-- -> per item: 'succeeded' | 'retrying' | 'failed' | 'cancelled' | 'fenced'
--    (the caller no longer holds the task: nothing was written)
--- @include "includes/prelude.lua"
local now = now_ms()
local acks, streams = {}, {}
local tally = {ok = 0, fail = 0}
local function complete(key, a)
  local id, sid, attempt, stream = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local cur = redis.call('HMGET', key, 'state', 'attempt', 'sid', 'max_att', 'cancel', 'prio',
                         'ver',
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
