#!/usr/bin/env bash
# Runs the KEDA scaling test (tests/keda, see README.md): KEDA's own
# redis-streams scaler (kedacore/keda v2.21.0) against a real redis-server and
# taskmesh's binaries, with the triggers the Helm chart renders.
#
#   tests/keda/run.sh [BAZEL_BIN_DIR]      default: $TASKMESH_BIN_DIR, else <repo>/bazel-bin
#
# Builds nothing but the Go test (the C++ binaries must be built already:
# bazel build //task_service:task_service //workers:worker). Needs Go >= 1.26
# (/usr/local/go/bin/go is used when present), the Go module proxy on a cold
# cache, redis-server, and the modules of the chart renderer
# (deploy/helm/validate/helmcheck, its own go.mod). The module and build caches stay at Go's
# defaults (GOMODCACHE ~/go/pkg/mod, GOCACHE ~/.cache/go-build) so that later
# runs are quick.
#
# Prints the test's log, then exactly one line "keda: N passed, M failed"
# (N/M: subtests of TestKEDAScaling and TestKEDAClusterScaling; a failure
# outside any subtest, such as a build error or a failed setup, counts as one
# failed), and exits 1 on any failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin_dir=${1:-${TASKMESH_BIN_DIR:-$root/bazel-bin}}
if [[ ! -d "$bin_dir" ]]; then
  echo "run.sh: no bazel-bin directory at $bin_dir (pass it as the argument or set TASKMESH_BIN_DIR)" >&2
  echo "keda: 0 passed, 1 failed"
  exit 1
fi
export TASKMESH_BIN_DIR
TASKMESH_BIN_DIR=$(cd "$bin_dir" && pwd -P)
[[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH
# go.mod says go 1.26.0: the installed toolchain, no download.
export GOTOOLCHAIN=local
unset GOFLAGS

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
(cd "$here" && go test -count=1 -v -timeout 15m ./...) 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "run.sh: go test took $(( $(date +%s) - start ))s (exit $rc)"

passed=$(grep -cE '^ +--- PASS: TestKEDA(Cluster)?Scaling/' "$log")
failed=$(grep -cE '^ +--- FAIL: TestKEDA(Cluster)?Scaling/' "$log")
if (( rc != 0 && failed == 0 )); then failed=1; fi
if (( rc == 0 && failed > 0 )); then rc=1; fi
if (( rc == 0 && passed == 0 )); then failed=1; rc=1; echo "run.sh: no subtest ran" >&2; fi
echo "keda: $passed passed, $failed failed"
(( rc == 0 )) || exit 1
exit 0
