-- A batch (see ScriptBatcher). KEYS: one task record per item.
-- ARGV: P, retention, then per item: its length, id, idempotency TTL (s),
--       idempotency key or '', periodic tick key or '', tick (Unix s),
--       '1' for an id the broker just generated (no need to check it is
--       free) else '0', field, value, ...
-- -> per item: {1, now, state} created; {0, existing id} for a known
--    request_id; {-1} when the id is taken; {-2} when the periodic tick was
--    done already.
-- No event is published: nobody can watch a task before it exists.
--- @include "includes/prelude.lua"
local now = now_ms()
local function enqueue(key, a, last)
  local id, idem, tick_key, tick = ARGV[a], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  if idem ~= '' then
    local existing = redis.call('GET', idem)
    if existing then return {0, existing} end
  end
  if tick_key ~= '' then
    -- Exactly once per tick, whoever asks and however often.
    if (tonumber(redis.call('GET', tick_key)) or -1) >= tonumber(tick) then return {-2} end
    redis.call('SET', tick_key, tick)
  end
  if ARGV[a + 5] ~= '1' and redis.call('EXISTS', key) == 1 then return {-1} end
  -- One HSET writes the whole record, its state included.
  local fields = {'id', id, 'attempt', '0', 'lost', '0', 'ver', '1', 'ctime', T(now),
                  'mtime', T(now)}
  local sched, prio = 0, nil
  for i = a + 6, last, 2 do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
    if ARGV[i] == 'sched_ms' then sched = tonumber(ARGV[i + 1]) or 0 end
    if ARGV[i] == 'prio' then prio = ARGV[i + 1] end
  end
  local state = 'PENDING'
  if sched > now then
    redis.call('ZADD', P .. 'scheduled', I(sched), id)
    state = 'SCHEDULED'
  else
    fields[#fields + 1] = 'sid'
    fields[#fields + 1] = xadd(stream_for(prio), id)
  end
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = state
  redis.call('HSET', key, unpack(fields))
  if state == 'SCHEDULED' then redis.call('ZADD', P .. 's:SCHEDULED', T(now), id) end
  if idem ~= '' then redis.call('SET', idem, id, 'EX', ARGV[a + 1]) end
  return {1, now, state}
end
local out = {}
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  out[#out + 1] = enqueue(KEYS[#out + 1], i + 1, i + n)
  i = i + n + 1
end
return out
