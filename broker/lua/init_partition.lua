-- Readies a partition of a partitioned queue (broker/partitions.h) before
-- the queue's new partition count is published: its priority streams with
-- the workers' group (so KEDA reads a lag of 0, not an error, and a worker's
-- first blocking read finds them), the queue's pause, and its rate limit
-- shared by `rshare` partitions.
-- KEYS: the partition's meta
-- ARGV: P, retention, paused ('1'/'0'), rate limit of the queue ('0': none),
--       partitions sharing it
-- -> 'ok'
--- @include "includes/prelude.lua"
for _, s in ipairs({P .. 'stream:high', P .. 'stream', P .. 'stream:low'}) do
  if redis.call('EXISTS', s) == 0 then redis.call('XGROUP', 'CREATE', s, G, '0', 'MKSTREAM') end
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'paused', '1')
else
  redis.call('HDEL', KEYS[1], 'paused')
end
if tonumber(ARGV[4]) > 0 then
  redis.call('HSET', KEYS[1], 'rate', ARGV[4], 'rshare', ARGV[5])
else
  redis.call('HDEL', KEYS[1], 'rate', 'rshare', 'tokens', 'tts')
end
return 'ok'
