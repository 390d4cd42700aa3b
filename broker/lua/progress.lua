-- KEYS: task record
-- ARGV: P, retention, id, entry id, attempt, percent, message
-- -> 1 recorded, 0 fenced
--- @include "includes/prelude.lua"
local cur = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'sid')
if cur[1] ~= 'RUNNING' or cur[2] ~= ARGV[5] or cur[3] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'prog_pct', ARGV[6], 'prog_msg', ARGV[7])
set_state(ARGV[3], KEYS[1], 'RUNNING', 'RUNNING', now_ms(), ARGV[5])
return 1
