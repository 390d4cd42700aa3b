-- KEYS: task record
-- ARGV: P, retention, id
-- -> 'cancelled' | 'requested' (RUNNING: the worker stops it) |
--    'notfound' | the terminal state it is already in
--- @include "includes/prelude.lua"
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
