#!/usr/bin/env bash
# The long versions of the fault tests F1-F10 (tests/fault/README.md): more
# tasks, more kills, more rounds. One test at a time, so that their timing
# bounds are not measured on a machine shared with the other fault tests.
# Prints each test's ledger line at the end. About 5 minutes on 2 cores.
#
#   tests/fault/run_long.sh                  every fault test
#   tests/fault/run_long.sh //tests/fault:f1_worker_kill_test
set -uo pipefail
cd "$(dirname "$0")/../.."

targets=("$@")
if ((${#targets[@]} == 0)); then targets=(//tests/fault/...); fi

stamp=$(mktemp)
bazel test --test_env=TASKMESH_FAULT_SCALE=long --test_timeout=1800 --local_test_jobs=1 \
  --nocache_test_results --test_output=errors "${targets[@]}"
rc=$?

echo "== ledgers"
find -L bazel-testlogs/tests/fault -name test.log -newer "$stamp" -print0 2>/dev/null |
  xargs -0 -r grep -h " ledger: "
rm -f "$stamp"
exit $rc
