# Shared by bench/gateway/run.sh and bench/gateway/ab.sh (sourced): process
# bookkeeping, free ports, CPU accounting, medians, the benchmark's request.

# Every process started is added to `pids`; `trap cleanup EXIT` stops them.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# A port nothing on 127.0.0.1 listens on.
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

# CPU ticks (user+system) used so far by the given processes and their children.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    for p in "$pid" $(pgrep -P "$pid" || true); do
      total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# The median of the numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The benchmark's request: POST /v1/echo with this body (26 bytes).
body='{"message":"hello","n":42}'
# write_post_lua FILE: the wrk script that sends it.
write_post_lua() {
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
}

# start_gateway BINARY PORT BACKEND_PORT WORK LOG: the gateway in front of the
# echo backend, serving it from the benchmark's descriptor set; its pid in
# `started_pid` (also added to `pids`).
start_gateway() {
  "$1" --listen="127.0.0.1:$2" --upstream="127.0.0.1:$3" \
    --descriptor_set="$4/echo_proto.descriptor_set.pb" --taskmesh_protos=false 2>"$5" &
  started_pid=$!
  pids+=("$started_pid")
}
