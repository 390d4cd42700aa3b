#!/usr/bin/env python3
"""Helpers of bench/cluster.sh: a local Redis Cluster, through redis-cli (so
nothing beyond redis-tools is needed), and loadgen results of parallel runs.

  cluster_util.py ports N                  N ports P (P and P+10000 free, P < 55535)
  cluster_util.py healthy N PORT           every node agrees: state ok, N nodes, replicas linked
  cluster_util.py masters PORT             the masters' ports, by first slot
  cluster_util.py master-of PORT KEY       the port of the master serving KEY's slot
  cluster_util.py partitioned PORT PREFIX K  the first queue PREFIX0, PREFIX1, ... whose K
                                          partitions ({Q}, {Q~1}, ...) live on K different
                                          masters
  cluster_util.py cpu PORT...              PORT=seconds of CPU (INFO cpu, user + sys) per node
  cluster_util.py cpu-fields "BEFORE" "AFTER" ITEMS MASTER_PORTS
      JSON fields (no braces) of Redis CPU per item: all nodes, masters,
      replicas, and the busiest node
"""
import random
import socket
import subprocess
import sys


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                         text=True, timeout=10)
    return out.stdout


def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ports(n):
    got = []
    while len(got) < n:
        p = random.randrange(20000, 30000)
        if p in got or p + 10000 in got or p - 10000 in got:
            continue
        if free(p) and free(p + 10000):
            got.append(p)
    return got


def nodes(port):
    """[(port, is_master, first_slot or None, myself)] from CLUSTER NODES."""
    out = []
    for line in cli(port, "cluster", "nodes").splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        p = int(f[1].split("@")[0].rsplit(":", 1)[1])
        flags = f[2].split(",")
        first = None
        for r in f[8:]:
            if not r.startswith("["):
                first = int(r.split("-")[0]) if first is None else min(first, int(r.split("-")[0]))
        out.append((p, "master" in flags, first, "myself" in flags, "fail" in flags))
    return out


def masters(port):
    ms = [(first, p) for p, m, first, _, _ in nodes(port) if m and first is not None]
    return [p for _, p in sorted(ms)]


def info_field(text, field):
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def healthy(n, port):
    all_ports = [p for p, *_ in nodes(port)]
    if len(all_ports) != n:
        return False
    views = set()
    for p in all_ports:
        info = cli(p, "cluster", "info")
        if info_field(info, "cluster_state") != "ok" or info_field(info, "cluster_known_nodes") != str(n):
            return False
        ns = nodes(p)
        me = [x for x in ns if x[3]]
        if me and not me[0][1]:
            if info_field(cli(p, "info", "replication"), "master_link_status") != "up":
                return False
        if any(x[4] for x in ns):
            return False
        views.add(tuple(masters(p)))
    return len(views) == 1


def master_of(port, key):
    slot = int(cli(port, "cluster", "keyslot", key).strip())
    best = None
    for line in cli(port, "cluster", "nodes").splitlines():
        f = line.split()
        if len(f) < 8 or "master" not in f[2].split(","):
            continue
        for r in f[8:]:
            if r.startswith("["):
                continue
            a, _, b = r.partition("-")
            if int(a) <= slot <= int(b or a):
                best = int(f[1].split("@")[0].rsplit(":", 1)[1])
    return best


def partition(q, p):
    return q if p == 0 else f"{q}~{p}"


def partitioned(port, prefix, k):
    for i in range(1000):
        q = f"{prefix}{i}"
        if len({master_of(port, f"taskmesh:{{{partition(q, p)}}}:x") for p in range(k)}) == k:
            return q
    sys.exit(f"no queue {prefix}N with {k} partitions on {k} masters")


def cpu(port):
    info = cli(port, "info", "cpu")
    return float(info_field(info, "used_cpu_user") or 0) + float(info_field(info, "used_cpu_sys") or 0)


def parse(pairs):
    return {int(k): float(v) for k, v in (x.split("=") for x in pairs.split())}


def cpu_fields(before, after, items, master_ports):
    b, a = parse(before), parse(after)
    items = max(float(items), 1)
    ms = {int(x) for x in master_ports.split(",")}
    d = {p: a[p] - b.get(p, 0) for p in a}
    total = sum(d.values())
    mtot = sum(v for p, v in d.items() if p in ms)
    busiest = max(d, key=d.get)
    per_node = ",".join(f'"{p}":{v * 1e6 / items:.2f}' for p, v in sorted(d.items()))
    return (f'"redis_cpu_s":{total:.4f},"redis_cpu_us_per_item":{total * 1e6 / items:.3f},'
            f'"redis_masters_cpu_us_per_item":{mtot * 1e6 / items:.3f},'
            f'"redis_replicas_cpu_us_per_item":{(total - mtot) * 1e6 / items:.3f},'
            f'"redis_busiest_cpu_us_per_item":{d[busiest] * 1e6 / items:.3f},'
            f'"redis_busiest_port":{busiest},"redis_busiest_is_master":{str(busiest in ms).lower()},'
            f'"redis_node_cpu_us_per_item":{{{per_node}}}')


def main(argv):
    cmd = argv[1]
    if cmd == "ports":
        print(" ".join(map(str, ports(int(argv[2])))))
    elif cmd == "healthy":
        sys.exit(0 if healthy(int(argv[2]), int(argv[3])) else 1)
    elif cmd == "masters":
        print(" ".join(map(str, masters(int(argv[2])))))
    elif cmd == "master-of":
        print(master_of(int(argv[2]), argv[3]))
    elif cmd == "partitioned":
        print(partitioned(int(argv[2]), argv[3], int(argv[4])))
    elif cmd == "cpu":
        print(" ".join(f"{p}={cpu(p):.6f}" for p in argv[2:]))
    elif cmd == "cpu-fields":
        print(cpu_fields(*argv[2:6]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
