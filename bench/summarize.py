#!/usr/bin/env python3
"""Summarizes a bench/run.sh output folder: medians of the repetitions, each
figure with its ratio to the ceilings and the peers, and the issue's targets.

Usage: bench/summarize.py OUT_DIR   (prints Markdown)

An output folder of bench/cluster.sh (BENCH_CLUSTER=1 bench/run.sh) gets its
own report: standalone vs cluster (K=1), the 3-queue spread, and WAIT.
"""
import json
import os
import statistics
import sys


def load(out):
    rows = []
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


class Figures:
    def __init__(self, rows):
        self.rows = rows

    def values(self, name, field, **match):
        out = []
        for r in self.rows:
            if r.get("name") != name or field not in r:
                continue
            if any(r.get(k) != v for k, v in match.items()):
                continue
            out.append(float(r[field]))
        return out

    def med(self, name, field, **match):
        v = self.values(name, field, **match)
        return statistics.median(v) if v else None

    def spread(self, name, field, **match):
        v = self.values(name, field, **match)
        return (min(v), max(v), len(v)) if v else None


def fmt(x, unit=""):
    if x is None:
        return "—"
    if unit == "ms":
        return f"{x / 1000:,.0f} ms" if x >= 100000 else f"{x / 1000:.2f} ms"
    if unit == "us":
        return f"{x:.1f} µs"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}"


def ratio(a, b, pct=False):
    if a is None or b is None or b == 0:
        return "—"
    return f"{100 * a / b:.0f}%" if pct else f"{a / b:.2f}x"


def with_spread(f, name, field, unit="", **match):
    m = f.med(name, field, **match)
    s = f.spread(name, field, **match)
    if m is None:
        return "—"
    if s and s[2] > 1:
        lo, hi = s[0], s[1]
        if unit == "ms":
            return f"{m / 1000:.2f} ms ({lo / 1000:.2f}–{hi / 1000:.2f})"
        if unit == "us":
            return f"{m:.1f} µs ({lo:.1f}–{hi:.1f})"
        return f"{m:,.0f} ({lo:,.0f}–{hi:,.0f})"
    return fmt(m, unit)


SYSTEMS = [
    ("sa", "standalone (baseline)"),
    ("k1", "cluster 3+3, one queue (K=1)"),
    ("k3", "cluster 3+3, one queue in K=3 partitions (one per master)"),
    ("k1w", "cluster 3+3, K=1, 3 workers"),
    ("k3w", "cluster 3+3, K=3, 3 workers"),
    ("kw", "cluster 3+3, K=1, --redis_min_replicas_acked=1"),
    ("r0", "standalone master + 1 replica"),
    ("r1", "standalone master + 1 replica, --redis_min_replicas_acked=1"),
]


def report_start(out):
    """The report's lines so far (the machine's state, when recorded) and its appender."""
    lines = []
    p = lines.append
    machine = os.path.join(out, "machine.txt")
    if os.path.exists(machine):
        p("```")
        p(open(machine).read().rstrip())
        p("```")
        p("")
    return lines, p


def cluster_main(f, out):
    lines, p = report_start(out)
    reps = max([len(f.values("sa_e2e", "e2e_tasks_per_s")), 1])
    p(f"Medians of {reps} rounds (min–max in brackets); ratios between medians of this run.")
    p("")
    m = f.med
    p("| system | end to end tasks/s | Redis CPU µs/task e2e: all nodes / busiest node / replicas | "
      "CreateTask req/s | Redis CPU µs per CreateTask: all / busiest | task_service µs per CreateTask | "
      "round trip p50 | round trip p99 | errors (create, round trip) |")
    p("|---|---|---|---|---|---|---|---|---|")
    for key, label in SYSTEMS:
        sys_ = "rw" if key == "r1" else key
        if m(f"{sys_}_create_max", "rps") is None and m(f"{sys_}_e2e", "e2e_tasks_per_s") is None:
            continue
        e2e = f"{sys_}_e2e"
        cr = f"{sys_}_create_max"
        rt = f"{sys_}_roundtrip"
        e2e_cpu = "—"
        if m(e2e, "redis_cpu_us_per_item") is not None:
            e2e_cpu = (f"{fmt(m(e2e, 'redis_cpu_us_per_item'))} / {fmt(m(e2e, 'redis_busiest_cpu_us_per_item'))}"
                       f" / {fmt(m(e2e, 'redis_replicas_cpu_us_per_item'))}")
        errs = f"{fmt(m(cr, 'errors'))}, {fmt(m(rt, 'errors'))}" if m(cr, "rps") is not None else "—"
        p(f"| {label} | {with_spread(f, e2e, 'e2e_tasks_per_s')} | {e2e_cpu} | "
          f"{with_spread(f, cr, 'rps')} | {fmt(m(cr, 'redis_cpu_us_per_item'))} / "
          f"{fmt(m(cr, 'redis_busiest_cpu_us_per_item'))} | {fmt(m(cr, 'server_cpu_us_per_item'))} | "
          f"{with_spread(f, rt, 'p50_us', 'ms')} | {with_spread(f, rt, 'p99_us', 'ms')} | {errs} |")
    p("")
    p("Same-run ratios (of medians):")
    p("")
    p("| ratio | end to end tasks/s | Redis CPU per task e2e (all nodes) | busiest node's Redis CPU per task e2e | "
      "CreateTask req/s | round trip p50 | round trip p99 |")
    p("|---|---|---|---|---|---|---|")

    def rrow(label, a, b):
        if all(m(f"{x}_{n}", k) is None for x in (a, b)
               for n, k in (("create_max", "rps"), ("e2e", "e2e_tasks_per_s"))):
            return
        p(f"| {label} | {ratio(m(a + '_e2e', 'e2e_tasks_per_s'), m(b + '_e2e', 'e2e_tasks_per_s'))} | "
          f"{ratio(m(a + '_e2e', 'redis_cpu_us_per_item'), m(b + '_e2e', 'redis_cpu_us_per_item'))} | "
          f"{ratio(m(a + '_e2e', 'redis_busiest_cpu_us_per_item'), m(b + '_e2e', 'redis_busiest_cpu_us_per_item'))} | "
          f"{ratio(m(a + '_create_max', 'rps'), m(b + '_create_max', 'rps'))} | "
          f"{ratio(m(a + '_roundtrip', 'p50_us'), m(b + '_roundtrip', 'p50_us'))} | "
          f"{ratio(m(a + '_roundtrip', 'p99_us'), m(b + '_roundtrip', 'p99_us'))} |")

    rrow("cluster K=1 / standalone", "k1", "sa")
    rrow("K=3 / K=1, cluster", "k3", "k1")
    rrow("cluster K=3 / standalone", "k3", "sa")
    rrow("3 workers / 1 worker, cluster K=1 (k1w / k1)", "k1w", "k1")
    rrow("3 workers / 1 worker, K=3 (k3w / k3)", "k3w", "k3")
    rrow("K=3 / K=1, 3 workers each (k3w / k1w)", "k3w", "k1w")
    rrow("WAIT / no WAIT, cluster (kw / k1)", "kw", "k1")
    rrow("WAIT / no WAIT, standalone + replica (rw / r0)", "rw", "r0")
    rrow("standalone + replica / standalone, no WAIT (r0 / sa)", "r0", "sa")
    p("")
    p("Worker CPU per task end to end (µs): " + ", ".join(
        f"{k} {fmt(m(k + '_e2e', 'worker_cpu_us_per_item'))}" for k in ("sa", "k1", "k3", "k1w", "k3w")
        if m(k + "_e2e", "worker_cpu_us_per_item") is not None) +
      "; task_service per task: " + ", ".join(
        f"{k} {fmt(m(k + '_e2e', 'server_cpu_us_per_item'))}" for k in ("sa", "k1", "k3", "k1w", "k3w")
        if m(k + "_e2e", "server_cpu_us_per_item") is not None) + ".")
    print("\n".join(lines))


def main(out):
    f = Figures(load(out))
    if f.values("k1_create_max", "rps"):
        return cluster_main(f, out)
    lines, p = report_start(out)
    reps = max([len(f.values("e2e", "e2e_tasks_per_s")), 1])
    p(f"Medians of {reps} (min–max in brackets). Ratios are taken between medians of this run.")
    p("")

    cyc = f.med("stream_cycle", "msgs_per_s")
    cyc_cpu = f.med("stream_cycle", "redis_cpu_us_per_item")
    echo = f.med("echo_create", "rps")
    e2e = f.med("e2e", "e2e_tasks_per_s")
    e2e_enq = f.med("e2e", "items_per_s")
    e2e_cpu = f.med("e2e", "redis_cpu_us_per_item")
    create = f.med("create_max", "rps")
    create_cpu = f.med("create_max", "redis_cpu_us_per_item")
    rt50 = f.med("roundtrip", "p50_us")
    rt99 = f.med("roundtrip", "p99_us")
    b_e2e = f.med("bullmq_e2e", "e2e_tasks_per_s")
    b_enq = f.med("bullmq_e2e", "enqueue_per_s")
    b_cpu = f.med("bullmq_e2e", "redis_cpu_us_per_item")
    b50 = f.med("bullmq_roundtrip", "p50_us")
    b99 = f.med("bullmq_roundtrip", "p99_us")
    c_e2e = f.med("celery_e2e", "e2e_tasks_per_s")
    c_enq = f.med("celery_e2e", "enqueue_per_s")
    c_cpu = f.med("celery_e2e", "redis_cpu_us_per_item")
    c50 = f.med("celery_roundtrip", "p50_us")
    c99 = f.med("celery_roundtrip", "p99_us")
    a_e2e = f.med("asynq_e2e", "e2e_tasks_per_s")
    a_enq = f.med("asynq_e2e", "enqueue_per_s")
    a_cpu = f.med("asynq_e2e", "redis_cpu_us_per_item")
    a50 = f.med("asynq_roundtrip", "p50_us")
    a99 = f.med("asynq_roundtrip", "p99_us")

    producers = int(f.med("asynq_e2e", "producers") or 0)
    a_enq_how = f"Client.Enqueue ×{producers} in flight" if producers else "Client.Enqueue"
    p("| figure | taskmesh | ceiling | taskmesh / ceiling | BullMQ | taskmesh / BullMQ | Celery | "
      "taskmesh / Celery | Asynq | taskmesh / Asynq |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    p(f"| end to end, no-op tasks/s | {with_spread(f, 'e2e', 'e2e_tasks_per_s')} | "
      f"{with_spread(f, 'stream_cycle', 'msgs_per_s')} msgs/s (stream cycle) | {ratio(e2e, cyc, True)} | "
      f"{with_spread(f, 'bullmq_e2e', 'e2e_tasks_per_s')} | {ratio(e2e, b_e2e)} | "
      f"{with_spread(f, 'celery_e2e', 'e2e_tasks_per_s')} | {ratio(e2e, c_e2e)} | "
      f"{with_spread(f, 'asynq_e2e', 'e2e_tasks_per_s')} | {ratio(e2e, a_e2e)} |")
    p(f"| enqueue tasks/s (BatchCreateTasks ×100 / addBulk ×1000 / apply_async / {a_enq_how}) | "
      f"{fmt(e2e_enq)} | — | — | {fmt(b_enq)} | {ratio(e2e_enq, b_enq)} | {fmt(c_enq)} | "
      f"{ratio(e2e_enq, c_enq)} | {fmt(a_enq)} | {ratio(e2e_enq, a_enq)} |")
    p(f"| Redis CPU per task, end to end | {fmt(e2e_cpu, 'us')} | {fmt(cyc_cpu, 'us')} per message | "
      f"{ratio(e2e_cpu, cyc_cpu)} | {fmt(b_cpu, 'us')} | {ratio(e2e_cpu, b_cpu)} | {fmt(c_cpu, 'us')} | "
      f"{ratio(e2e_cpu, c_cpu)} | {fmt(a_cpu, 'us')} | {ratio(e2e_cpu, a_cpu)} |")
    p(f"| CreateTask unary, closed loop, req/s | {with_spread(f, 'create_max', 'rps')} | "
      f"{with_spread(f, 'echo_create', 'rps')} (gRPC echo) | {ratio(create, echo, True)} | — | — | — | — | — | — |")
    p(f"| Redis CPU per CreateTask | {fmt(create_cpu, 'us')} | {fmt(cyc_cpu, 'us')} per message | "
      f"{ratio(create_cpu, cyc_cpu)} | — | — | — | — | — | — |")
    p(f"| round trip at idle, p50 | {with_spread(f, 'roundtrip', 'p50_us', 'ms')} | — | — | "
      f"{fmt(b50, 'ms')} | {ratio(rt50, b50)} | {fmt(c50, 'ms')} | {ratio(rt50, c50)} | "
      f"{fmt(a50, 'ms')} | {ratio(rt50, a50)} |")
    p(f"| round trip at idle, p99 | {with_spread(f, 'roundtrip', 'p99_us', 'ms')} | — | — | "
      f"{fmt(b99, 'ms')} | {ratio(rt99, b99)} | {fmt(c99, 'ms')} | {ratio(rt99, c99)} | "
      f"{fmt(a99, 'ms')} | {ratio(rt99, a99)} |")
    p("")
    skipped = [r.get("why", "?") for r in f.rows if r.get("name") == "asynq_skipped"]
    if skipped:
        p(f"Asynq was not measured in this run: {skipped[0]}.")
        p("")
    elif a_e2e is not None:
        a_n = f.values("asynq_roundtrip", "ok")
        p(f"Asynq: {fmt(f.med('asynq_e2e', 'e2e_tasks'))} tasks per round, a server of concurrency "
          f"{int(f.med('asynq_e2e', 'worker_concurrency') or 0)}; its worker processed "
          f"{with_spread(f, 'asynq_e2e', 'drain_after_enqueue_per_s')} tasks/s on the backlog left when the "
          f"producer finished ({fmt(f.med('asynq_e2e', 'done_at_enqueue_end'))} of them done by then); "
          f"its processor polls an empty queue every 0.5–1.5 s (TaskCheckInterval, 1 s by default), "
          f"which sets its idle round trip ({int(sum(a_n))} round trips over {len(a_n)} rounds).")
        p("")

    p("CreateTask latency, open loop (latency from each request's intended start):")
    p("")
    p("| rate | achieved req/s | p50 | p90 | p99 | p99.9 | errors |")
    p("|---|---|---|---|---|---|---|")
    for pct in (25, 50, 80):
        name = f"create_open_{pct}"
        tgt = f.med(name, "target_rate")
        if tgt is None:
            continue
        p(f"| {pct}% of max = {tgt:,.0f}/s | {fmt(f.med(name, 'rps'))} | "
          f"{fmt(f.med(name, 'p50_us'), 'ms')} | {fmt(f.med(name, 'p90_us'), 'ms')} | "
          f"{fmt(f.med(name, 'p99_us'), 'ms')} | {fmt(f.med(name, 'p999_us'), 'ms')} | "
          f"{fmt(f.med(name, 'errors'))} |")
    p(f"| gRPC echo, closed loop c={int(f.med('echo_create', 'concurrency') or 0)} | {fmt(echo)} | "
      f"{fmt(f.med('echo_create', 'p50_us'), 'ms')} | {fmt(f.med('echo_create', 'p90_us'), 'ms')} | "
      f"{fmt(f.med('echo_create', 'p99_us'), 'ms')} | {fmt(f.med('echo_create', 'p999_us'), 'ms')} | — |")
    p(f"| stream cycle queueing | {fmt(cyc)} | {fmt(f.med('stream_cycle', 'p50_us'), 'ms')} | "
      f"{fmt(f.med('stream_cycle', 'p90_us'), 'ms')} | {fmt(f.med('stream_cycle', 'p99_us'), 'ms')} | "
      f"{fmt(f.med('stream_cycle', 'p999_us'), 'ms')} | — |")
    p("")

    p("CPU time per request or task, by process (µs; on 2 cores, 1 s of one core = 1e6 µs):")
    p("")
    p("| run | server | worker | Redis | load generator (client) | all measured |")
    p("|---|---|---|---|---|---|")

    def med(name, field):
        return f.med(name, field)

    def client_us(name, count_field):
        if count_field in ("producer_cpu_us_per_item",):  # measured by the producer itself
            return med(name, count_field)
        rows = [r for r in f.rows if r.get("name") == name and "loadgen_cpu_s" in r]
        vals = [r["loadgen_cpu_s"] * 1e6 / max(1, r.get(count_field, 0)) for r in rows]
        return statistics.median(vals) if vals else None

    def row(label, name, server, worker, redis_field, count_field):
        parts = [med(name, server) if server else None, med(name, worker) if worker else None,
                 med(name, redis_field) if redis_field else None,
                 client_us(name, count_field) if count_field else None]
        known = [x for x in parts if x is not None]
        total = fmt(sum(known), "us") if known else "—"
        p(f"| {label} | " + " | ".join(fmt(x, "us") if x is not None else "—" for x in parts) +
          f" | {total} |")

    row("gRPC echo, CreateTask", "echo_create", "server_cpu_us_per_item", None, None, "issued")
    row("taskmesh CreateTask", "create_max", "server_cpu_us_per_item", None,
        "redis_cpu_us_per_item", "issued")
    row("taskmesh end to end", "e2e", "server_cpu_us_per_item", "worker_cpu_us_per_item",
        "redis_cpu_us_per_item", "e2e_succeeded")
    row("BullMQ end to end (producer not measured)", "bullmq_e2e", None, "worker_cpu_us_per_item",
        "redis_cpu_us_per_item", None)
    row("Celery end to end (producer not measured)", "celery_e2e", None, "worker_cpu_us_per_item",
        "redis_cpu_us_per_item", None)
    row("Asynq end to end (producer: its enqueue phase)", "asynq_e2e", None, "worker_cpu_us_per_item",
        "redis_cpu_us_per_item", "producer_cpu_us_per_item")
    p(f"| raw stream cycle (per message) | — | — | {fmt(med('stream_cycle', 'redis_cpu_us_per_item'), 'us')} | — | — |")
    p("")

    rss = {}
    for r in f.rows:
        if r.get("name") == "rss":
            key = (r["process"], r["phase"])
            rss[key] = max(rss.get(key, 0), r["kb"])
    procs = []
    for (proc, _), _ in rss.items():
        if proc not in procs:
            procs.append(proc)
    def mb(kb):
        return f"{kb / 1024:.1f} MB" if kb else "—"

    p("| process | RSS idle | peak RSS under load (VmHWM) | peak RSS in the open-loop runs |")
    p("|---|---|---|---|")
    for proc in procs:
        p(f"| {proc} | {mb(rss.get((proc, 'idle')))} | {mb(rss.get((proc, 'load')))} | "
          f"{mb(rss.get((proc, 'overload')))} |")
    p("")

    def verdict(ok):
        return "—" if ok is None else ("**met**" if ok else "**not met**")

    taskmesh_idle = [v for (proc, ph), v in rss.items()
                     if ph == "idle" and proc in ("task_service", "worker")]
    p("| target | measured | |")
    p("|---|---|---|")
    p(f"| end to end ≥ 3x BullMQ | {ratio(e2e, b_e2e)} | "
      f"{verdict(None if e2e is None or b_e2e is None else e2e >= 3 * b_e2e)} |")
    p(f"| end to end ≥ 20% of the stream cycle | {ratio(e2e, cyc, True)} | "
      f"{verdict(None if e2e is None or cyc is None else e2e >= 0.2 * cyc)} |")
    p(f"| Redis CPU per task ≤ 3x the cycle's per message | {ratio(e2e_cpu, cyc_cpu)} | "
      f"{verdict(None if e2e_cpu is None or cyc_cpu is None else e2e_cpu <= 3 * cyc_cpu)} |")
    p(f"| round trip p50 ≤ 0.5 ms at idle | {fmt(rt50, 'ms')} | "
      f"{verdict(None if rt50 is None else rt50 <= 500)} |")
    p(f"| round trip p99 ≤ 2 ms at idle | {fmt(rt99, 'ms')} | "
      f"{verdict(None if rt99 is None else rt99 <= 2000)} |")
    p(f"| CreateTask ≥ 50% of the gRPC echo | {ratio(create, echo, True)} | "
      f"{verdict(None if create is None or echo is None else create >= 0.5 * echo)} |")
    p(f"| every taskmesh process ≤ 32 MB RSS idle | "
      f"{max(taskmesh_idle) / 1024:.1f} MB (largest)" if taskmesh_idle else "| every taskmesh process ≤ 32 MB RSS idle | —")
    lines[-1] += f" | {verdict(None if not taskmesh_idle else max(taskmesh_idle) <= 32 * 1024)} |"
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
