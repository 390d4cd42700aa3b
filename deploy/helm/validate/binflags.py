#!/usr/bin/python3
"""Cross-checks the chart's flags against the real binaries.

help:   runs `BINARY --help` of each binary given, reads the flags it lists
        (lines starting with `--name`), checks that they are exactly the flags
        of the chart's contract (flags-contract.json): none the chart relies
        on is missing, none is unreachable from the chart's values; and writes
        {binary: [flags]} for check.py --help-flags, which then rejects any
        flag the chart passes that --help does not list.
accept: for every container of a rendered manifest whose binary is given,
        runs the binary with exactly the chart's TASKMESH_* environment and
        args plus `--version` (which taskmesh's flag parsing handles after
        applying the environment and parsing the command line, then exits 0
        without starting anything). A flag or value the binary rejects makes
        it exit non-zero: the chart would crash-loop.
        File-valued flags (forms `file` and `files` in flags-contract.json,
        e.g. the worker's --periodic_config, the gateway's --descriptor_set)
        name paths inside ConfigMap volumes, which do not exist here: the
        content the pod would see (the rendered ConfigMap key, binaryData
        byte for byte) is written to a temporary file and the flag points
        there; a path no mounted ConfigMap/Secret provides fails. A path on
        the volume the values declare as the user's own (the gateway's
        descriptorSets.volume) needs its content given: --provide POD_PATH=FILE.
        `--version` exits before such files are read, and some settings are
        only checked at start (the contract's `start`: the gateway's routes
        against its descriptors, its limits), so such a container is also
        started for real: same environment, except that every listen address
        becomes 127.0.0.1:0, --redis and every gRPC target (--upstream, the
        targets of --route) a closed local port (it must reach nothing real);
        it must still be running after STARTUP_SECONDS (the binaries check
        their flags and files before starting anything) and exit 0 on SIGTERM.
        A Redis Cluster seed list (redis://[:PW@]H1:P1,H2:P2,...) is made
        local seed by seed: every address becomes the closed local port (the
        binaries start at once and keep trying the seeds, redis::AutoClient).

A binary not given (not built yet) is reported as SKIP, never as PASS.

Example:
  binflags.py help --binary worker=bazel-bin/workers/worker --out flags.json
  binflags.py accept --render default --manifest m.yaml --binary worker=bazel-bin/workers/worker
  binflags.py accept --render gateway --manifest m.yaml --values values.yaml --values gw.yaml \
      --binary api_gateway=bazel-bin/api_gateway/api_gateway --provide /etc/taskmesh/x/ops.pb=ops.pb
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402

FLAG_LINE = re.compile(r"^\s*--([a-z][a-z0-9_]*)\b")
STARTUP_SECONDS = 2.0
# Where the started binary goes instead of the pod's addresses.
LOCAL = {"hostport": "127.0.0.1:0", "redis_url": "redis://127.0.0.1:1/0", "target": "127.0.0.1:1"}
LOCALIZED = ("hostport", "ipv4port_or_empty", "redis_url", "target", "routes")


def local_seeds(value):
    """A seed list with every address replaced by the closed local port (the
    credentials, which name no place, stay)."""
    r = check.parse_redis(value)
    userinfo = value[len("redis://"):].split("@", 1)[0] + "@" if "@" in value else ""
    n = len(r["hosts"]) if r else 2
    return "redis://" + userinfo + ",".join([LOCAL["target"]] * n)


def is_seed_list(value):
    r = check.parse_redis(value)
    return bool(r and r["seeds"])


def local_value(kind, value):
    if kind == "redis_url" and is_seed_list(value):
        return local_seeds(value)
    if kind == "routes":   # package.Service=TARGET,...: the services stay, the targets go local
        return ",".join(r.partition("=")[0] + "=" + LOCAL["target"] for r in check.comma_list(value))
    if kind == "ipv4port_or_empty":   # empty (the server off) stays off
        return LOCAL["hostport"] if value else ""
    return LOCAL[kind]


def parse_binaries(items):
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        if name not in check.BINARIES:
            raise SystemExit(f"binflags: unknown binary {name!r} (want one of {sorted(check.BINARIES)})")
        out[name] = path
    return out


def help_flags(path):
    r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=20,
                       env={"PATH": "/usr/bin:/bin"})
    text = r.stdout + r.stderr
    flags = sorted({m.group(1) for m in map(FLAG_LINE.match, text.splitlines()) if m} - {"help"})
    return r.returncode, flags, text


def cmd_help(a):
    bins = parse_binaries(a.binary)
    failed, out = 0, {}
    for name in sorted(check.BINARIES):
        path = bins.get(name)
        if not path:
            print(f"SKIP: flags: {name} --help (binary not built; the chart is checked against "
                  f"flags-contract.json only)")
            continue
        rc, flags, text = help_flags(path)
        missing = sorted(set(check.BINARIES[name]["flags"]) - set(flags))
        unreachable = sorted(set(flags) - set(check.BINARIES[name]["flags"]))
        if rc not in (0, 1) or not flags:
            print(f"FAIL: flags: {name} --help lists flags (exit {rc})\n    {text.strip()[:500]}")
            failed += 1
        elif missing:
            print(f"FAIL: flags: {name} --help has every flag the chart relies on")
            print(f"    missing from {path} --help: {', '.join('--' + m for m in missing)}")
            failed += 1
        else:
            print(f"PASS: flags: {name} --help has every flag the chart relies on ({len(flags)} flags)")
        if unreachable:
            print(f"FAIL: flags: every flag of {name} is reachable from the chart's values")
            print(f"    {path} --help lists {', '.join('--' + u for u in unreachable)}, which no value sets: "
                  f"add a value to deploy/helm/taskmesh (and the flag to validate/flags-contract.json)")
            failed += 1
        elif flags:
            print(f"PASS: flags: every flag of {name} is reachable from the chart's values")
        out[name] = flags
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    return 1 if failed else 0


def expand(value, env):
    return check.VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def localize(flags, env, args, kinds=LOCALIZED):
    """env and args with the flags of the given value forms made local."""
    env, out = dict(env), []
    for flag, kind in flags.items():
        if kind in kinds and "TASKMESH_" + flag.upper() in env:
            env["TASKMESH_" + flag.upper()] = local_value(kind, env["TASKMESH_" + flag.upper()])
    for x in args:
        name, _, val = x[2:].partition("=") if x.startswith("--") else ("", "", "")
        out.append(f"--{name}={local_value(flags[name], val)}" if flags.get(name) in kinds else x)
    return env, out


def redis_value(flags, env, args):
    """The --redis the container gets (env or args), or ""."""
    for x in args:
        if x.startswith("--redis="):
            return x[len("--redis="):]
    return env.get("TASKMESH_REDIS", "") if "redis" in flags else ""


def start(path, args, env):
    """Runs the binary as the pod would; (ok, why)."""
    proc = subprocess.Popen([path] + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=STARTUP_SECONDS)
        return False, f"exited {proc.returncode} while starting: {out.strip()[-400:]}"
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False, "started, but did not exit within 30 s of SIGTERM"
    if proc.returncode != 0:
        return False, f"started, but exit {proc.returncode} on SIGTERM: {out.strip()[-400:]}"
    return True, ""


def parse_provided(items):
    out = {}
    for item in items:
        where, _, local = item.partition("=")
        if not where.startswith("/") or not os.path.isfile(local):
            raise SystemExit(f"binflags: --provide {item!r}: want POD_PATH=EXISTING_FILE")
        out[where] = local
    return out


def materialize(ch, c, flags, env, args, tmp, provided):
    """Points the file-valued flags at local copies of what the pod would
    read. Returns (env, args, file flags, problems)."""
    env, args = dict(env), list(args)
    sites = []   # (how, at, flag, kind, value)
    for flag, kind in flags.items():
        var = "TASKMESH_" + flag.upper()
        if kind in ("file", "files") and var in env:
            sites.append(("env", var, flag, kind, env[var]))
    for i, x in enumerate(args):
        name, _, val = x[2:].partition("=")
        if x.startswith("--") and flags.get(name) in ("file", "files"):
            sites.append(("arg", i, name, flags[name], val))
    problems, used, n = [], [], 0
    for how, at, flag, kind, value in sites:
        paths = [value] if kind == "file" else check.comma_list(value)
        local_paths = []
        for where in paths:
            content, why = ch.mounted_file(c, where)
            if why:
                problems.append(f"--{flag}={where}: {why}")
                continue
            n += 1
            if isinstance(content, check.UserFile):
                if where not in provided:
                    problems.append(f"--{flag}={where}: on the user's own volume {content.volume!r}: "
                                    f"its content is not in the manifest (give it: --provide {where}=FILE)")
                    continue
                local_paths.append(provided[where])
                continue
            local = os.path.join(tmp, f"{n}-{os.path.basename(where)}")
            with open(local, "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
            local_paths.append(local)
        if paths:
            used.append(flag)
        joined = ",".join(local_paths)
        if how == "env":
            env[at] = joined
        else:
            args[at] = f"--{flag}={joined}"
    return env, args, used, problems


def cmd_accept(a):
    bins = parse_binaries(a.binary)
    provided = parse_provided(a.provide)
    docs = check.load_docs(open(a.manifest).read())
    values = check.load_values(a.values) if a.values else {}
    ch = check.Checker(a.render, docs, "", values, quiet=True)
    failed = 0
    for pod in ch.pods:
        binary = check.COMPONENT_BINARY.get(pod.component)
        if not binary:
            continue
        path = bins.get(binary)
        flags = check.BINARIES[binary]["flags"]
        for c in pod.spec.get("containers") or []:
            what = f"{a.render}: {binary} accepts the flags of {pod.name}"
            if not path:
                print(f"SKIP: flags: {what} (binary not built)")
                continue
            env = {"PATH": "/usr/bin:/bin"}
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = expand(str(e["value"]), env)
                elif "secretKeyRef" in (e.get("valueFrom") or {}):
                    env[e["name"]] = "secret0"
                else:  # fieldRef (the pod name)
                    env[e["name"]] = "taskmesh-worker-default-5d9c7-abcde"
            args = [expand(str(x), env) for x in c.get("args") or []]
            with tempfile.TemporaryDirectory() as tmp:
                # File-valued flags: the content the pod would find, here.
                env, args, files, problems = materialize(ch, c, flags, env, args, tmp, provided)
                if problems:
                    failed += 1
                    print(f"FAIL: flags: {what}: a file the binary reads would not exist in the pod")
                    for p in problems:
                        print(f"    {p}")
                    continue
                r = subprocess.run([path] + args + ["--version"], capture_output=True, text=True,
                                   timeout=20, env=env)
                if r.returncode == 0:
                    print(f"PASS: flags: {what}")
                else:
                    failed += 1
                    shown = {k: v for k, v in env.items() if k.startswith("TASKMESH_")}
                    print(f"FAIL: flags: {what}: exit {r.returncode}")
                    print(f"    {(r.stderr or r.stdout).strip()[:400]}")
                    print(f"    env: {shown} args: {args}")
                    continue
                if not files and not check.BINARIES[binary].get("start"):
                    continue
                # --version reads no files and skips checks made at start:
                # start it for real.
                seeds = is_seed_list(redis_value(flags, env, args))
                senv, sargs = localize(flags, env, args)
                swhat = (f"{a.render}: {binary} starts with the settings of {pod.name}" +
                         (f" and its files ({', '.join('--' + f for f in files)})" if files else ""))
                if seeds:
                    swhat += " (--redis: the seed list, every seed local)"
                ok, why = start(path, sargs, senv)
                if ok:
                    print(f"PASS: flags: {swhat}")
                else:
                    failed += 1
                    shown = {k: v for k, v in senv.items() if k.startswith("TASKMESH_")}
                    print(f"FAIL: flags: {swhat}: {why}")
                    print(f"    env: {shown} args: {sargs}")
    return 1 if failed else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("help")
    h.add_argument("--binary", action="append", default=[], help="NAME=PATH")
    h.add_argument("--out", required=True)
    c = sub.add_parser("accept")
    c.add_argument("--render", required=True)
    c.add_argument("--manifest", required=True)
    c.add_argument("--binary", action="append", default=[], help="NAME=PATH")
    c.add_argument("--values", action="append", default=[],
                   help="the render's values files, chart defaults first (which volume is the user's own)")
    c.add_argument("--provide", action="append", default=[],
                   help="POD_PATH=FILE: the content of a file on the user's own volume")
    a = ap.parse_args(argv)
    return cmd_help(a) if a.cmd == "help" else cmd_accept(a)


if __name__ == "__main__":
    sys.exit(main())
