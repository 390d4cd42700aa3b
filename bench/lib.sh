# bench/lib.sh: helpers shared by bench/run.sh and bench/cluster.sh (sourced,
# not run): logging and the time budget, background processes stopped on
# exit, free ports, CPU and RSS from /proc, idempotent installs, the -c opt
# build, Redis INFO cpu, and results.jsonl records.
#
# The caller sets, before sourcing: T0 (start time), OUT, RESULTS, PY, PEERS,
# PROFILE, NODE_DIR (and GO_DIR, else /var/cache/taskmesh/bench-go); before
# calling start_workers: BIN.

# Load settings, the same for taskmesh, the echo ceiling and the cluster runs
# (each from its BENCH_* variable).
BUDGET=${BENCH_BUDGET_S:-570}  # phases are skipped rather than run past this
CHANNELS=${BENCH_CHANNELS:-2}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
SECONDS_PER_RUN=${BENCH_SECONDS:-3}
E2E_TASKS=${BENCH_E2E_TASKS:-100000}
E2E_BATCH=${BENCH_E2E_BATCH:-100}
E2E_CALLS=${BENCH_E2E_CALLS:-4}
WORKERS=${BENCH_WORKERS:-1}
WORKER_CONCURRENCY=${BENCH_WORKER_CONCURRENCY:-64}
ROUNDTRIPS=${BENCH_ROUNDTRIPS:-2000}

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
    build_asynq_peer
  fi
}

# build_asynq_peer: builds bench/peers/asynq into $GO_DIR/bin and sets
# ASYNQ_PEER to it; without a Go toolchain, or when its pinned modules can be
# neither found in $GO_DIR/mod nor fetched, says why, records an
# "asynq_skipped" line and leaves ASYNQ_PEER empty (the run goes on without
# that peer). The module and build caches are $GO_DIR's, outside the
# checkout: after the first fetch the build runs offline (GOPROXY=off).
GO_DIR=${GO_DIR:-/var/cache/taskmesh/bench-go}
ASYNQ_PEER=
build_asynq_peer() {
  local go why
  ASYNQ_PEER=
  if [[ -n "${BENCH_GO:-}" ]]; then go=$BENCH_GO
  elif [[ -x /usr/local/go/bin/go ]]; then go=/usr/local/go/bin/go
  else go=$(command -v go || true); fi
  if [[ -z "$go" || ! -x "$go" ]]; then
    if [[ -n "${BENCH_GO:-}" ]]; then why="BENCH_GO=$BENCH_GO is not an executable"
    else why="neither /usr/local/go/bin/go nor go on PATH"; fi
    asynq_skipped "no Go toolchain ($why; Go >= 1.22 needed)"
    return 0
  fi
  mkdir -p "$GO_DIR/bin"
  local env=(GOTOOLCHAIN=local "GOFLAGS=-mod=readonly -buildvcs=false" GOWORK=off
             "GOMODCACHE=$GO_DIR/mod" "GOCACHE=$GO_DIR/build")
  local build=(env "${env[@]}" GOPROXY=off "$go" build -trimpath -o "$GO_DIR/bin/asynq-peer" .)
  : >"$OUT/asynq_build.log"
  if ! (cd bench/peers/asynq && "${build[@]}") >>"$OUT/asynq_build.log" 2>&1; then
    log "go: fetching the Asynq peer's modules (pinned by bench/peers/asynq/go.sum) into $GO_DIR/mod"
    if ! (cd bench/peers/asynq && env "${env[@]}" timeout 300 "$go" mod download &&
          "${build[@]}") >>"$OUT/asynq_build.log" 2>&1; then
      why=$(grep -v '^go: downloading' "$OUT/asynq_build.log" | tail -1)
      asynq_skipped "its Go build failed ($($go version 2>/dev/null | cut -d' ' -f3)): ${why:-see $OUT/asynq_build.log}"
      return 0
    fi
  fi
  ASYNQ_PEER=$GO_DIR/bin/asynq-peer
}
asynq_skipped() {
  log "Asynq peer SKIPPED: $1"
  $PY -c 'import json,sys; print(json.dumps({"name": "asynq_skipped", "why": sys.argv[1]}))' "$1" >>"$RESULTS"
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

# ------------------------------------------------------------------- build
# build_bins TARGET...: bazel build -c opt with the run's own symlinks (so
# bazel-bin keeps pointing at fastbuild); sets BIN
build_bins() {
  log "building (-c opt)"
  bazel build -c opt --symlink_prefix="$OUT/bazel-" "$@" >"$OUT/build.log" 2>&1 ||
    { tail -20 "$OUT/build.log"; exit 1; }
  BIN=$(readlink -f "$OUT/bazel-bin")
}

# write_machine COMMAND SETTINGS: $OUT/machine.txt (and on stderr)
write_machine() {
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel: $(uname -r); redis: $(redis-server --version | grep -o 'v=[0-9.]*'); commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
    echo "command: $1"
    echo "settings: $2"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$OUT/machine.txt"
  cat "$OUT/machine.txt" >&2
}

# ----------------------------------------------------------------- workers
# start_workers QUEUES [REDIS_URL [FLAG...]]: $WORKERS workers on QUEUES
# (comma-separated), on the private server unless REDIS_URL is given
start_workers() {
  local queues=$1 url=${2:-redis://127.0.0.1:$RPORT} w
  shift $(($# < 2 ? $# : 2))
  for w in $(seq "$WORKERS"); do
    start "worker$w" "$OUT/worker$w.log" "$BIN/workers/worker" --redis="$url" \
      --queues="$queues" --concurrency="$WORKER_CONCURRENCY" --health_listen= --consumer="bench-$w" "$@"
  done
  for _ in $(seq 100); do
    grep -q "worker started" "$OUT/worker$WORKERS.log" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.3
}
stop_workers() { for w in $(seq "$WORKERS"); do stop "worker$w"; done; }
