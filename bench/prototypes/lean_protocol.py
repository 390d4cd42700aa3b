"""Prototype (see bench/RESULTS.md): Redis CPU per task of a lean, batched
queue protocol (enqueue, fetch+start, complete; 1 EVALSHA per BATCH tasks).
Drives Lua scripts with redis-py; measures INFO cpu.

Usage: /usr/bin/python3 lean_protocol.py REDIS_PORT VARIANT N BATCH   (a private redis-server: it FLUSHALLs)
VARIANT: lean (record + stream), lean_idx (+ state zsets and a PUBLISH per
transition), lean_min (the task spec packed into one field)
"""
import sys, time, redis

PORT, VARIANT, N, BATCH = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
IDX = VARIANT == "lean_idx"
MIN = VARIANT == "lean_min"
r = redis.Redis(port=PORT)
P = "taskmesh:{q}:"

pre = """
local P = ARGV[1]
local function now_ms() local t = redis.call('TIME') return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end
"""
idx_move = """
local function move(id, from, to, now, ver)
  if from then redis.call('ZREM', P .. 's:' .. from, id) end
  redis.call('ZADD', P .. 's:' .. to, now, id)
  redis.call('PUBLISH', P .. 'events', id .. ' ' .. ver .. ' ' .. to)
end
""" if IDX else "local function move() end\n"

enqueue = pre + idx_move + """
local now = now_ms()
local stream = P .. 'stream'
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local sid = redis.call('XADD', stream, '*', 'id', id)
  redis.call('HSET', P .. 't:' .. id, 'id', id, 'type', ARGV[i+1], 'pk', 'j', 'payload', ARGV[i+2],
             'prio', '0', 'max_att', '3', 'tmo_ms', '0', 'attempt', '0', 'ver', '1',
             'state', 'PENDING', 'ctime', now, 'mtime', now, 'sid', sid)
  move(id, nil, 'PENDING', now, 1)
end
return now
"""
fetch = pre + idx_move + """
local now = now_ms()
local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[2], 'COUNT', ARGV[3], 'STREAMS', P .. 'stream', '>')
local out = {}
if not r then return out end
for _, e in ipairs(r[1][2]) do
  local id = e[2][2]
  local k = P .. 't:' .. id
  local h = redis.call('HMGET', k, 'state', 'attempt', 'type', 'pk', 'payload', 'max_att', 'tmo_ms')
  if h[1] == 'PENDING' then
    local att = tonumber(h[2]) + 1
    redis.call('HSET', k, 'state', 'RUNNING', 'attempt', att, 'stime', now, 'mtime', now,
               'lease', now + 30000, 'consumer', ARGV[2])
    move(id, 'PENDING', 'RUNNING', now, 2)
    out[#out + 1] = {id, e[1], att, h[3], h[4], h[5], h[6], h[7]}
  end
end
return out
"""
complete = pre + idx_move + """
local now = now_ms()
local stream = P .. 'stream'
local sids = {}
local done = 0
for i = 3, #ARGV, 4 do
  local id, sid, att = ARGV[i], ARGV[i+1], ARGV[i+2]
  local k = P .. 't:' .. id
  local h = redis.call('HMGET', k, 'state', 'attempt', 'sid')
  if h[1] == 'RUNNING' and h[2] == att and h[3] == sid then
    redis.call('HSET', k, 'state', 'SUCCEEDED', 'rk', 'j', 'result', ARGV[i+3], 'etime', now,
               'mtime', now, 'lease', '')
    redis.call('PEXPIRE', k, 604800000)
    move(id, 'RUNNING', 'SUCCEEDED', now, 3)
    sids[#sids + 1] = sid
    done = done + 1
  end
end
if #sids > 0 then
  redis.call('XACK', stream, 'workers', unpack(sids))
  redis.call('XDEL', stream, unpack(sids))
end
local c = P .. 'n:ok:' .. math.floor(now / 1000)
redis.call('INCRBY', c, done)
redis.call('EXPIRE', c, 120)
return done
"""

if MIN:
    enqueue = enqueue.replace("""'id', id, 'type', ARGV[i+1], 'pk', 'j', 'payload', ARGV[i+2],
             'prio', '0', 'max_att', '3', 'tmo_ms', '0', 'attempt', '0', 'ver', '1',
             'state', 'PENDING', 'ctime', now, 'mtime', now, 'sid', sid)""", """'spec', ARGV[i+1] .. ARGV[i+2], 'state', 'PENDING', 'attempt', 0, 'ctime', now, 'sid', sid)""")
    fetch = fetch.replace("""'state', 'attempt', 'type', 'pk', 'payload', 'max_att', 'tmo_ms')""", """'state', 'attempt', 'spec')""")
    fetch = fetch.replace("""redis.call('HSET', k, 'state', 'RUNNING', 'attempt', att, 'stime', now, 'mtime', now,
               'lease', now + 30000, 'consumer', ARGV[2])""", """redis.call('HSET', k, 'state', 'RUNNING', 'attempt', att, 'stime', now)""")
    complete = complete.replace("""redis.call('HSET', k, 'state', 'SUCCEEDED', 'rk', 'j', 'result', ARGV[i+3], 'etime', now,
               'mtime', now, 'lease', '')""", """redis.call('HSET', k, 'state', 'SUCCEEDED', 'result', ARGV[i+3], 'etime', now)""")
    assert "spec" in enqueue and "'spec')" in fetch
r.flushall()
r.xgroup_create(P + "stream", "workers", id="0", mkstream=True)
sha_e, sha_f, sha_c = (r.script_load(s) for s in (enqueue, fetch, complete))
r.config_resetstat()

def cpu():
    i = r.info("cpu")
    return i["used_cpu_sys"] + i["used_cpu_user"]

c0 = cpu()
t0 = time.time()
ids = [f"01m8abmywjc2n31mt6x{i:07d}" for i in range(N)]
pipe = r.pipeline(transaction=False)
for b in range(0, N, BATCH):
    args = [P, "604800000"]
    for id in ids[b:b + BATCH]:
        args += [id, "echo", "null"]
    pipe.evalsha(sha_e, 1, P + "stream", *args)
    if len(pipe) >= 16:
        pipe.execute()
pipe.execute()
c1 = cpu()
done = 0
while done < N:
    got = r.evalsha(sha_f, 1, P + "stream", P, "w1", str(BATCH))
    if not got:
        break
    args = [P, "604800000"]
    for g in got:
        args += [g[0], g[1], str(g[2]), "null"]
    done += r.evalsha(sha_c, 1, P + "stream", *args)
c2 = cpu()
print(f"{VARIANT} batch={BATCH}: enqueue {1e6*(c1-c0)/N:.2f} us/task, fetch+complete {1e6*(c2-c1)/N:.2f} us/task, "
      f"total {1e6*(c2-c0)/N:.2f} us/task Redis CPU ({done} done, {time.time()-t0:.1f}s)")
