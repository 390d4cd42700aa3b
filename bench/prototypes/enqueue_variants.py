"""Prototype (see bench/RESULTS.md): Redis CPU per task of enqueue variants,
batched 100 per EVALSHA, with a pattern subscriber as the WatchHub has.

Usage: /usr/bin/python3 enqueue_variants.py REDIS_PORT N   (a private redis-server: it FLUSHALLs)
"""
import sys, redis
PORT, N, BATCH = int(sys.argv[1]), int(sys.argv[2]), 100
r = redis.Redis(port=PORT)
P = 'taskmesh:{q}:'
fields = ['type', 'echo', 'pk', 'j', 'payload', 'null', 'prio', '0', 'max_att', '3', 'tmo_ms', '0', 'sched_ms', '0']
head = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stream = P .. 'stream'
local i = 3
while i <= #ARGV do
  local id = ARGV[i]
  local c = tonumber(ARGV[i + 1])
  local key = P .. 't:' .. id
  %(exists)s
  local sid = redis.call('XADD', stream, '*', 'id', id)
  local f = {'id', id, 'attempt', 0, 'lost', 0, 'ver', 1, 'ctime', now, 'mtime', now,
             'state', 'PENDING', 'sid', sid}
  for k = 1, c do f[#f + 1] = ARGV[i + 1 + k] end
  redis.call('HSET', key, unpack(f))
  %(index)s
  %(publish)s
  i = i + 2 + c
end
return now
"""
variants = {
  'merged+exists+index+publish': dict(exists="if redis.call('EXISTS', key) == 1 then return -1 end",
      index="redis.call('ZADD', P .. 's:PENDING', now, id)",
      publish="redis.call('PUBLISH', P .. 'events', id .. ' 1 PENDING 0')"),
  'merged+exists+publish (no state index)': dict(exists="if redis.call('EXISTS', key) == 1 then return -1 end",
      index="", publish="redis.call('PUBLISH', P .. 'events', id .. ' 1 PENDING 0')"),
  'merged+exists (no index, no publish)': dict(exists="if redis.call('EXISTS', key) == 1 then return -1 end",
      index="", publish=""),
  'merged, HSETNX-free (no exists check)': dict(exists="", index="", publish=""),
}
def cpu():
    i = r.info('cpu'); return i['used_cpu_sys'] + i['used_cpu_user']
# A subscriber on the events pattern, as the task_service's WatchHub has.
ps = redis.Redis(port=PORT).pubsub(); ps.psubscribe('taskmesh:*:events')
for name, v in variants.items():
    r.flushall()
    sha = r.script_load(head % v)
    c0 = cpu()
    pipe = r.pipeline(transaction=False)
    for b in range(0, N, BATCH):
        args = [P, '604800000']
        for k in range(b, min(N, b + BATCH)):
            args += [f'x{k:09d}', str(len(fields))] + fields
        pipe.evalsha(sha, 1, P + 'stream', *args)
        if len(pipe) >= 8: pipe.execute()
    pipe.execute()
    c1 = cpu()
    print(f'{name}: {1e6 * (c1 - c0) / N:.2f} us Redis CPU per task ({r.xlen(P + "stream")} in stream)')
