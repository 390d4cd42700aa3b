-- KEYS: task record
-- ARGV: P, retention, id
-- -> 'retried' | 'notfound' | the state that cannot be retried
--- @include "includes/prelude.lua"
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
