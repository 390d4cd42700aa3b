-- KEYS: queue meta
-- ARGV: P, retention, include waiting tasks ('1'/'0'), most tasks to delete
-- -> how many were deleted (call again while it returns the maximum)
--- @include "includes/prelude.lua"
--- @include "includes/stream_states.lua"
local limit = tonumber(ARGV[4])
local deleted = 0
-- Stream entries to delete, by stream (xdel_entries keeps the lag exact).
local gone = {}
local function forget(stream, sid)
  if not gone[stream] then gone[stream] = {} end
  local sids = gone[stream]
  sids[#sids + 1] = sid
end
local function drop(id, state)
  local task = tkey(id)
  local cur = redis.call('HMGET', task, 'state', 'sid', 'prio', 'req_id')
  if cur[1] ~= state then return end
  if state == 'PENDING' then forget(stream_for(cur[3]), cur[2]) end
  if state == 'SCHEDULED' then redis.call('ZREM', P .. 'scheduled', id) end
  if cur[4] then redis.call('DEL', P .. 'idem:' .. cur[4]) end
  if INDEXED[state] then redis.call('ZREM', P .. 's:' .. state, id) end
  redis.call('DEL', task)
  deleted = deleted + 1
end
for _, id in ipairs(redis.call('ZRANGE', P .. 's:FAILED', 0, limit - 1)) do
  drop(id, 'FAILED')
end
if ARGV[3] == '1' and deleted < limit then
  local entries = stream_entries('PENDING', 0, limit - deleted)
  for _, e in ipairs(entries) do
    local cur = e[3] and redis.call('HMGET', tkey(e[3]), 'state', 'sid') or {}
    if cur[1] == 'PENDING' and cur[2] == e[2] then
      drop(e[3], 'PENDING')
    else
      -- An entry whose task moved on or vanished is stale: it goes too.
      forget(e[1], e[2])
    end
  end
end
if ARGV[3] == '1' and deleted < limit then
  for _, id in ipairs(redis.call('ZRANGE', P .. 's:SCHEDULED', 0, limit - deleted - 1)) do
    drop(id, 'SCHEDULED')
  end
end
for stream, sids in pairs(gone) do xdel_entries(stream, sids) end
return deleted
