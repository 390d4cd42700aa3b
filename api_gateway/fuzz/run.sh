#!/usr/bin/env bash
# Builds the api_gateway fuzzers and runs each for a short, bounded time from
# the seed corpus (a copy: the checked-in corpus is not modified). Exits
# non-zero on any crash, sanitizer report, leak or slow input.
#
#   api_gateway/fuzz/run.sh [SECONDS_PER_TARGET]     (default: 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
out=${TASKMESH_FUZZ_DIR:-/tmp/taskmesh-fuzz}
bash api_gateway/fuzz/build.sh "$out"
status=0
for target in path_template json_request plain_json; do
  work="$out/run-$target"
  rm -rf "$work" && mkdir -p "$work/corpus"
  cp api_gateway/fuzz/corpus/"$target"/* "$work/corpus/"
  dict=()
  if [[ -f api_gateway/fuzz/$target.dict ]]; then dict=(-dict="$PWD/api_gateway/fuzz/$target.dict"); fi
  echo "== fuzz $target for ${seconds}s"
  # -timeout: one input taking over 2 s is a finding (super-linear parsing).
  if ! (cd "$work" && "$out/${target}_fuzzer" -max_total_time="$seconds" -timeout=2 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "${dict[@]}" corpus \
        >"$work/log" 2>&1); then
    echo "fuzz: $target FAILED; log and reproducer in $work"
    tail -40 "$work/log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$work/log" | tr '\n' ' '
    echo
    echo "fuzz: $target passed"
  fi
done
exit "$status"
