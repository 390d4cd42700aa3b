#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test: unit,
# integration (real redis-server), end-to-end (real processes), and the Helm
# chart's validation. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh --chart

echo "== bazel build //..."
bazel build //...

echo "== bazel test //..."
targets=$(bazel query 'tests(//...)' 2>/dev/null | wc -l)
set +e
bazel test //... 2>&1 | tee /tmp/taskmesh-bazel-test.log
rc=${PIPESTATUS[0]}
set -e
failed=$(grep -cE '^//[^ ]+ +.*(FAILED|TIMEOUT|NO STATUS|INCOMPLETE)' /tmp/taskmesh-bazel-test.log || true)
echo "bazel: $((targets - failed)) passed, ${failed} failed"
if ((rc != 0)); then
  echo "test.sh: bazel test failed (exit ${rc})"
  exit "$rc"
fi

if [[ -x deploy/helm/validate/run.sh ]]; then
  echo "== Helm chart validation"
  bash deploy/helm/validate/run.sh
fi
