#!/usr/bin/env bash
# bench/run.sh: one command that measures taskmesh against the Redis ceiling,
# the gRPC ceiling and its peers (BullMQ, Celery, Asynq), in one run, on this
# machine.
#
#   bench/run.sh                 the whole run (about 4-6 minutes; bounded by 10)
#   BENCH_REPS=1 bench/run.sh    one repetition of each figure (quick look)
#   BENCH_PEERS=0 bench/run.sh   without BullMQ, Celery and Asynq
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
#      tasks on the same private Redis; and Asynq 0.25.1 (Go,
#      bench/peers/asynq: one server process, the worker's concurrency of
#      lib.sh, taskmesh's end-to-end task count, enqueued from as many
#      goroutines as loadgen keeps CreateTasks in flight: Asynq has no bulk
#      enqueue), skipped with a clear message when Go or its modules are
#      missing;
# then prints every figure with its ratio to the ceilings and to each peer
# (bench/summarize.py), and leaves everything in $BENCH_OUT.
#
# Everything runs on 127.0.0.1 against a private redis-server (no
# persistence) on a free port; every process it starts is stopped on exit.
# Installs what it needs, idempotently: Debian packages and, from npm,
# bullmq + ioredis into /var/cache/taskmesh/bench-node (bench/peers/node's
# package-lock.json); builds the Asynq peer with the Go toolchain, its
# modules (pinned by bench/peers/asynq/go.sum) and build cache in
# /var/cache/taskmesh/bench-go (fetched once, offline after that).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# BENCH_CLUSTER=1: the cluster-mode run instead (bench/cluster.sh)
if [[ "${BENCH_CLUSTER:-0}" == 1 ]]; then exec bench/cluster.sh; fi

REPS=${BENCH_REPS:-3}
PEERS=${BENCH_PEERS:-1}
PROFILE=${BENCH_PROFILE:-0}
OUT=${BENCH_OUT:-/tmp/taskmesh-bench/$(date -u +%Y%m%dT%H%M%SZ)}
PEER_TASKS_BULLMQ=${BENCH_BULLMQ_TASKS:-50000}
PEER_TASKS_CELERY=${BENCH_CELERY_TASKS:-5000}

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
T0=$(date +%s)
PY=/usr/bin/python3
NODE_DIR=/var/cache/taskmesh/bench-node
GO_DIR=/var/cache/taskmesh/bench-go

source bench/lib.sh
# Asynq: taskmesh's end-to-end count and the worker's concurrency (lib.sh);
# its only enqueue is one task per call, so the producer keeps as many calls
# in flight as loadgen does for CreateTask. Its idle round trip is about 1 s
# (the processor polls an empty queue every 0.5-1.5 s), hence few of them.
PEER_TASKS_ASYNQ=${BENCH_ASYNQ_TASKS:-$E2E_TASKS}
ASYNQ_PRODUCERS=${BENCH_ASYNQ_PRODUCERS:-$CONCURRENCY}
ASYNQ_ROUNDTRIPS=${BENCH_ASYNQ_ROUNDTRIPS:-10}

# =================================================================== run
log "output: $OUT"
install_deps
build_bins //bench:loadgen //bench:grpc_echo_server //bench:stream_cycle \
           //task_service //workers:worker
LOADGEN=$BIN/bench/loadgen

write_machine "BENCH_REPS=$REPS BENCH_PEERS=$PEERS bench/run.sh" \
  "loadgen channels=$CHANNELS concurrency=$CONCURRENCY ${SECONDS_PER_RUN}s per run; e2e $E2E_TASKS tasks in batches of $E2E_BATCH, $E2E_CALLS calls in flight, $WORKERS worker(s) x $WORKER_CONCURRENCY"

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


if ((PEERS)); then
  export NODE_PATH=$NODE_DIR/node_modules
  export TASKMESH_BENCH_REDIS_PORT=$RPORT C_FORCE_ROOT=1 PYTHONDONTWRITEBYTECODE=1
  log "peers: BullMQ $(node -e "console.log(require('$NODE_DIR/node_modules/bullmq/package.json').version)"), Celery $($PY -c 'import celery; print(celery.__version__)'), Asynq $(
    if [[ -n "$ASYNQ_PEER" ]]; then awk '$1 == "github.com/hibiken/asynq" {print $2}' bench/peers/asynq/go.mod
    else echo "skipped (see above)"; fi)"
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
  if ((PEERS)) && [[ -n "$ASYNQ_PEER" ]] && (($(left) > 45)); then
    flush
    start asynq_worker "$OUT/asynq_worker.$i.log" "$ASYNQ_PEER" worker "$RPORT" bench "$WORKER_CONCURRENCY"
    for _ in $(seq 100); do grep -q ready "$OUT/asynq_worker.$i.log" && break; sleep 0.05; done
    ((i == 1)) && rss_record asynq_worker idle "$(rss_kb "${PIDS[asynq_worker]}")"
    b=$(rcpu)
    wb=$(cpu_s "${PIDS[asynq_worker]}")
    timeout 150 "$ASYNQ_PEER" bench "$RPORT" bench e2e "$PEER_TASKS_ASYNQ" "$ASYNQ_PRODUCERS" \
      >"$OUT/asynq_e2e.$i.out" 2>"$OUT/asynq_e2e.$i.err" || true
    a=$(rcpu)
    wa=$(cpu_s "${PIDS[asynq_worker]}")
    rcli info commandstats >"$OUT/asynq_e2e.$i.commandstats"
    r=$(result_of "$OUT/asynq_e2e.$i.out")
    record "$r" "$(cpu_fields "$b" "$a" "$(field "$r" e2e_succeeded)"),$(proc_cpu_fields worker "$wb" "$wa" "$(field "$r" e2e_succeeded)"),\"worker_concurrency\":$WORKER_CONCURRENCY,$(load_field),\"rep\":$i"
    log "   Asynq end to end: $(field "$r" e2e_tasks_per_s) tasks/s (enqueue $(field "$r" enqueue_per_s)/s)"
    timeout 60 "$ASYNQ_PEER" bench "$RPORT" bench roundtrip "$ASYNQ_ROUNDTRIPS" \
      >"$OUT/asynq_rt.$i.out" 2>"$OUT/asynq_rt.$i.err" || true
    r=$(result_of "$OUT/asynq_rt.$i.out")
    record "$r" "$(load_field),\"rep\":$i"
    log "   Asynq round trip: p50 $(field "$r" p50_us) us, p99 $(field "$r" p99_us) us"
    ((i == REPS)) && rss_record asynq_worker load "$(hwm_kb "${PIDS[asynq_worker]}")"
    stop asynq_worker
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
