"""Celery peer: the producer side of bench/run.sh's measurements.

  bench.py e2e N        send N no-op tasks, wait until every result is stored
  bench.py roundtrip N  send one task, wait for its result (get()); N times

Prints `RESULT {json}` on stdout. Bounded: gives up after 120 s.
"""
import json
import os
import sys
import time

import redis

from tasks import app, noop

GIVE_UP = time.monotonic() + 120


def pct(values, p):
    if not values:
        return 0
    i = min(len(values) - 1, max(0, int(-(-p / 100 * len(values) // 1)) - 1))
    return values[i]


def e2e(n):
    r = redis.Redis(port=int(os.environ.get("TASKMESH_BENCH_REDIS_PORT", "6379")))
    t0 = time.monotonic()
    ids = [noop.apply_async().id for _ in range(n)]
    t_enq = time.monotonic()
    pending = ids
    while pending and time.monotonic() < GIVE_UP:
        left = []
        for i in range(0, len(pending), 1000):
            chunk = pending[i:i + 1000]
            vals = r.mget([f"celery-task-meta-{t}" for t in chunk])
            left.extend(t for t, v in zip(chunk, vals) if v is None)
        pending = left
        if pending:
            time.sleep(0.01)
    t1 = time.monotonic()
    done = n - len(pending)
    return {"name": "celery_e2e", "e2e_tasks": n, "e2e_succeeded": done,
            "e2e_seconds": t1 - t0, "e2e_tasks_per_s": done / (t1 - t0),
            "enqueue_per_s": n / (t_enq - t0)}


def roundtrip(n):
    lat = []
    warmup = min(20, n // 10)
    for i in range(n + warmup):
        if time.monotonic() > GIVE_UP:
            break
        t0 = time.monotonic()
        noop.apply_async().get(timeout=10)
        us = (time.monotonic() - t0) * 1e6
        if i >= warmup:
            lat.append(us)
    lat.sort()
    return {"name": "celery_roundtrip", "ok": len(lat), "p50_us": pct(lat, 50),
            "p90_us": pct(lat, 90), "p99_us": pct(lat, 99), "p999_us": pct(lat, 99.9)}


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "e2e"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    result = roundtrip(count) if mode == "roundtrip" else e2e(count)
    print("RESULT " + json.dumps(result), flush=True)
