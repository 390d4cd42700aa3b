-- KEYS: queue meta
-- ARGV: P, retention, consumer, lease ms, poison after, '1' to start them
--       ('0': the worker is draining), then triples of stream, entry id,
--       task id
-- -> {'ok', 0, stream, entry id, record, ...} | {'paused'} | {'returned'}
--    (paused or draining: nothing started, the entries went back)
--- @include "includes/prelude.lua"
-- A pause (or the worker's drain) may come while the worker waits in its
-- blocking read: what that read delivered then goes back to the stream's
-- end, not started, for a later read (of any worker) to deliver again.
local paused = redis.call('HGET', KEYS[1], 'paused') == '1'
if paused or ARGV[6] ~= '1' then
  for i = 7, #ARGV, 3 do
    local stream, sid, id = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local task = tkey(id)
    local cur = redis.call('HMGET', task, 'state', 'sid')
    ack(stream, sid)
    if cur[1] == 'PENDING' and cur[2] == sid then
      redis.call('HSET', task, 'sid', xadd(stream, id))
    end
  end
  if paused then return {'paused'} end
  return {'returned'}
end
local now = now_ms()
local out = {'ok', 0}
for i = 7, #ARGV, 3 do
  start_entries(out, ARGV[i], {{ARGV[i + 1], {'id', ARGV[i + 2]}}}, ARGV[3],
                tonumber(ARGV[4]), tonumber(ARGV[5]), now)
end
return out
