-- KEYS: task record
-- ARGV: P, retention, id, entry id, attempt, stream
-- -> 1 handed back (PENDING again at once, the attempt not counted), 0 fenced
--- @include "includes/prelude.lua"
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
