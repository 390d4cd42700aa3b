#!/usr/bin/env bash
# Runs the whole taskmesh mesh on this machine, on an embedded default:
# a private redis-server (data in .local/redis), the task_service and two
# workers, all on 127.0.0.1. Ctrl-C (or SIGTERM) stops everything cleanly.
#
# Environment (all optional):
#   TASKMESH_LOCAL_DIR          state and logs        (default: .local)
#   TASKMESH_LOCAL_REDIS_PORT   private redis-server  (default: 6390)
#   TASKMESH_LOCAL_GRPC_PORT    task_service gRPC     (default: 50051)
#   TASKMESH_LOCAL_WORKERS      worker processes      (default: 2)
#   TASKMESH_LOCAL_HTTP_PORT    api_gateway HTTP/JSON (default: 8080)
#   TASKMESH_LOCAL_CLUSTER=1    a private Redis Cluster instead: 3 masters and
#                               3 replicas on ports REDIS_PORT..REDIS_PORT+5
#                               (data in .local/cluster/PORT), the binaries
#                               given every node as seeds
set -euo pipefail
cd "$(dirname "$0")/.."

state=${TASKMESH_LOCAL_DIR:-$PWD/.local}
redis_port=${TASKMESH_LOCAL_REDIS_PORT:-6390}
grpc_port=${TASKMESH_LOCAL_GRPC_PORT:-50051}
workers=${TASKMESH_LOCAL_WORKERS:-2}
http_port=${TASKMESH_LOCAL_HTTP_PORT:-8080}
cluster=${TASKMESH_LOCAL_CLUSTER:-0}

say() { printf '[run_local] %s\n' "$*"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

redis_ports=("$redis_port")
if [[ "$cluster" == 1 ]]; then
  redis_ports=()
  for i in 0 1 2 3 4 5; do redis_ports+=($((redis_port + i)) $((redis_port + i + 10000))); done
fi
for port in "${redis_ports[@]}" "$grpc_port" "$http_port"; do
  if port_busy "$port"; then
    say "port $port on 127.0.0.1 is in use; stop what uses it or set TASKMESH_LOCAL_*_PORT"
    exit 1
  fi
done

say "checking packages"
bash scripts/install_deps.sh
say "building (first build takes a few minutes; later ones seconds)"
bazel build //task_service //workers:worker //cli:taskctl //api_gateway
bin=bazel-bin  # the workspace symlink Bazel keeps current

mkdir -p "$state"
pids=()
stop_all() {
  trap - INT TERM EXIT
  say "stopping"
  # Workers first (they drain), then the service, then Redis.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  say "stopped"
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

# Starts one redis-server on port $1 with data in $2 (and further flags).
start_redis() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --appendonly yes --appendfsync everysec --save "" --daemonize no "$@" \
    >"$dir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "redis-server did not start on $port: see $dir/redis.log"
  exit 1
}

if [[ "$cluster" == 1 ]]; then
  nodes=()
  for i in 0 1 2 3 4 5; do
    port=$((redis_port + i))
    start_redis "$port" "$state/cluster/$port" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000
    nodes+=("127.0.0.1:$port")
  done
  # A cluster made on an earlier run keeps its nodes.conf: create it once.
  if ! redis-cli -p "$redis_port" cluster info | grep -q '^cluster_state:ok'; then
    if redis-cli -p "$redis_port" cluster info | tr -d '\r' | grep -qx 'cluster_known_nodes:1'; then
      redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$state/cluster/create.log" 2>&1 || { say "cluster create failed: see $state/cluster/create.log"; exit 1; }
    fi
    for _ in $(seq 150); do
      redis-cli -p "$redis_port" cluster info | grep -q '^cluster_state:ok' && break
      sleep 0.2
    done
    redis-cli -p "$redis_port" cluster info | grep -q '^cluster_state:ok' || { say "the cluster did not become ok"; exit 1; }
  fi
  redis_url="redis://$(IFS=,; echo "${nodes[*]}")"
  say "redis cluster  3 masters + 3 replicas on 127.0.0.1:$redis_port-$((redis_port + 5)) (AOF in $state/cluster)"
else
  start_redis "$redis_port" "$state/redis"
  redis_url="redis://127.0.0.1:$redis_port"
  say "redis-server   127.0.0.1:$redis_port (AOF in $state/redis)"
fi

"$bin/task_service/task_service" --listen="127.0.0.1:$grpc_port" \
  --redis="$redis_url" >"$state/task_service.log" 2>&1 &
pids+=($!)

for i in $(seq "$workers"); do
  "$bin/workers/worker" --redis="$redis_url" --queues=default \
    --concurrency=4 --consumer="local-worker-$i" --health_listen= \
    >"$state/worker-$i.log" 2>&1 &
  pids+=($!)
done

# Ready when a read goes through the service to Redis (NOT_FOUND).
ready=
for _ in $(seq 150); do
  probe=$("$bin/cli/taskctl" --server="127.0.0.1:$grpc_port" --timeout=1s \
    get queues/default/tasks/readiness-probe 2>&1 || true)
  if [[ "$probe" == *NOT_FOUND* ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
[[ -n "$ready" ]] || { say "task_service did not become ready: see $state/task_service.log"; exit 1; }

# The REST gateway, in front of the task_service (stopped before it).
"$bin/api_gateway/api_gateway" --listen="127.0.0.1:$http_port" \
  --upstream="127.0.0.1:$grpc_port" >"$state/api_gateway.log" 2>&1 &
pids+=($!)
ready=
for _ in $(seq 100); do
  if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/readyz" 2>/dev/null)" == 200 ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
[[ -n "$ready" ]] || { say "api_gateway did not become ready: see $state/api_gateway.log"; exit 1; }

cat <<INFO
[run_local] task_service   127.0.0.1:$grpc_port (gRPC: taskmesh.v1.TaskService, health, reflection)
[run_local] api_gateway    http://127.0.0.1:$http_port (REST/JSON; OpenAPI at /openapi.json, /metrics, /readyz)
[run_local] workers        $workers x 4 handler threads on queue 'default'
[run_local] logs           $state/*.log

Try it (in another terminal):
  $bin/cli/taskctl --server=127.0.0.1:$grpc_port create default echo '{"hello":"world"}' --wait
  $bin/cli/taskctl --server=127.0.0.1:$grpc_port create default sha256 '{"data":"abc","rounds":100000}'
  $bin/cli/taskctl --server=127.0.0.1:$grpc_port get queues/default/tasks/ID

  # REST through the api_gateway (docs/gateway.md):
  curl -s -X POST http://127.0.0.1:$http_port/v1/queues/default/tasks -H 'Content-Type: application/json' -d '{"type":"echo","payload":{"hello":"world"}}'
  curl -s http://127.0.0.1:$http_port/v1/queues/default/tasks/ID
  curl -sN http://127.0.0.1:$http_port/v1/queues/default/tasks/ID:watch

Ctrl-C stops everything.
INFO

# Run until a signal, or until one of our processes dies.
while true; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "process $pid exited unexpectedly; logs are in $state"
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
