#!/usr/bin/env bash
# bench/run.sh: one command that measures taskmesh against the Redis ceiling,
# the gRPC ceiling and its peers (BullMQ, Celery), in one run, on this machine.
#
#   bench/run.sh                 the whole run (about 4-6 minutes; bounded by 10)
#   BENCH_REPS=1 bench/run.sh    one repetition of each figure (quick look)
#   BENCH_PEERS=0 bench/run.sh   without BullMQ and Celery
#   BENCH_PROFILE=1 bench/run.sh also a perf profile of the end-to-end run
#                                (not part of the 10-minute budget)
#
# What it measures, in BENCH_REPS (3) rounds that each measure every system
# once (the machine is shared: a change in load then hits all alike), and
# reports as medians of the rounds:
#   1. ceiling: the raw Redis stream cycle XADD -> XREADGROUP -> XACK, one
#      producer pipelining 64 deep, two consumers (bench/stream_cycle.cc);
#   2. taskmesh end to end: BatchCreateTasks (100 per call) over gRPC ->
#      worker (echo, empty payload: a no-op) -> result stored, tasks/s;
#   3. CreateTask unary: closed-loop throughput (no worker running), then
#      open-loop latency at 25%, 50% and 80% of that throughput;
#   4. single-task round trip at idle: CreateTask, then WatchTask until
#      terminal, one at a time; p50 and p99;
#   5. the gRPC ceiling: bench's grpc_echo_server (same service, no Redis),
#      driven by the same loadgen with the same settings;
#   6. RSS of every process idle and at its peak (VmHWM) under load, and
#      Redis CPU time (INFO cpu, before and after) per task or message;
#   7. peers in the same run: BullMQ 6.7 (one worker process, concurrency 50,
#      addBulk) and Celery 5.2 (Debian's python3-celery, prefork 2), no-op
#      tasks on the same private Redis;
# then prints every figure with its ratio to the ceilings and to each peer
# (bench/summarize.py), and leaves everything in $BENCH_OUT.
#
# Everything runs on 127.0.0.1 against a private redis-server (no
# persistence) on a free port; every process it starts is stopped on exit.
# Installs what it needs, idempotently: Debian packages and, from npm,
# bullmq + ioredis into /var/cache/taskmesh/bench-node (bench/peers/node's
# package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

REPS=${BENCH_REPS:-3}
PEERS=${BENCH_PEERS:-1}
PROFILE=${BENCH_PROFILE:-0}
OUT=${BENCH_OUT:-/tmp/taskmesh-bench/$(date -u +%Y%m%dT%H%M%SZ)}
BUDGET=${BENCH_BUDGET_S:-570}  # phases are skipped rather than run past this
# Load settings, the same for taskmesh and the echo ceiling.
CHANNELS=${BENCH_CHANNELS:-2}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
SECONDS_PER_RUN=${BENCH_SECONDS:-3}
E2E_TASKS=${BENCH_E2E_TASKS:-100000}
E2E_BATCH=${BENCH_E2E_BATCH:-100}
E2E_CALLS=${BENCH_E2E_CALLS:-4}
WORKERS=${BENCH_WORKERS:-1}
WORKER_CONCURRENCY=${BENCH_WORKER_CONCURRENCY:-64}
ROUNDTRIPS=${BENCH_ROUNDTRIPS:-2000}
PEER_TASKS_BULLMQ=${BENCH_BULLMQ_TASKS:-50000}
PEER_TASKS_CELERY=${BENCH_CELERY_TASKS:-5000}

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
T0=$(date +%s)
PY=/usr/bin/python3
NODE_DIR=/var/cache/taskmesh/bench-node

log() { echo "[$(($(date +%s) - T0))s] $*" >&2; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }

# ---------------------------------------------------------------- processes
declare -A PIDS=()
start() {  # start NAME LOGFILE CMD...: runs CMD in the background as NAME
  local name=$1 logfile=$2
  shift 2
  "$@" >"$logfile" 2>&1 &
  PIDS[$name]=$!
}
stop() {  # stop NAME: SIGTERM, then SIGKILL after 5 s
  local name=$1 pid=${PIDS[$1]:-}
  [[ -z "$pid" ]] && return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$name]"
}
cleanup() {
  local name
  for name in "${!PIDS[@]}"; do stop "$name"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {  # wait_port PORT: until something listens, at most 15 s
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# proc_cpu_fields NAME BEFORE AFTER ITEMS: a process's CPU per item, in microseconds
proc_cpu_fields() {
  $PY -c "import sys; n,b,a,k=sys.argv[1],float(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); \
print('\"%s_cpu_s\":%.3f,\"%s_cpu_us_per_item\":%.2f' % (n, a-b, n, (a-b)*1e6/max(k,1)))" "$@"
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Sum over a process and its children (Celery's prefork pool).
tree_pids() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }
tree_cpu_s() {
  local t=0 p
  for p in $(tree_pids "$1"); do t=$($PY -c "print($t + $(cpu_s "$p"))"); done
  echo "$t"
}

# ------------------------------------------------------------------ install
install_deps() {
  local need=(redis-server redis-tools)
  ((PEERS)) && need+=(python3-celery python3-redis)
  # Node.js: any node with npm will do (this image has one); else Debian's.
  ((PEERS)) && ! command -v npm >/dev/null && need+=(nodejs npm)
  ((PROFILE)) && need+=(linux-perf)
  local missing=()
  for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ((PEERS)); then
    mkdir -p "$NODE_DIR"
    if ! cmp -s bench/peers/node/package-lock.json "$NODE_DIR/package-lock.json" ||
       [[ ! -f "$NODE_DIR/node_modules/bullmq/package.json" ]]; then
      log "npm: bullmq + ioredis into $NODE_DIR"
      cp bench/peers/node/package.json bench/peers/node/package-lock.json "$NODE_DIR/"
      (cd "$NODE_DIR" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
  fi
}

# -------------------------------------------------------------------- redis
RPORT=
rcli() { redis-cli -p "$RPORT" "$@"; }
rcpu() { rcli info cpu | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{printf "%.6f", s}'; }
flush() { rcli flushall >/dev/null; rcli config resetstat >/dev/null; }

# record JSON [extra json fields]: one figure into results.jsonl (nothing
# for a run that printed no result: its log says why)
record() {
  local json=$1 extra=${2:-}
  if [[ -z "$json" ]]; then
    log "   (no result: see the .err/.log files in $OUT)"
    return 0
  fi
  [[ -n "$extra" ]] && json="${json%\}},${extra}}"
  echo "$json" >>"$RESULTS"
}
# result_of FILE: the RESULT line's JSON, or nothing
result_of() { { grep -m1 '^RESULT ' "$1" 2>/dev/null || true; } | cut -c8-; }
# field JSON KEY: a number from a result (0 when missing)
field() {
  $PY -c "import json,sys
try: print(json.loads(sys.argv[1])[sys.argv[2]])
except Exception: print(0)" "$1" "$2"
}
# cpu_fields BEFORE AFTER ITEMS: Redis CPU per item, in microseconds
cpu_fields() {
  $PY -c "import sys; b,a,n=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); \
print('\"redis_cpu_s\":%.4f,\"redis_cpu_us_per_item\":%.3f' % (a-b, (a-b)*1e6/max(n,1)))" "$1" "$2" "$3"
}
load_field() { echo "\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\""; }
rss_record() {  # rss_record NAME PHASE KB
  echo "{\"name\":\"rss\",\"process\":\"$1\",\"phase\":\"$2\",\"kb\":$3}" >>"$RESULTS"
}

# =================================================================== run
log "output: $OUT"
install_deps
log "building (-c opt)"
BAZEL_TARGETS=(//bench:loadgen //bench:grpc_echo_server //bench:stream_cycle
               //task_service //workers:worker)
bazel build -c opt --symlink_prefix="$OUT/bazel-" "${BAZEL_TARGETS[@]}" >"$OUT/build.log" 2>&1 ||
  { tail -20 "$OUT/build.log"; exit 1; }
BIN=$(readlink -f "$OUT/bazel-bin")
LOADGEN=$BIN/bench/loadgen

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "kernel: $(uname -r); redis: $(redis-server --version | grep -o 'v=[0-9.]*'); commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
  echo "command: BENCH_REPS=$REPS BENCH_PEERS=$PEERS bench/run.sh"
  echo "settings: loadgen channels=$CHANNELS concurrency=$CONCURRENCY ${SECONDS_PER_RUN}s per run; e2e $E2E_TASKS tasks in batches of $E2E_BATCH, $E2E_CALLS calls in flight, $WORKERS worker(s) x $WORKER_CONCURRENCY"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

RPORT=$(free_port)
mkdir -p "$OUT/redis"
start redis "$OUT/redis.log" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" \
  --appendonly no --dir "$OUT/redis" --maxclients 10000
wait_port "$RPORT"
sleep 0.3
rss_record redis-server idle "$(rss_kb "${PIDS[redis]}")"

EPORT=$(free_port)
start echo "$OUT/echo.log" "$BIN/bench/grpc_echo_server" --listen="127.0.0.1:$EPORT"
GPORT=$(free_port)
start task_service "$OUT/task_service.log" "$BIN/task_service/task_service" \
  --listen="127.0.0.1:$GPORT" --redis="redis://127.0.0.1:$RPORT"
wait_port "$EPORT"
wait_port "$GPORT"
sleep 1
rss_record grpc_echo_server idle "$(rss_kb "${PIDS[echo]}")"
rss_record task_service idle "$(rss_kb "${PIDS[task_service]}")"

start_workers() {  # start_workers QUEUE
  for w in $(seq "$WORKERS"); do
    start "worker$w" "$OUT/worker$w.log" "$BIN/workers/worker" --redis="redis://127.0.0.1:$RPORT" \
      --queues="$1" --concurrency="$WORKER_CONCURRENCY" --health_listen= --consumer="bench-$w"
  done
  for _ in $(seq 100); do
    grep -q "worker started" "$OUT/worker$WORKERS.log" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.3
}
stop_workers() { for w in $(seq "$WORKERS"); do stop "worker$w"; done; }

if ((PEERS)); then
  export NODE_PATH=$NODE_DIR/node_modules
  export TASKMESH_BENCH_REDIS_PORT=$RPORT C_FORCE_ROOT=1 PYTHONDONTWRITEBYTECODE=1
  log "peers: BullMQ $(node -e "console.log(require('$NODE_DIR/node_modules/bullmq/package.json').version)"), Celery $($PY -c 'import celery; print(celery.__version__)')"
  # Celery's worker stays up for the whole run (it starts slowly); idle, it
  # only waits in BRPOP.
  (cd bench/peers/celery && exec $PY -m celery -A tasks worker --pool=prefork --concurrency=2 \
      --loglevel=WARNING --without-gossip --without-mingle --without-heartbeat) \
      >"$OUT/celery_worker.log" 2>&1 &
  PIDS[celery]=$!
  celery_main=${PIDS[celery]}
fi

# Every round measures every system once, so that a change in the machine's
# load (it is shared) hits all of them alike; figures are medians of rounds.
for i in $(seq "$REPS"); do
  log "round $i of $REPS (loadavg $(cut -d' ' -f1 /proc/loadavg))"

  # 1. the Redis ceiling
  flush
  b=$(rcpu)
  "$BIN/bench/stream_cycle" --redis="127.0.0.1:$RPORT" --duration="${SECONDS_PER_RUN}s" \
    >"$OUT/cycle.$i.out" 2>"$OUT/cycle.$i.err"
  a=$(rcpu)
  r=$(result_of "$OUT/cycle.$i.out")
  record "$r" "$(cpu_fields "$b" "$a" "$(field "$r" acked)"),$(load_field),\"rep\":$i"
  log "   stream cycle: $(field "$r" msgs_per_s) msgs/s"

  # 5. the gRPC ceiling, then 3. CreateTask with the same client settings
  pb=$(cpu_s "${PIDS[echo]}")
  "$LOADGEN" --scenario=create --name=echo_create --server="127.0.0.1:$EPORT" \
    --channels="$CHANNELS" --concurrency="$CONCURRENCY" --duration="${SECONDS_PER_RUN}s" \
    --warmup=0.5s >"$OUT/echo.$i.out" 2>"$OUT/echo.$i.err"
  pa=$(cpu_s "${PIDS[echo]}")
  r=$(result_of "$OUT/echo.$i.out")
  record "$r" "$(proc_cpu_fields server "$pb" "$pa" "$(field "$r" issued)"),$(load_field),\"rep\":$i"
  log "   gRPC echo: $(field "$r" rps) req/s"

  flush
  b=$(rcpu)
  pb=$(cpu_s "${PIDS[task_service]}")
  "$LOADGEN" --scenario=create --name=create_max --server="127.0.0.1:$GPORT" --queue=unary \
    --channels="$CHANNELS" --concurrency="$CONCURRENCY" --duration="${SECONDS_PER_RUN}s" \
    --warmup=0.5s >"$OUT/create.$i.out" 2>"$OUT/create.$i.err"
  a=$(rcpu)
  pa=$(cpu_s "${PIDS[task_service]}")
  r=$(result_of "$OUT/create.$i.out")
  n=$(field "$r" issued)
  record "$r" "$(cpu_fields "$b" "$a" "$n"),$(proc_cpu_fields server "$pb" "$pa" "$n"),$(load_field),\"rep\":$i"
  log "   CreateTask: $(field "$r" rps) req/s"

  # 2. taskmesh end to end, then 4. the round trip at idle on the same worker
  flush
  start_workers e2e
  ((i == 1)) && for w in $(seq "$WORKERS"); do rss_record worker idle "$(rss_kb "${PIDS[worker$w]}")"; done
  if ((PROFILE && i == REPS)) && command -v perf >/dev/null; then
    perf record -F 499 -g -o "$OUT/perf.e2e.data" \
      -p "${PIDS[task_service]},${PIDS[worker1]},${PIDS[redis]}" -- sleep 5 >/dev/null 2>&1 &
    PERF_PID=$!
  fi
  b=$(rcpu)
  pb=$(cpu_s "${PIDS[task_service]}")
  wb=$(cpu_s "${PIDS[worker1]}")
  "$LOADGEN" --scenario=batch --name=e2e --server="127.0.0.1:$GPORT" --queue=e2e \
    --batch_size="$E2E_BATCH" --concurrency="$E2E_CALLS" --requests=$((E2E_TASKS / E2E_BATCH)) \
    --duration=60s --redis="127.0.0.1:$RPORT" --wait_timeout=60s \
    >"$OUT/e2e.$i.out" 2>"$OUT/e2e.$i.err"
  a=$(rcpu)
  pa=$(cpu_s "${PIDS[task_service]}")
  wa=$(cpu_s "${PIDS[worker1]}")
  r=$(result_of "$OUT/e2e.$i.out")
  n=$(field "$r" e2e_succeeded)
  rcli info commandstats >"$OUT/e2e.$i.commandstats"
  record "$r" "$(cpu_fields "$b" "$a" "$n"),$(proc_cpu_fields server "$pb" "$pa" "$n"),$(proc_cpu_fields worker "$wb" "$wa" "$n"),$(load_field),\"rep\":$i"
  log "   taskmesh end to end: $(field "$r" e2e_tasks_per_s) tasks/s"
  [[ -n "${PERF_PID:-}" ]] && { wait "$PERF_PID" || true; PERF_PID=; }
  ((i == REPS)) && for w in $(seq "$WORKERS"); do rss_record worker load "$(hwm_kb "${PIDS[worker$w]}")"; done
  sleep 0.5
  "$LOADGEN" --scenario=roundtrip --name=roundtrip --server="127.0.0.1:$GPORT" --queue=e2e \
    --concurrency=1 --requests="$ROUNDTRIPS" --warmup=0.2s --duration=30s \
    >"$OUT/roundtrip.$i.out" 2>"$OUT/roundtrip.$i.err"
  r=$(result_of "$OUT/roundtrip.$i.out")
  record "$r" "$(load_field),\"rep\":$i"
  log "   taskmesh round trip: p50 $(field "$r" p50_us) us, p99 $(field "$r" p99_us) us"
  stop_workers

  # 7. the peers
  if ((PEERS)) && (($(left) > 60)); then
    flush
    start bullmq_worker "$OUT/bullmq_worker.$i.log" node bench/peers/node/worker.js "$RPORT" bench 50
    for _ in $(seq 100); do grep -q ready "$OUT/bullmq_worker.$i.log" && break; sleep 0.05; done
    ((i == 1)) && rss_record bullmq_worker idle "$(rss_kb "${PIDS[bullmq_worker]}")"
    b=$(rcpu)
    wb=$(cpu_s "${PIDS[bullmq_worker]}")
    timeout 150 node bench/peers/node/bench.js "$RPORT" bench e2e "$PEER_TASKS_BULLMQ" \
      >"$OUT/bullmq_e2e.$i.out" 2>"$OUT/bullmq_e2e.$i.err" || true
    a=$(rcpu)
    wa=$(cpu_s "${PIDS[bullmq_worker]}")
    r=$(result_of "$OUT/bullmq_e2e.$i.out")
    record "$r" "$(cpu_fields "$b" "$a" "$(field "$r" e2e_succeeded)"),$(proc_cpu_fields worker "$wb" "$wa" "$(field "$r" e2e_succeeded)"),$(load_field),\"rep\":$i"
    log "   BullMQ end to end: $(field "$r" e2e_tasks_per_s) tasks/s"
    timeout 60 node bench/peers/node/bench.js "$RPORT" bench roundtrip 1000 \
      >"$OUT/bullmq_rt.$i.out" 2>"$OUT/bullmq_rt.$i.err" || true
    r=$(result_of "$OUT/bullmq_rt.$i.out")
    record "$r" "$(load_field),\"rep\":$i"
    log "   BullMQ round trip: p50 $(field "$r" p50_us) us, p99 $(field "$r" p99_us) us"
    ((i == REPS)) && rss_record bullmq_worker load "$(hwm_kb "${PIDS[bullmq_worker]}")"
    stop bullmq_worker

    flush
    for _ in $(seq 200); do
      rcli client list | grep -q 'cmd=brpop' && break
      sleep 0.05
    done
    if ((i == 1)); then
      for p in $(tree_pids "$celery_main"); do rss_record celery_worker idle "$(rss_kb "$p")"; done
    fi
    b=$(rcpu)
    wb=$(tree_cpu_s "$celery_main")
    (cd bench/peers/celery && timeout 150 $PY bench.py e2e "$PEER_TASKS_CELERY") \
      >"$OUT/celery_e2e.$i.out" 2>"$OUT/celery_e2e.$i.err" || true
    a=$(rcpu)
    wa=$(tree_cpu_s "$celery_main")
    r=$(result_of "$OUT/celery_e2e.$i.out")
    record "$r" "$(cpu_fields "$b" "$a" "$(field "$r" e2e_succeeded)"),$(proc_cpu_fields worker "$wb" "$wa" "$(field "$r" e2e_succeeded)"),$(load_field),\"rep\":$i"
    log "   Celery end to end: $(field "$r" e2e_tasks_per_s) tasks/s"
    (cd bench/peers/celery && timeout 60 $PY bench.py roundtrip 300) \
      >"$OUT/celery_rt.$i.out" 2>"$OUT/celery_rt.$i.err" || true
    r=$(result_of "$OUT/celery_rt.$i.out")
    record "$r" "$(load_field),\"rep\":$i"
    log "   Celery round trip: p50 $(field "$r" p50_us) us, p99 $(field "$r" p99_us) us"
  fi
done
if ((PEERS)); then
  for p in $(tree_pids "$celery_main"); do rss_record celery_worker load "$(hwm_kb "$p")"; done
  stop celery
fi
rss_record grpc_echo_server load "$(hwm_kb "${PIDS[echo]}")"
stop echo
rss_record task_service load "$(hwm_kb "${PIDS[task_service]}")"

# 3. CreateTask latency at fixed open-loop rates: a share of the median
# closed-loop throughput. The 80% run may overload the service (its CPU per
# request is higher when requests do not batch); its peak RSS is recorded
# apart, as "overload".
MAX_RPS=$($PY -c "
import json,statistics
v=[json.loads(l)['rps'] for l in open('$RESULTS') if '\"create_max\"' in l]
print(int(statistics.median(v)) if v else 0)")
((MAX_RPS > 0)) || log "   no CreateTask throughput: skipping the open-loop runs"
echo 5 >"/proc/${PIDS[task_service]}/clear_refs" 2>/dev/null || true  # resets VmHWM
for pct in 25 50 80; do
  ((MAX_RPS > 0)) && (($(left) > 20)) || break
  rate=$((MAX_RPS * pct / 100))
  for i in $(seq "$REPS"); do
    flush
    "$LOADGEN" --scenario=create --name="create_open_$pct" --server="127.0.0.1:$GPORT" \
      --queue=unary --channels="$CHANNELS" --rate="$rate" --duration="${SECONDS_PER_RUN}s" \
      --warmup=0.5s >"$OUT/open$pct.$i.out" 2>"$OUT/open$pct.$i.err"
    r=$(result_of "$OUT/open$pct.$i.out")
    record "$r" "$(load_field),\"rep\":$i,\"pct\":$pct"
    log "   CreateTask open loop at ${pct}% ($rate/s): p50 $(field "$r" p50_us) us, p99 $(field "$r" p99_us) us"
  done
done
rss_record task_service overload "$(hwm_kb "${PIDS[task_service]}")"
stop task_service

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(($(date +%s) - T0)) s" >>"$OUT/machine.txt"
rss_record redis-server load "$(hwm_kb "${PIDS[redis]}")"
stop redis
if ((PROFILE)) && [[ -f "$OUT/perf.e2e.data" ]]; then
  perf report -i "$OUT/perf.e2e.data" --no-children --sort comm,dso,symbol --stdio -g none \
    2>/dev/null | head -150 >"$OUT/perf.e2e.txt" || true
  log "profile: $OUT/perf.e2e.txt"
fi
$PY bench/summarize.py "$OUT" | tee "$OUT/summary.md"
log "done in $(($(date +%s) - T0)) s; raw results in $OUT"
