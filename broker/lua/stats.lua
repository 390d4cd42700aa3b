-- KEYS: queue meta
-- ARGV: P, retention
-- -> {paused (0/1), pending, running, scheduled, dead, ok in last 60 s,
--     failed attempts in last 60 s, rate limit}
--- @include "includes/prelude.lua"
--- @include "includes/stream_states.lua"
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
