-- KEYS: task record
-- ARGV: P, retention, consumer, lease ms, entry id, attempt, stream
-- -> 'ok' | 'cancel' (asked to stop) | 'lost' (another attempt took over)
--- @include "includes/prelude.lua"
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'sid', 'cancel')
if cur[1] ~= 'RUNNING' or cur[2] ~= ARGV[6] or cur[3] ~= ARGV[5] then return 'lost' end
redis.call('HSET', KEYS[1], 'lease', I(now_ms() + tonumber(ARGV[4])))
-- Resets the entry's idle time, so XAUTOCLAIM leaves it alone.
redis.call('XCLAIM', ARGV[7], G, ARGV[3], 0, ARGV[5], 'JUSTID')
if cur[4] == '1' then return 'cancel' end
return 'ok'
