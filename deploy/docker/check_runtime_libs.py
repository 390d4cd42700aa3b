#!/usr/bin/python3
"""Checks that the runtime image's package list covers the binaries' libraries.

No container engine runs on the build machines, so the runtime stage of
deploy/docker/Dockerfile cannot be built and run here. What can be checked:
every shared library `ldd` resolves for a built binary must come from a
Debian package that the runtime stage installs, i.e. one listed in
runtime-packages.txt or pulled in by their Depends/Pre-Depends (read from
dpkg's database, offline). A library found nowhere, or outside any Debian
package (e.g. a Bazel-built .so under bazel-out), fails the check.

Prints `PASS: docker: ...` / `FAIL: docker: ...` lines; exit 1 on a failure.

Example:
  check_runtime_libs.py bazel-bin/task_service/task_service bazel-bin/workers/worker
  check_runtime_libs.py --packages other-list.txt BINARY   # another list (self-tests)
"""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_list(path):
    with open(path) as f:
        return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]


def depends_closure(packages):
    """Installed packages reachable from `packages` by Depends/Pre-Depends."""
    seen, todo = set(), list(packages)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                           capture_output=True, text=True)
        if r.returncode != 0:
            continue  # not installed here: its own name still counts
        for alt in re.split(r"[,|]", r.stdout):
            name = re.sub(r"\(.*?\)|\[.*?\]|:any|:amd64", "", alt).strip()
            if name and name not in seen:
                todo.append(name)
    return seen


def owner(path):
    """The Debian package that installed `path`, or None."""
    candidates = {path, os.path.realpath(path)}
    for c in list(candidates):  # usrmerge: /lib == /usr/lib
        if c.startswith("/usr/lib/"):
            candidates.add(c[len("/usr"):])
        elif c.startswith("/lib"):
            candidates.add("/usr" + c)
    for c in sorted(candidates):
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def main(argv):
    args = argv[1:]
    packages = os.path.join(HERE, "runtime-packages.txt")
    if args[:1] == ["--packages"] and len(args) > 1:
        packages, args = args[1], args[2:]
    binaries = args
    if not binaries:
        print("usage: check_runtime_libs.py [--packages FILE] BINARY...", file=sys.stderr)
        return 2
    listed = read_list(packages)
    closure = depends_closure(listed)
    failed, used = 0, set()
    for b in binaries:
        r = subprocess.run(["ldd", b], capture_output=True, text=True)
        problems = []
        if r.returncode != 0:
            problems.append(f"ldd failed: {r.stderr.strip() or r.stdout.strip()}")
        libs = []
        for line in r.stdout.splitlines():
            line = line.strip()
            if "not found" in line:
                problems.append(f"unresolved: {line}")
                continue
            m = re.match(r"^(\S+) => (/\S+)", line) or re.match(r"^(/\S+) \(", line)
            if m:
                libs.append(m.group(m.lastindex))
        for lib in libs:
            pkg = owner(lib)
            if pkg is None:
                problems.append(f"{lib} belongs to no Debian package (link it statically or package it)")
            elif pkg not in closure:
                problems.append(f"{lib} is in {pkg}, which runtime-packages.txt does not install "
                                f"(add {pkg}, or the package that depends on it)")
            else:
                used.add(pkg)
        if problems:
            failed += 1
            print(f"FAIL: docker: runtime packages cover {os.path.basename(b)} ({len(libs)} libraries)")
            for p in problems:
                print(f"    {p}")
        else:
            print(f"PASS: docker: runtime packages cover {os.path.basename(b)} ({len(libs)} libraries)")
    unused = [p for p in listed if p not in used]
    if unused:
        print(f"note: docker: listed but linked by none of these binaries: {', '.join(unused)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
