"""Prototype (see bench/RESULTS.md): the current Enqueue script per task (+SADD per task, as
Broker::Enqueue does) vs the same per-task logic looped in one EVALSHA per
batch (+one SADD per batch). Redis CPU per task from INFO cpu.

Usage: /usr/bin/python3 batch_enqueue.py REDIS_PORT N BATCH   (a private redis-server: it FLUSHALLs)
"""
import os, re, sys, redis
PORT, N, BATCH = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'broker', 'scripts.cc')).read()
prelude = re.search(r'constexpr char kPrelude\[\] = R"lua\((.*?)\)lua";', src, re.S).group(1)
body = re.search(r'const redis::Script& Enqueue\(\) \{\n  static const redis::Script\* s = Make\(R"lua\((.*?)\)lua"\);', src, re.S).group(1)
single = prelude + body
fbody = body.replace('KEYS[1]', 'KEY').replace('ARGV[', 'A[').replace('#ARGV', '#A')
batch = prelude + "local function one(KEY, A)\n" + fbody + "\nend\n" + """
local out = {}
local i = 4
for t = 1, tonumber(ARGV[3]) do
  local c = tonumber(ARGV[i])
  local A = {ARGV[1], ARGV[2]}
  for k = 1, c do A[k + 2] = ARGV[i + k] end
  i = i + c + 1
  out[t] = one(P .. 't:' .. A[3], A)
end
return out
"""
r = redis.Redis(port=PORT)
P = 'taskmesh:{q}:'
fields = ['type', 'echo', 'pk', 'j', 'payload', 'null', 'prio', '0', 'max_att', '3', 'tmo_ms', '0', 'sched_ms', '0']
def cpu():
    i = r.info('cpu'); return i['used_cpu_sys'] + i['used_cpu_user']
for mode in ('per_task', 'batch'):
    r.flushall()
    sha = r.script_load(single if mode == 'per_task' else batch)
    c0 = cpu()
    pipe = r.pipeline(transaction=False)
    for b in range(0, N, BATCH):
        ids = [f'{mode}{k:09d}' for k in range(b, min(N, b + BATCH))]
        if mode == 'per_task':
            for id in ids:
                pipe.sadd('taskmesh:queues', 'q')
                pipe.evalsha(sha, 1, P + 't:' + id, P, '604800000', id, '604800', '', '', '0', *fields)
        else:
            args = [P, '604800000', str(len(ids))]
            for id in ids:
                a = [id, '604800', '', '', '0'] + fields
                args += [str(len(a))] + a
            pipe.sadd('taskmesh:queues', 'q')
            pipe.evalsha(sha, 1, P + 'stream', *args)
        if len(pipe) > 400:
            res = pipe.execute()
    res = pipe.execute()
    c1 = cpu()
    n = r.xlen(P + 'stream')
    print(f'{mode} (batch {BATCH}): {1e6 * (c1 - c0) / N:.2f} us Redis CPU per task, {n} in the stream')
