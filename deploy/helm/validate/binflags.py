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

A binary not given (not built yet) is reported as SKIP, never as PASS.

Example:
  binflags.py help --binary worker=bazel-bin/workers/worker --out flags.json
  binflags.py accept --render default --manifest m.yaml --binary worker=bazel-bin/workers/worker
"""

import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402

FLAG_LINE = re.compile(r"^\s*--([a-z][a-z0-9_]*)\b")


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


def cmd_accept(a):
    bins = parse_binaries(a.binary)
    docs = check.load_docs(open(a.manifest).read())
    ch = check.Checker(a.render, docs, "", {}, quiet=True)
    failed = 0
    for pod in ch.pods:
        binary = check.COMPONENT_BINARY.get(pod.component)
        if not binary:
            continue
        path = bins.get(binary)
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
    a = ap.parse_args(argv)
    return cmd_help(a) if a.cmd == "help" else cmd_accept(a)


if __name__ == "__main__":
    sys.exit(main())
