-- KEYS: task record
-- ARGV: P, retention
-- -> the record (HGETALL; empty when there is no such task), after marking
--    the task watched: its transitions publish events from now on.
--- @include "includes/prelude.lua"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'w', 1) end
return redis.call('HGETALL', KEYS[1])
