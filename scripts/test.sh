#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test: unit,
# integration (real redis-server and Redis Cluster), end-to-end and fault
# tests (real processes), a short bounded run of the gateway's fuzzers,
# KEDA's own scaler against the mesh (tests/keda; its Go modules are fetched
# once into Go's module cache, ~10 minutes cold, seconds warm), and the Helm
# chart's validation. CI runs exactly this (.ci/run).
#
# Test results are never taken from Bazel's cache: every run runs every test.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
log_dir=$(mktemp -d)

# Adds a suite's "N passed, M failed" line to the totals.
count() {
  local line
  line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  local p f
  p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
  f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}

bash scripts/install_deps.sh --chart || exit 1

echo "== bazel build //..."
bazel build //... || { echo "total: 0 passed, 1 failed"; exit 1; }

echo "== bazel test //..."
targets=$(bazel query 'tests(//...)' 2>/dev/null | wc -l)
bazel test --nocache_test_results //... 2>&1 | tee "$log_dir/bazel.log"
rc=${PIPESTATUS[0]}
bad=$(grep -cE '^//[^ ]+ +.*(FAILED|TIMEOUT|NO STATUS|INCOMPLETE)' "$log_dir/bazel.log")
if ((rc != 0 && bad == 0)); then bad=1; fi
echo "bazel: $((targets - bad)) passed, ${bad} failed" | tee "$log_dir/bazel.count"
count "$log_dir/bazel.count"

if [[ -f api_gateway/fuzz/run.sh ]]; then
  echo "== api_gateway fuzzers (a short, bounded run)"
  bash api_gateway/fuzz/run.sh 10 2>&1 | tee "$log_dir/fuzz.log"
  fuzz_rc=${PIPESTATUS[0]}
  ok=$(grep -cE '^fuzz: [a-z_]+ passed$' "$log_dir/fuzz.log")
  bad=$(grep -cE '^fuzz: [a-z_]+ FAILED' "$log_dir/fuzz.log")
  if ((fuzz_rc != 0 && bad == 0)); then bad=1; fi
  echo "fuzz: ${ok} passed, ${bad} failed" | tee "$log_dir/fuzz.count"
  count "$log_dir/fuzz.count"
fi

echo "== KEDA's own scaler against real Redis and the mesh (tests/keda)"
bash tests/keda/run.sh bazel-bin 2>&1 | tee "$log_dir/keda.log"
count "$log_dir/keda.log"

if [[ -x deploy/helm/validate/run.sh ]]; then
  echo "== Helm chart validation"
  bash deploy/helm/validate/run.sh 2>&1 | tee "$log_dir/chart.log"
  if ((PIPESTATUS[0] != 0)) && ! grep -qE '[1-9][0-9]* failed' "$log_dir/chart.log"; then
    echo "helm-chart: 0 passed, 1 failed" >>"$log_dir/chart.log"
  fi
  count "$log_dir/chart.log"
fi

echo "total: ${passed} passed, ${failed} failed"
((failed == 0))
