#!/usr/bin/env bash
# Validates the taskmesh Helm chart without Helm or a cluster (see
# docs/deploy.md, "Validating the chart"). From the repository root:
#
#   deploy/helm/validate/run.sh [--binary NAME=PATH]... [--require-binaries |
#                               --allow-missing-binaries] [--keep DIR]
#
#   (a) installs its Debian packages when missing (apt-get update only then);
#   (b) builds the Go renderer (text/template + sprig + Helm's built-ins,
#       offline against Debian's Go packages) and runs its tests, compiles the
#       test descriptor sets (testdata/, protoc), then renders the chart with
#       each values file: the defaults, the production example, the
#       external-Redis example, a minimal variant, the gateway with every
#       value changed (values/gateway.yaml, with descriptor sets both ways)
#       and metrics away from the defaults (values/metrics.yaml: monitors
#       on, other ports, a pool with /metrics off), an external Redis
#       Cluster with KEDA (values/external-redis-cluster.yaml: seed list,
#       redis-cluster-streams triggers);
#   (c) checks every rendered object strictly (check.py) and proves the checks
#       can fail (selftest.py, and renders that must be refused);
#   (d) cross-checks the chart's flags against the binaries' --help and runs
#       each binary with the chart's flags, starts the worker with its
#       --periodic_config file (the rendered ConfigMap's content) and the
#       gateway with its settings and --descriptor_set files, and checks the
#       Docker runtime package list against ldd. Binaries: NAME=PATH (NAME:
#       task_service, worker, api_gateway), else bazel-bin/ when built.
#       Once any of the three is there (given, or in bazel-bin/: CI builds
#       everything first), all three are required: a missing one FAILS, so a
#       flag without a value can never pass as "skipped". With none built,
#       the binary checks are SKIPPED. --require-binaries requires them even
#       then; --allow-missing-binaries skips whichever is missing.
#       A Redis Cluster seed list in --redis is started with every seed local;
#   (e) ends with "helm-chart: N passed, M failed, K skipped"; exit 1 on any failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
chart=$root/deploy/helm/taskmesh
PY=/usr/bin/python3   # Debian's python3 with python3-kubernetes, not a pyenv one
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the work tree

declare -A bins=()
require=auto
keep=""
while (($#)); do
  case "$1" in
    --binary) bins[${2%%=*}]=${2#*=}; shift 2 ;;
    --binary=*) v=${1#--binary=}; bins[${v%%=*}]=${v#*=}; shift ;;
    --require-binaries) require=1; shift ;;
    --allow-missing-binaries) require=0; shift ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/log
: >"$log"
say() { printf '%s\n' "$*" | tee -a "$log"; }
# Runs a step; its PASS/FAIL/SKIP lines go to the log. A step that exits
# non-zero without printing a FAIL line still counts as one failure.
step() {
  local name=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out" | tee -a "$log"
  if ((rc != 0)) && ! grep -q '^FAIL' <<<"$out"; then
    say "FAIL: $name (exit $rc)"
  fi
}

# ---- (a) packages
pkgs=(golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev python3-kubernetes python3-yaml
      protobuf-compiler libprotobuf-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "run.sh: installing ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$work/apt.log" 2>&1; then
    cat "$work/apt.log"
    say "FAIL: packages: could not install ${missing[*]}"
    echo "helm-chart: 0 passed, 1 failed"
    exit 1
  fi
fi

# ---- (b) the renderer
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off
if [ -z "${GOCACHE:-}" ]; then
  if mkdir -p /var/cache/taskmesh/go-build 2>/dev/null && [ -w /var/cache/taskmesh/go-build ]; then
    export GOCACHE=/var/cache/taskmesh/go-build
  else
    export GOCACHE=$work/go-build
  fi
fi
if ! (cd "$here/render" && go build -o "$work/render" .) >"$work/go.log" 2>&1; then
  cat "$work/go.log"
  say "FAIL: render: go build"
  echo "helm-chart: 0 passed, 1 failed"
  exit 1
fi
say "PASS: render: builds offline (GOPATH=/usr/share/gocode)"
gotest=$(cd "$here/render" && go vet . 2>&1 && go test -v . 2>&1); rc=$?
grep -E '^--- (PASS|FAIL)' <<<"$gotest" | sed -E 's/^--- (PASS|FAIL): (\S+).*/\1: render: \2/' | tee -a "$log"
if ((rc != 0)); then printf '%s\n' "$gotest"; grep -q '^--- FAIL' <<<"$gotest" || say "FAIL: render: go vet/test"; fi

# The gateway's test descriptor sets: echo.pb goes into the chart's ConfigMap
# (binaryData, a values file written here), ops.pb is "on the user's volume"
# (binflags.py gets it with --provide).
desc_ok=1
for p in echo ops; do
  if ! protoc -I"$here/testdata" -I"$root/protos" -I/usr/include --include_imports \
      --descriptor_set_out="$work/$p.pb" "chartcheck/v1/$p.proto" 2>"$work/protoc.err"; then
    say "FAIL: descriptor sets: protoc $p.proto: $(cat "$work/protoc.err")"; desc_ok=0
  fi
done
if ((desc_ok)); then
  printf 'gateway:\n  descriptorSets:\n    binaryData:\n      echo.pb: %s\n' "$(base64 -w0 "$work/echo.pb")" \
    >"$work/descriptors.yaml"
  say "PASS: descriptor sets: testdata/chartcheck/v1/{echo,ops}.proto compile"
fi
declare -A provide=([gateway]="/etc/taskmesh/descriptor-sets-volume/ops.pb=$work/ops.pb")

# Renders: name, then values files on top of the chart's values.yaml.
renders=(
  "default|"
  "production|$root/deploy/helm/examples/values-production.yaml"
  "external-redis|$root/deploy/helm/examples/values-external-redis.yaml"
  "external-redis-cluster|$here/values/external-redis-cluster.yaml"
  "minimal|$here/values/minimal.yaml"
  "metrics|$here/values/metrics.yaml"
)
((desc_ok)) && renders+=("gateway|$here/values/gateway.yaml,$work/descriptors.yaml")
apis="keda.sh/v1alpha1,monitoring.coreos.com/v1"
for r in "${renders[@]}"; do
  name=${r%%|*}; files=${r#*|}
  fargs=(); vargs=(--values "$chart/values.yaml")
  for f in ${files//,/ }; do fargs+=(-f "$f"); vargs+=(--values "$f"); done
  if "$work/render" -chart "$chart" -strict -name taskmesh -namespace taskmesh -api-versions "$apis" \
      "${fargs[@]}" -notes "$work/$name.notes" >"$work/$name.yaml" 2>"$work/$name.err"; then
    say "PASS: $name: renders ($(grep -c '^# Source:' "$work/$name.yaml") objects)"
  else
    say "FAIL: $name: renders"; cat "$work/$name.err" | tee -a "$log"; continue
  fi
  step "$name: check" "$PY" "$here/check.py" --render "$name" --manifest "$work/$name.yaml" \
    --notes "$work/$name.notes" "${vargs[@]}" ${bins_json:+--help-flags "$bins_json"}
done

# ---- (c) the checks can fail
if [ -s "$work/default.yaml" ]; then
  cargs=()
  [ -s "$work/external-redis-cluster.yaml" ] && cargs=(--cluster-manifest "$work/external-redis-cluster.yaml"
    --cluster-notes "$work/external-redis-cluster.notes" --cluster-values "$chart/values.yaml"
    --cluster-values "$here/values/external-redis-cluster.yaml")
  step "selftest" "$PY" "$here/selftest.py" --manifest "$work/default.yaml" \
    --notes "$work/default.notes" --values "$chart/values.yaml" "${cargs[@]}"
fi
# Values the chart must refuse, with the message an operator would see.
refuse() {
  local want=$1; shift
  if "$work/render" -chart "$chart" -name taskmesh -namespace taskmesh "$@" >/dev/null 2>"$work/refuse.err"; then
    say "FAIL: refuses $*: it rendered"
  elif grep -qF -- "$want" "$work/refuse.err"; then
    say "PASS: refuses $* ($want)"
  else
    say "FAIL: refuses $*: wrong message: $(cat "$work/refuse.err")"
  fi
}
refuse "redis.mode must be internal or external" -set redis.mode=cluster
refuse "redis.external.url is required" -set redis.mode=external
refuse "must not contain a password" -set redis.mode=external -set 'redis.external.url=redis://:pw@r:6379/0'
cl=(-set redis.mode=external -set redis.external.cluster=true)
refuse "a Redis Cluster has only database 0 (redis.external.cluster=true)" "${cl[@]}" \
  -set 'redis.external.addresses=[r0:6379]' -set redis.db=2
refuse "redis.external.addresses[1] \"r1:6379/3\": a Redis Cluster has only database 0" "${cl[@]}" \
  -set 'redis.external.addresses=[r0:6379, "r1:6379/3"]'
refuse "redis.external.cluster=true needs redis.external.addresses" "${cl[@]}"
refuse "redis.external.addresses must be a list of HOST:PORT" "${cl[@]}" -set redis.external.addresses=r0:6379
refuse "must be HOST:PORT (no redis://, no password" "${cl[@]}" -set 'redis.external.addresses=["redis://:pw@r0:6379"]'
refuse "redis.external.url and redis.external.addresses exclude each other" "${cl[@]}" \
  -set 'redis.external.addresses=[r0:6379]' -set redis.external.url=redis://r:6379
refuse "redis.external.cluster=true needs redis.mode=external" -set redis.external.cluster=true \
  -set 'redis.external.addresses=[r0:6379]'
refuse "set redis.external.cluster=true too" -set redis.mode=external -set 'redis.external.addresses=[r0:6379]'
refuse "redis.external.cluster must be true or false" -set redis.mode=external -set redis.external.cluster=maybe \
  -set redis.external.url=redis://r:6379
refuse "appendfsync must be always or everysec" -set redis.internal.appendfsync=no
refuse "is served by no worker pool" -set tests.queue=nobody
refuse "is used twice" -set 'workers.pools=[{name: a, queues: [default]}, {name: a, queues: [x]}]'
refuse "must be a DNS label" -set 'workers.pools=[{name: Bad_Pool, queues: [default]}]'
refuse "minReplicas <= maxReplicas" -set 'workers.pools=[{name: a, queues: [default], minReplicas: 5, maxReplicas: 2}]'
refuse "kubeVersion" -kube-version 1.23.0
tick='{name: tick, queue: default, schedule: "@every 30s", task: {type: echo}}'
warm='workers.pools=[{name: default, queues: [default], minReplicas: 1}]'
refuse "periodicTasks[0].queue \"nowhere\" is served by no worker pool" -set "periodicTasks=[${tick/default/nowhere}]" -set "$warm"
refuse "periodicTasks need a worker running at all times" -set "periodicTasks=[$tick]"
refuse "periodicTasks[0].name \"bad name\"" -set "periodicTasks=[${tick/tick/\"bad name\"}]" -set "$warm"
refuse "name, queue, schedule and task.type are required" -set 'periodicTasks=[{name: tick, queue: default, task: {type: echo}}]' -set "$warm"
refuse "name \"tick\" is used twice" -set "periodicTasks=[$tick, $tick]" -set "$warm"
refuse "taskService.metricsPort 50051 is also taskService.port" -set taskService.metricsPort=50051
refuse "workers.pools[default].metricsPort 8081 is also its healthPort" -set workers.metricsPort=8081
refuse "workers.pools[a].metricsPort must be 0 (no /metrics) or a port 1-65535" \
  -set 'workers.pools=[{name: a, queues: [default], metricsPort: 70000}]'
refuse "taskService.metricsPort must be 0 (no /metrics) or a port" -set taskService.metricsPort=-1
refuse "listenHost \"[::]\": --metrics_listen binds an IPv4 address only" -set 'listenHost="[::]"'
refuse "gateway.terminationGracePeriodSeconds is derived" -set gateway.terminationGracePeriodSeconds=30
refuse "gateway.maxJsonDepth must be 1-99" -set gateway.maxJsonDepth=100
refuse "gateway.maxHeaderBytes must be at least 1024" -set gateway.maxHeaderBytes=512
refuse "gateway.maxBodyBytes must be a whole number from 1" -set gateway.maxBodyBytes=1Mi
refuse "gateway.ioThreads must be a whole number >= 0" -set gateway.ioThreads=-1
refuse "gateway.idleTimeout must be a duration" -set gateway.idleTimeout=60
refuse "gateway.accessLog must be true or false, unquoted" -set 'gateway.accessLog="true"'
refuse "gateway.terminationGraceMarginSeconds must be at least 5" -set gateway.terminationGraceMarginSeconds=2
refuse "gateway.corsOrigins: \"app.example.com\"" -set 'gateway.corsOrigins=[app.example.com]'
refuse "gateway.routes: \"Echo\" is not a fully qualified" -set 'gateway.routes={Echo: "e:9000"}'
refuse "must be HOST:PORT or dns:///NAME:PORT" -set 'gateway.routes={a.v1.Echo: "http://e:9000"}'
refuse "gateway.upstream \"tasks\" must be HOST:PORT" -set gateway.upstream=tasks
refuse "binaryData[x.pb] is not base64" -set 'gateway.descriptorSets.binaryData={x.pb: "not base64!"}'
refuse "volume is set but volumeFiles lists no file" -set 'gateway.descriptorSets.volume={configMap: {name: apis}}'
refuse "volumeFiles needs gateway.descriptorSets.volume" -set 'gateway.descriptorSets.volumeFiles=[a.pb]'
refuse "taskmeshProtos=false leaves the gateway nothing to serve" -set gateway.taskmeshProtos=false
refuse "the helm test creates a task through the taskmesh API" -set gateway.taskmeshProtos=false \
  -set 'gateway.descriptorSets.binaryData={x.pb: "CgA="}'

# ---- (d) binaries: --help, acceptance of the chart's flags, ldd
declare -A bazel_paths=([task_service]=task_service/task_service [worker]=workers/worker [api_gateway]=api_gateway/api_gateway)
declare -A paths=()
for b in task_service worker api_gateway; do
  p=${bins[$b]:-}
  if [ -z "$p" ] && [ -x "$root/bazel-bin/${bazel_paths[$b]}" ]; then p=$root/bazel-bin/${bazel_paths[$b]}; fi
  [ -n "$p" ] && paths[$b]=$p
done
if [ "$require" = auto ]; then
  # Any binary built means this is a build (CI builds //... first): then
  # every binary must be checked, none may pass as "skipped".
  if ((${#paths[@]})); then require=1; why="the others are built"; else require=0; fi
else
  why="--require-binaries"
fi
bargs=(); found=()
for b in task_service worker api_gateway; do
  p=${paths[$b]:-}
  if [ -n "$p" ] && [ ! -x "$p" ]; then say "FAIL: binaries: $b: $p is not an executable"; p=""; fi
  if [ -n "$p" ]; then bargs+=(--binary "$b=$p"); found+=("$p")
  elif ((require)); then say "FAIL: binaries: $b not built ($why; bazel build //${bazel_paths[$b]%/*}:${bazel_paths[$b]##*/})"; fi
done
step "flags: --help" "$PY" "$here/binflags.py" help "${bargs[@]}" --out "$work/help-flags.json"
for r in "${renders[@]}"; do
  name=${r%%|*}
  [ -s "$work/$name.yaml" ] || continue
  if [ -s "$work/help-flags.json" ] && [ "$(cat "$work/help-flags.json")" != "{}" ]; then
    # Re-run the flags check against --help (the contract was used above).
    vargs=(--values "$chart/values.yaml"); files=${r#*|}
    for f in ${files//,/ }; do vargs+=(--values "$f"); done
    out=$("$PY" "$here/check.py" --render "$name (--help)" --manifest "$work/$name.yaml" \
      --notes "$work/$name.notes" "${vargs[@]}" --help-flags "$work/help-flags.json" 2>&1)
    grep -E '^(PASS|FAIL): .*: flags$' -A20 <<<"$out" | grep -E '^(PASS|FAIL)|^    ' | awk '/^(PASS|FAIL)/{p=/: flags$/} p' | tee -a "$log"
  fi
  vargs=(--values "$chart/values.yaml"); files=${r#*|}
  for f in ${files//,/ }; do vargs+=(--values "$f"); done
  pargs=(); [ -n "${provide[$name]:-}" ] && pargs=(--provide "${provide[$name]}")
  step "$name: binaries accept" "$PY" "$here/binflags.py" accept --render "$name" \
    --manifest "$work/$name.yaml" "${vargs[@]}" "${pargs[@]}" "${bargs[@]}"
done
if ((${#found[@]})); then
  step "docker: ldd" "$PY" "$root/deploy/docker/check_runtime_libs.py" "${found[@]}"
else
  say "SKIP: docker: runtime packages cover the binaries' libraries (no binary built)"
fi
# The ldd check can fail: a list without the libraries /bin/ls links.
echo libc6 >"$work/tiny-list.txt"
if "$PY" "$root/deploy/docker/check_runtime_libs.py" --packages "$work/tiny-list.txt" /bin/ls >"$work/ldd.out" 2>&1; then
  say "FAIL: selftest: ldd check rejects an incomplete package list (it passed)"
else
  say "PASS: selftest: ldd check rejects an incomplete package list"
fi

if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.yaml "$work"/*.notes "$keep"/ 2>/dev/null; fi

passed=$(grep -c '^PASS' "$log"); failed=$(grep -c '^FAIL' "$log"); skipped=$(grep -c '^SKIP' "$log")
echo
echo "helm-chart: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
