-- KEYS: task record
-- ARGV: P, retention, id
-- -> 'deleted' | 'notfound' | 'RUNNING'
--- @include "includes/prelude.lua"
local id = ARGV[3]
local cur = redis.call('HMGET', KEYS[1], 'state', 'sid', 'prio', 'req_id', 'ver')
local state = cur[1]
if not state then return 'notfound' end
if state == 'RUNNING' then return 'RUNNING' end
if state == 'PENDING' then xdel_entries(stream_for(cur[3]), {cur[2]}) end
if state == 'SCHEDULED' then redis.call('ZREM', P .. 'scheduled', id) end
if INDEXED[state] then redis.call('ZREM', P .. 's:' .. state, id) end
if cur[4] then redis.call('DEL', P .. 'idem:' .. cur[4]) end
redis.call('DEL', KEYS[1])
redis.call('SPUBLISH', P .. 'events', id .. ' ' .. ((tonumber(cur[5]) or 0) + 1) .. ' DELETED 0')
return 'deleted'
