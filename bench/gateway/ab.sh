#!/usr/bin/env bash
# A/B of api_gateway binaries in the same conditions: every binary runs
# behind one shared echo backend, and wrk (-t2 -c64, POST /v1/echo, as
# run.sh) alternates between them for ROUNDS rounds. Prints each run's
# gateway and backend CPU per request (us, from /proc/PID/stat) and req/s,
# then the medians per binary.
#
#   bench/gateway/ab.sh SECONDS ROUNDS GATEWAY_BINARY...
#
# Binaries are built -c opt by the caller (copy bazel-bin/api_gateway/api_gateway
# aside before a change). The echo backend and descriptor set come from
# `bazel build -c opt //bench/gateway:echo_backend //bench/gateway:echo_descriptor_set`.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=$1
rounds=$2
shift 2
gateways=("$@")
bin=$(bazel info -c opt --symlink_prefix=/ bazel-bin 2>/dev/null)
work=$(mktemp -d /tmp/taskmesh-gwab.XXXXXX)
cp "$bin/bench/gateway/echo_backend" "$bin/bench/gateway/echo_proto.descriptor_set.pb" "$work/"
source bench/gateway/lib.sh
trap cleanup EXIT
backend_port=$(free_port)
"$work/echo_backend" --listen="127.0.0.1:$backend_port" 2>"$work/backend.log" &
backend_pid=$!
pids+=("$backend_pid")
ports=() gpids=()
for i in "${!gateways[@]}"; do
  port=$(free_port)
  start_gateway "${gateways[$i]}" "$port" "$backend_port" "$work" "$work/gateway$i.log"
  gpids+=("$started_pid")
  ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 100); do
    curl -sf -XPOST "http://127.0.0.1:$port/v1/echo" -H 'Content-Type: application/json' \
      -d "$body" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
write_post_lua "$work/post.lua"
for i in "${!gateways[@]}"; do : >"$work/r$i.txt"; done
for round in $(seq "$rounds"); do
  for i in "${!gateways[@]}"; do
    url="http://127.0.0.1:${ports[$i]}/v1/echo"
    wrk -t2 -c64 -d2s -s "$work/post.lua" "$url" >/dev/null
    g0=$(cpu_ticks "${gpids[$i]}") b0=$(cpu_ticks "$backend_pid")
    out=$(wrk -t2 -c64 -d"${secs}s" -s "$work/post.lua" "$url")
    g1=$(cpu_ticks "${gpids[$i]}") b1=$(cpu_ticks "$backend_pid")
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "ab.sh: errors: $out" >&2; exit 1; fi
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    line=$(awk -v g=$((g1 - g0)) -v b=$((b1 - b0)) -v n="$n" -v hz="$hz" -v r="$rps" \
      'BEGIN { printf "%.2f %.2f %.0f", g / hz * 1e6 / n, b / hz * 1e6 / n, r }')
    echo "round $round ${gateways[$i]}: gateway_us backend_us req/s = $line (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$line" >>"$work/r$i.txt"
  done
done
echo "== medians of $rounds runs of ${secs}s, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!gateways[@]}"; do
  g=$(awk '{print $1}' "$work/r$i.txt" | median)
  b=$(awk '{print $2}' "$work/r$i.txt" | median)
  r=$(awk '{print $3}' "$work/r$i.txt" | median)
  echo "${gateways[$i]}: gateway $g us, backend $b us, ratio $(awk -v g="$g" -v b="$b" 'BEGIN{printf "%.2f", g/b}'), $r req/s"
done
