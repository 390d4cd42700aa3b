#!/usr/bin/env bash
# The api_gateway benchmark: a small unary call (POST /v1/echo, 26-byte JSON)
# through the gateway with wrk -t2 -c64, beside the same C++ echo backend
# called directly over gRPC with h2load (-c4 -m16), and nginx-light serving
# the same response as a static file with wrk -t2 -c64 (the HTTP ceiling).
# Interleaved rounds; medians are reported. CPU per request comes from
# /proc/PID/stat (utime+stime) before and after each run.
#
#   bench/gateway/run.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults: 10 3)
#
# All traffic is on 127.0.0.1; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rounds=${2:-3}

bash scripts/install_deps.sh --bench >/dev/null
echo "== building (-c opt)"
targets=(//api_gateway //bench/gateway:echo_backend //bench/gateway:echo_descriptor_set)
bazel build -c opt --symlink_prefix=/ "${targets[@]}" 2>&1 | tail -1
bin=$(bazel info -c opt --symlink_prefix=/ bazel-bin 2>/dev/null)

work=$(mktemp -d /tmp/taskmesh-gwbench.XXXXXX)
chmod 755 "$work"  # nginx workers run as www-data
cp "$bin/api_gateway/api_gateway" "$bin/bench/gateway/echo_backend" \
  "$bin/bench/gateway/echo_proto.descriptor_set.pb" "$work/"
source bench/gateway/lib.sh
trap cleanup EXIT

backend_port=$(free_port)
gateway_port=$(free_port)
nginx_port=$(free_port)

"$work/echo_backend" --listen="127.0.0.1:$backend_port" 2>"$work/backend.log" &
backend_pid=$!
pids+=("$backend_pid")
start_gateway "$work/api_gateway" "$gateway_port" "$backend_port" "$work" "$work/gateway.log"
gateway_pid=$started_pid

# nginx-light: one worker (it serves ~130k req/s on one core here), static JSON.
mkdir -p "$work/nginx/html" "$work/nginx/logs"
printf '{"message":"hello","n":"42"}' >"$work/nginx/html/echo.json"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  default_type application/json;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/nginx/html;
  }
}
EOF
/usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")

ready=
for _ in $(seq 100); do
  if curl -sf -XPOST "http://127.0.0.1:$gateway_port/v1/echo" -H 'Content-Type: application/json' \
       -d "$body" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$nginx_port/echo.json" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[[ -n "$ready" ]] || { echo "run.sh: servers did not start; logs in $work"; exit 1; }
echo "gateway says: $(curl -s -XPOST "http://127.0.0.1:$gateway_port/v1/echo" \
  -H 'Content-Type: application/json' -d "$body")"

write_post_lua "$work/post.lua"
# The same request as a gRPC frame: no compression, length 9, EchoRequest.
printf '\x00\x00\x00\x00\x09\x0a\x05hello\x10\x2a' >"$work/echo.grpc"

us_per_request() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
to_ms() {  # wrk latency "1.23ms" / "456.00us" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
                         else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
                         else { sub(/s$/, "", v); printf "%.2f", v * 1000 } }'
}

# wrk run: prints "rps p50_ms p99_ms cpu_us(pid1) cpu_us(pid2)..."
run_wrk() {
  local url=$1 script=$2
  shift 2
  local before=() after=() out n
  wrk -t2 -c64 -d2s ${script:+-s "$script"} "$url" >/dev/null  # warm-up
  for pid in "$@"; do before+=("$(cpu_ticks "$pid")"); done
  out=$(wrk -t2 -c64 -d"${secs}s" --latency ${script:+-s "$script"} "$url")
  for pid in "$@"; do after+=("$(cpu_ticks "$pid")"); done
  if grep -q "Non-2xx" <<<"$out" || grep -q "Socket errors" <<<"$out"; then
    echo "run.sh: errors against $url:" >&2
    echo "$out" >&2
    exit 1
  fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  local line
  line="$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
  for i in "${!before[@]}"; do line+=" $(us_per_request $((after[i] - before[i])) "$n")"; done
  echo "$line"
}

# h2load run against the backend: prints "rps mean_ms cpu_us(backend)"
run_h2load() {
  local url="http://127.0.0.1:$backend_port/bench.gateway.v1.EchoService/Echo"
  local args=(-c4 -m16 -d "$work/echo.grpc" -H 'content-type: application/grpc' -H 'te: trailers')
  h2load "${args[@]}" -D 2 "$url" >/dev/null
  local before after out n
  before=$(cpu_ticks "$backend_pid")
  out=$(h2load "${args[@]}" -D "$secs" "$url")
  after=$(cpu_ticks "$backend_pid")
  n=$(awk '/^requests:/ {print $8}' <<<"$out")  # succeeded
  if [[ "$(awk '/^requests:/ {print $10}' <<<"$out")" != "0" ]]; then
    echo "run.sh: h2load errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  local mean
  mean=$(awk '/time for request:/ {print $6}' <<<"$out")
  echo "$(awk '/^finished in/ {print $4}' <<<"$out") $(to_ms "$mean") $(us_per_request $((after - before)) "$n")"
}

: >"$work/nginx.txt"
: >"$work/gateway.txt"
: >"$work/direct.txt"
for round in $(seq "$rounds"); do
  echo "== round $round/$rounds (${secs}s each)"
  r=$(run_wrk "http://127.0.0.1:$nginx_port/echo.json" "" "$nginx_pid")
  echo "   nginx static:  $r" && echo "$r" >>"$work/nginx.txt"
  r=$(run_wrk "http://127.0.0.1:$gateway_port/v1/echo" "$work/post.lua" "$gateway_pid" "$backend_pid")
  echo "   gateway:       $r" && echo "$r" >>"$work/gateway.txt"
  r=$(run_h2load)
  echo "   direct gRPC:   $r" && echo "$r" >>"$work/direct.txt"
done

col() { awk -v c="$2" '{print $c}' "$work/$1.txt" | median; }
n_rps=$(col nginx 1) n_p50=$(col nginx 2) n_p99=$(col nginx 3) n_cpu=$(col nginx 4)
g_rps=$(col gateway 1) g_p50=$(col gateway 2) g_p99=$(col gateway 3)
g_cpu=$(col gateway 4) g_backend_cpu=$(col gateway 5)
d_rps=$(col direct 1) d_mean=$(col direct 2) d_cpu=$(col direct 3)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cat <<EOF

== results: medians of $rounds runs of ${secs}s, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)
| run | load | req/s | p50 ms | p99 ms | CPU us/request |
|---|---|---|---|---|---|
| nginx-light, static JSON | wrk -t2 -c64 | $n_rps | $n_p50 | $n_p99 | nginx $n_cpu |
| api_gateway -> echo backend | wrk -t2 -c64 POST | $g_rps | $g_p50 | $g_p99 | gateway $g_cpu, backend $g_backend_cpu |
| echo backend direct (gRPC) | h2load -c4 -m16 | $d_rps | mean $d_mean | | backend $d_cpu |

gateway CPU per request / nginx's:              $(ratio "$g_cpu" "$n_cpu")  (aim: at most 2)
gateway CPU per request / the backend's (same run): $(ratio "$g_cpu" "$g_backend_cpu")  (aim: below 1)
gateway req/s / grpc-gateway's 16.0k (anchor):    $(ratio "$g_rps" 16000)  (aim: at least 3)
gateway CPU per request / grpc-gateway's 65 us:   $(ratio "$g_cpu" 65)
raw figures: $work/{nginx,gateway,direct}.txt
EOF
