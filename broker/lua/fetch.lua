-- KEYS: queue meta
-- ARGV: P, retention, consumer, count, lease ms, poison after, stream order
--       (a string of h/d/l: high, default, low)
-- -> {'paused'} | {'nogroup'} | {'ok' or 'limited', ms until a token is
--    due (rate-limited queues), stream, entry id, record, ...}
--- @include "includes/prelude.lua"
local meta = redis.call('HMGET', KEYS[1], 'paused', 'rate', 'tokens', 'tts', 'rshare')
if meta[1] == '1' then return {'paused'} end
local now = now_ms()
local want = tonumber(ARGV[4])
-- Rate limit: a token bucket shared by every worker. A partitioned queue's
-- limit is shared evenly by its `rshare` partitions (broker/partitions.h).
local rate = (tonumber(meta[2]) or 0) / (tonumber(meta[5]) or 1)
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
