-- KEYS: scheduled set
-- ARGV: P, retention, most tasks to promote
-- -> {promoted, ms until the next scheduled task or -1}
--- @include "includes/prelude.lua"
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local task = tkey(id)
  local cur = redis.call('HMGET', task, 'state', 'prio', 'attempt')
  if cur[1] == 'SCHEDULED' then
    set_state(id, task, 'SCHEDULED', 'PENDING', now, cur[3], {'sid', xadd(stream_for(cur[2]), id)})
  end
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if next_due[2] then wait = math.max(0, tonumber(next_due[2]) - now) end
return {#due, wait}
