-- KEYS: queue meta
-- ARGV: P, retention, consumer, lease ms, poison after, count
-- -> {'paused'} | {'ok', 0, stream, entry id, record, ...}
--- @include "includes/prelude.lua"
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
