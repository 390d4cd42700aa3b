#!/usr/bin/env bash
# bench/cluster.sh (also: BENCH_CLUSTER=1 bench/run.sh): taskmesh on a local
# Redis Cluster against standalone Redis, and the cost of
# --redis_min_replicas_acked (a WAIT after each pipelined batch of writes),
# in one run, on this machine.
#
#   bench/cluster.sh                 3 rounds (about 4-5 minutes; bounded by 10)
#   BENCH_REPS=1 bench/cluster.sh    one round (quick look)
#   BENCH_WAIT_STANDALONE=0 ...      without the standalone master + replica pair
#
# Systems, each measured once per round (the order reversed on even rounds,
# so a change in the shared machine's load hits all alike; figures are medians
# of the rounds, ratios between medians of the same run):
#   sa  standalone baseline: one redis-server, as bench/run.sh runs it;
#   k1  a 3-master, 3-replica cluster, ONE queue (K=1: its slot on one master);
#   k3  the same cluster, ONE queue spread over K=3 partitions (UpdateQueue
#       partitions, `taskctl partition`), each on its own master, and one
#       worker serving it (its idle wait on the 3 masters at once);
#   kw  the cluster with --redis_min_replicas_acked=1 (task_service and
#       worker), on k1's master: compared with k1;
#   r0, rw  a standalone master with one replica, without and with
#       --redis_min_replicas_acked=1 (BENCH_WAIT_STANDALONE=1);
#   k1w, k3w  k1's and k3's end to end again with BENCH_EXTRA_WORKERS (3)
#       worker processes: tells the single worker's limits from Redis's.
# Figures: end to end (BatchCreateTasks x100 -> worker echo -> SUCCEEDED,
# tasks/s) for sa, k1, k3; CreateTask closed loop (no worker) and the
# single-task round trip at idle (CreateTask, then WatchTask until terminal,
# p50/p99) for all; Redis CPU per task from INFO cpu of every node before and
# after: all nodes, masters, replicas and the busiest node; task_service and
# worker CPU per task from /proc. bench/summarize.py prints the table.
#
# Everything on 127.0.0.1, no persistence, ports picked free (a cluster node
# also needs its bus port P+10000); every process is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${BENCH_REPS:-3}
PEERS=0
PROFILE=0
OUT=${BENCH_OUT:-/tmp/taskmesh-bench/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
EXTRA_WORKERS=${BENCH_EXTRA_WORKERS:-3}  # k1 and k3 end to end again with this many workers (0: not)
WAIT_STANDALONE=${BENCH_WAIT_STANDALONE:-1}
REPLICAS_TIMEOUT=${BENCH_REPLICAS_TIMEOUT:-500ms}
WAIT_FLAGS="--redis_min_replicas_acked=1 --redis_replicas_timeout=$REPLICAS_TIMEOUT"

mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
T0=$(date +%s)
PY=/usr/bin/python3
NODE_DIR=/var/cache/taskmesh/bench-node
CU="$PY bench/cluster_util.py"

source bench/lib.sh

log "output: $OUT"
install_deps
build_bins //bench:loadgen //task_service //workers:worker //cli:taskctl
LOADGEN=$BIN/bench/loadgen
TASKCTL=$BIN/cli/taskctl
write_machine "BENCH_REPS=$REPS bench/cluster.sh (= BENCH_CLUSTER=1 bench/run.sh)" \
  "loadgen channels=$CHANNELS concurrency=$CONCURRENCY ${SECONDS_PER_RUN}s per run; e2e $E2E_TASKS tasks in batches of $E2E_BATCH, $E2E_CALLS calls in flight; $WORKERS worker(s) x $WORKER_CONCURRENCY; WAIT: $WAIT_FLAGS"

redis_server() {  # redis_server NAME PORT DIR [ARG...]
  local name=$1 port=$2 dir=$3
  shift 3
  mkdir -p "$dir"
  start "$name" "$dir/redis.log" redis-server --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$dir" --maxclients 10000 "$@"
}

# ------------------------------------------------------------ the systems
declare -A S_PORTS S_MASTERS S_URL S_TS S_WFLAGS
RPORT=$(free_port)
redis_server redis "$RPORT" "$OUT/redis"
S_PORTS[sa]=$RPORT S_MASTERS[sa]=$RPORT S_URL[sa]=redis://127.0.0.1:$RPORT S_WFLAGS[sa]=

if ((WAIT_STANDALONE)); then
  R2=$(free_port)
  redis_server redis_r "$R2" "$OUT/redis-r"
  R2R=$(free_port)
  redis_server redis_r_replica "$R2R" "$OUT/redis-r-replica" --replicaof 127.0.0.1 "$R2"
  for s in r0 rw; do S_PORTS[$s]="$R2 $R2R" S_MASTERS[$s]=$R2 S_URL[$s]=redis://127.0.0.1:$R2; done
  S_WFLAGS[r0]= S_WFLAGS[rw]=$WAIT_FLAGS
fi

read -r -a CPORTS <<<"$($CU ports 6)"
for i in "${!CPORTS[@]}"; do
  redis_server "cnode$i" "${CPORTS[$i]}" "$OUT/cluster/node-$i" --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout 2000
done
for p in "$RPORT" ${R2:-} ${R2R:-} "${CPORTS[@]}"; do wait_port "$p"; done
log "cluster: creating 3 masters + 3 replicas on ${CPORTS[*]}"
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${CPORTS[@]}") --cluster-replicas 1 \
  --cluster-yes >"$OUT/cluster/create.log" 2>&1 || { tail "$OUT/cluster/create.log"; exit 1; }
for _ in $(seq 120); do $CU healthy 6 "${CPORTS[0]}" && break; sleep 0.5; done
$CU healthy 6 "${CPORTS[0]}" || { log "cluster not healthy after 60 s"; exit 1; }
read -r -a MASTERS <<<"$($CU masters "${CPORTS[0]}")"
SEEDS="redis://$(printf '127.0.0.1:%s,' "${CPORTS[@]}")"
SEEDS=${SEEDS%,}
for s in k1 k3 kw; do
  S_PORTS[$s]="${CPORTS[*]}" S_MASTERS[$s]=$(IFS=,; echo "${MASTERS[*]}") S_URL[$s]=$SEEDS
done
S_MASTERS[sa]=$RPORT
S_WFLAGS[k1]= S_WFLAGS[k3]= S_WFLAGS[kw]=$WAIT_FLAGS
if ((WAIT_STANDALONE)); then
  for _ in $(seq 100); do
    redis-cli -p "$R2R" info replication | grep -q 'master_link_status:up' && break
    sleep 0.1
  done
  S_MASTERS[r0]=$R2 S_MASTERS[rw]=$R2
fi

# Queues: K=1 (and WAIT) on one master; K=3: one queue whose 3 partitions
# live on the 3 masters. REDIS_OF: where the end-to-end run counts each
# queue's SUCCEEDED tasks (loadgen --redis: per partition, its master).
K1Q=$($CU partitioned "${CPORTS[0]}" k 1)
K3Q=$($CU partitioned "${CPORTS[0]}" p 3)
declare -A REDIS_OF
REDIS_OF[$K1Q]="127.0.0.1:$($CU master-of "${CPORTS[0]}" "taskmesh:{$K1Q}:x")"
K3_WHERE=""
for p in 0 1 2; do
  part=$K3Q
  ((p)) && part="$K3Q~$p"
  m=$($CU master-of "${CPORTS[0]}" "taskmesh:{$part}:x")
  REDIS_OF[$K3Q]+="${REDIS_OF[$K3Q]:+,}127.0.0.1:$m/$part"
  K3_WHERE+="'$part' on $m; "
done
{
  echo "cluster: nodes ${CPORTS[*]}; masters ${MASTERS[*]} (by first slot)"
  echo "queues: K=1 '$K1Q' on ${REDIS_OF[$K1Q]#127.0.0.1:}; K=3 $K3_WHERE"
  if ((WAIT_STANDALONE)); then echo "standalone with replica: master $R2, replica $R2R"; fi
} | tee -a "$OUT/machine.txt" >&2

# One task_service per system (the flag is read at start); idle ones only
# read the slot map every 2 s.
declare -A TS_OF=([sa]=sa [k1]=c [k3]=c [kw]=cw [r0]=r0 [rw]=rw)
declare -A TS_URL=([sa]=${S_URL[sa]} [c]=$SEEDS [cw]=$SEEDS)
declare -A TS_FLAGS=([sa]= [c]= [cw]=$WAIT_FLAGS)
if ((WAIT_STANDALONE)); then
  TS_URL[r0]=${S_URL[r0]} TS_URL[rw]=${S_URL[rw]} TS_FLAGS[r0]= TS_FLAGS[rw]=$WAIT_FLAGS
fi
declare -A TS_PORT
for t in "${!TS_URL[@]}"; do
  TS_PORT[$t]=$(free_port)
  # shellcheck disable=SC2086
  start "ts_$t" "$OUT/task_service.$t.log" "$BIN/task_service/task_service" \
    --listen="127.0.0.1:${TS_PORT[$t]}" --redis="${TS_URL[$t]}" ${TS_FLAGS[$t]}
done
for t in "${!TS_PORT[@]}"; do wait_port "${TS_PORT[$t]}"; done
sleep 1

# ---------------------------------------------------------------- helpers
rcpu_of() { $CU cpu ${S_PORTS[$1]}; }  # every node of system $1
flush_sys() {
  local p
  for p in ${S_MASTERS[$1]//,/ }; do redis-cli -p "$p" flushall >/dev/null; done
  for p in ${S_PORTS[$1]}; do redis-cli -p "$p" config resetstat >/dev/null; done
}
redis_fields() {  # redis_fields SYS BEFORE AFTER ITEMS
  $CU cpu-fields "$2" "$3" "$4" "${S_MASTERS[$1]}"
}
ts_pid() { echo "${PIDS[ts_${TS_OF[$1]}]}"; }
grpc() { echo "127.0.0.1:${TS_PORT[${TS_OF[$1]}]}"; }
check_log() {  # check_log FILE: a loadgen run without RESULT says why in the log
  [[ -n "$(result_of "$1")" ]] || log "   (no result in $1: $(tail -c 300 "${1%.out}.err" | tr '\n' ' '))"
}

# prepare SYS: after a flush, what the system's queue needs before load
# (k3: a first task, then 3 partitions).
prepare() {
  [[ $1 == k3 ]] || return 0
  "$TASKCTL" --server="$(grpc k3)" create "$K3Q" echo >/dev/null
  "$TASKCTL" --server="$(grpc k3)" partition "queues/$K3Q" 3 >/dev/null
}

# create SYS ROUND QUEUE: CreateTask closed loop, no worker
create() {
  local sys=$1 i=$2 q=$3 n b a pb pa r
  flush_sys "$sys"
  prepare "$sys"
  b=$(rcpu_of "$sys")
  pb=$(cpu_s "$(ts_pid "$sys")")
  "$LOADGEN" --scenario=create --name="${sys}_create_max" --server="$(grpc "$sys")" --queue="$q" \
    --channels="$CHANNELS" --concurrency="$CONCURRENCY" \
    --duration="${SECONDS_PER_RUN}s" --warmup=0.5s \
    >"$OUT/$sys.create.$i.out" 2>"$OUT/$sys.create.$i.err" || true
  a=$(rcpu_of "$sys")
  pa=$(cpu_s "$(ts_pid "$sys")")
  r=$(result_of "$OUT/$sys.create.$i.out")
  check_log "$OUT/$sys.create.$i.out"
  n=$(field "$r" issued)
  record "$r" "$(redis_fields "$sys" "$b" "$a" "$n"),$(proc_cpu_fields server "$pb" "$pa" "$n"),$(load_field),\"rep\":$i"
  log "   $sys CreateTask: $(field "$r" rps) req/s, errors $(field "$r" errors)"
}

workers_cpu_s() {  # CPU seconds of all running workers
  local t=0 w
  for w in $(seq "$WORKERS"); do t=$($PY -c "print($t + $(cpu_s "${PIDS[worker$w]}"))"); done
  echo "$t"
}

# e2e SYS ROUND LABEL QUEUE: the worker(s) must run; LABEL names the figure
# (LABEL_e2e)
e2e() {
  local sys=$1 i=$2 label=$3 q=$4 n b a pb pa wb wa r
  b=$(rcpu_of "$sys")
  pb=$(cpu_s "$(ts_pid "$sys")")
  wb=$(workers_cpu_s)
  "$LOADGEN" --scenario=batch --name="${label}_e2e" --server="$(grpc "$sys")" --queue="$q" \
    --batch_size="$E2E_BATCH" --concurrency="$E2E_CALLS" \
    --requests=$((E2E_TASKS / E2E_BATCH)) --duration=60s --redis="${REDIS_OF[$q]:-127.0.0.1:$RPORT}" \
    --wait_timeout=60s >"$OUT/$label.e2e.$i.out" 2>"$OUT/$label.e2e.$i.err" || true
  a=$(rcpu_of "$sys")
  pa=$(cpu_s "$(ts_pid "$sys")")
  wa=$(workers_cpu_s)
  r=$(result_of "$OUT/$label.e2e.$i.out")
  check_log "$OUT/$label.e2e.$i.out"
  n=$(field "$r" e2e_succeeded)
  record "$r" "$(redis_fields "$sys" "$b" "$a" "$n"),$(proc_cpu_fields server "$pb" "$pa" "$n"),$(proc_cpu_fields worker "$wb" "$wa" "$n"),$(load_field),\"rep\":$i,\"workers\":$WORKERS"
  log "   $label end to end: $(field "$r" e2e_tasks_per_s) tasks/s ($(field "$r" e2e_succeeded) of $(field "$r" e2e_tasks))"
}

# roundtrip SYS ROUND QUEUE [SECONDS]: the worker(s) must run
roundtrip() {
  local sys=$1 i=$2 q=$3 secs=${4:-30} r
  sleep 0.5
  "$LOADGEN" --scenario=roundtrip --name="${sys}_roundtrip" --server="$(grpc "$sys")" --queue="$q" \
    --concurrency=1 --requests="$ROUNDTRIPS" --warmup=0.2s --duration="${secs}s" \
    >"$OUT/$sys.rt.$i.out" 2>"$OUT/$sys.rt.$i.err"
  r=$(result_of "$OUT/$sys.rt.$i.out")
  check_log "$OUT/$sys.rt.$i.out"
  record "$r" "$(load_field),\"rep\":$i"
  log "   $sys round trip: p50 $(field "$r" p50_us) us, p99 $(field "$r" p99_us) us ($(field "$r" ok) ok, errors $(field "$r" errors))"
}

# --------------------------------------------------------------- phases
phase_sa() {
  create sa "$1" unary
  flush_sys sa
  start_workers e2e "${S_URL[sa]}"
  e2e sa "$1" sa e2e
  roundtrip sa "$1" e2e
  stop_workers
}
# phase_cluster SYS QUEUE ROUND: k1 and k3 (one queue, K = 1 or 3)
phase_cluster() {
  local sys=$1 q=$2 i=$3
  create "$sys" "$i" "$q"
  flush_sys "$sys"
  prepare "$sys"
  start_workers "$q" "$SEEDS"
  sleep 2.5  # the workers' partition refresh (2 s) and the first task
  e2e "$sys" "$i" "$sys" "$q"
  roundtrip "$sys" "$i" "$q"
  stop_workers
  if ((EXTRA_WORKERS > 1)); then
    flush_sys "$sys"
    prepare "$sys"
    WORKERS=$EXTRA_WORKERS start_workers "$q" "$SEEDS"
    sleep 2.5
    WORKERS=$EXTRA_WORKERS e2e "$sys" "$i" "${sys}w" "$q"
    WORKERS=$EXTRA_WORKERS stop_workers
  fi
}
phase_k1() { phase_cluster k1 "$K1Q" "$1"; }
phase_k3() { phase_cluster k3 "$K3Q" "$1"; }
phase_wait() {  # phase_wait SYS ROUND QUEUE: CreateTask and round trip only
  local sys=$1 i=$2 q=$3
  create "$sys" "$i" "$q"
  flush_sys "$sys"
  # shellcheck disable=SC2086
  start_workers "$q" "${S_URL[$sys]}" ${S_WFLAGS[$sys]}
  roundtrip "$sys" "$i" "$q"
  stop_workers
}
phase_kw() { phase_wait kw "$1" "$K1Q"; }
phase_r0() { phase_wait r0 "$1" unary; }
phase_rw() { phase_wait rw "$1" unary; }

PHASES=(sa k1 kw k3)
if ((WAIT_STANDALONE)); then PHASES+=(r0 rw); fi
for i in $(seq "$REPS"); do
  order=("${PHASES[@]}")
  if ((i % 2 == 0)); then
    order=()
    for ((j = ${#PHASES[@]} - 1; j >= 0; j--)); do order+=("${PHASES[$j]}"); done
  fi
  log "round $i of $REPS: ${order[*]} (loadavg $(cut -d' ' -f1 /proc/loadavg))"
  for ph in "${order[@]}"; do
    if (($(left) < 40)); then
      log "   budget: skipping $ph and the rest of round $i"
      break 2
    fi
    "phase_$ph" "$i"
  done
done

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(($(date +%s) - T0)) s" >>"$OUT/machine.txt"
cleanup
$PY bench/summarize.py "$OUT" | tee "$OUT/summary.md"
log "done in $(($(date +%s) - T0)) s; raw results in $OUT"
