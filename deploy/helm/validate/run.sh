#!/usr/bin/env bash
# Validates the taskmesh Helm chart with Helm's own engine and linter, as a
# Go library, without a Helm binary or a cluster (see docs/deploy.md,
# "Validating the chart"). From the repository root:
#
#   deploy/helm/validate/run.sh [--binary NAME=PATH]... [--require-binaries |
#                               --allow-missing-binaries] [--keep DIR]
#
#   (a) installs its Debian packages when missing (apt-get update only then);
#   (b) builds helmcheck (helm.sh/helm/v4, pinned in helmcheck/go.mod and
#       go.sum; Go >= 1.26 at /usr/local/go; modules from Go's module cache,
#       fetched through the module proxy only when missing) and runs its
#       tests, compiles the test descriptor sets (testdata/, protoc), then for
#       each values file renders the chart like `helm template` and runs
#       `helm lint --strict` on it: the defaults, the production example, the
#       external-Redis example, a minimal variant, the gateway with every
#       value changed (values/gateway.yaml, with descriptor sets both ways)
#       and metrics away from the defaults (values/metrics.yaml: monitors
#       on, other ports, a pool with /metrics off), an external Redis
#       Cluster with KEDA (values/external-redis-cluster.yaml: seed list,
#       redis-cluster-streams triggers);
#   (c) checks every rendered object strictly (check.py; its schema check is
#       helmcheck's validation against the vendored Kubernetes OpenAPI and CRD
#       schemas, schemas/SOURCE.md) and proves the checks can fail
#       (selftest.py, and renders Helm must refuse);
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
PY=/usr/bin/python3   # Debian's python3 with python3-yaml, not a pyenv one
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
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
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
pkgs=(python3-yaml protobuf-compiler libprotobuf-dev)
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

# ---- (b) helmcheck: Helm's engine, linter and the schema validation
# The Go toolchain the project's Go code uses (go.mod says go 1.26.0; never
# a download), and Go's default module and build caches outside the checkout,
# so that a fresh clone builds offline, in seconds, once they are warm.
[[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMODCACHE=${GOMODCACHE:-$HOME/go/pkg/mod}
unset GO111MODULE GOPATH
schemas=$here/schemas
hc=$work/helmcheck
if ! command -v go >/dev/null || ! go version | grep -qE 'go1\.(2[6-9]|[3-9][0-9])'; then
  say "FAIL: helmcheck: needs Go >= 1.26 (/usr/local/go/bin/go; found: $(go version 2>&1))"
  echo "helm-chart: 0 passed, 1 failed"
  exit 1
fi
start=$(date +%s)
if ! (cd "$here/helmcheck" && go build -o "$hc" .) >"$work/go.log" 2>&1; then
  cat "$work/go.log"
  say "FAIL: helmcheck: go build"
  echo "helm-chart: 0 passed, 1 failed"
  exit 1
fi
say "PASS: helmcheck: builds against helm.sh/helm/$(cd "$here/helmcheck" && go list -m -f '{{.Version}}' helm.sh/helm/v4) ($(( $(date +%s) - start ))s)"
gotest=$(cd "$here/helmcheck" && go vet . 2>&1 && go test -count=1 -v . 2>&1); rc=$?
grep -E '^--- (PASS|FAIL)' <<<"$gotest" | sed -E 's/^--- (PASS|FAIL): (\S+).*/\1: helmcheck: \2/' | tee -a "$log"
if ((rc != 0)); then printf '%s\n' "$gotest"; grep -q '^--- FAIL' <<<"$gotest" || say "FAIL: helmcheck: go vet/test"; fi
export HELMCHECK=$hc HELMCHECK_SCHEMAS=$schemas   # check.py's schema check runs it

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
  if "$hc" template -chart "$chart" -name taskmesh -namespace taskmesh -api-versions "$apis" \
      "${fargs[@]}" -notes "$work/$name.notes" >"$work/$name.yaml" 2>"$work/$name.err"; then
    say "PASS: $name: helm template ($(grep -c '^# Source:' "$work/$name.yaml") objects)"
  else
    say "FAIL: $name: helm template"; cat "$work/$name.err" | tee -a "$log"; continue
  fi
  # helm lint --strict: a WARNING fails like an ERROR; INFO lines are shown.
  if "$hc" lint -chart "$chart" -namespace taskmesh "${fargs[@]}" >"$work/$name.lint" 2>&1; then
    say "PASS: $name: helm lint --strict ($(tail -n 1 "$work/$name.lint"))"
  else
    say "FAIL: $name: helm lint --strict"
  fi
  sed '$d' "$work/$name.lint" | sed 's/^/    /' | tee -a "$log"
  # The manifest as kubectl would read it (Go's YAML, duplicate keys
  # refused) against the vendored schemas; check.py's "schema" check runs the
  # same validation on the objects it checks (and selftest.py breaks them).
  if "$hc" schema -schemas "$schemas" "$work/$name.yaml" >"$work/$name.schema" 2>&1; then
    say "PASS: $name: $(tail -n 1 "$work/$name.schema")"
  else
    say "FAIL: $name: $(tail -n 1 "$work/$name.schema")"; sed '$d' "$work/$name.schema" | sed 's/^/    /' | tee -a "$log"
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
# Schema validation of a raw manifest can fail: a duplicate key (Go's YAML
# reader refuses it, as kubectl does) and an unknown field.
printf '%s\n' '---' '# Source: selftest.yaml' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: a, name: b}' \
  '---' 'apiVersion: v1' 'kind: Service' 'metadata: {name: s}' 'spec: {ports: [{port: 80, targetPorts: 8}]}' \
  >"$work/invalid.yaml"
if "$hc" schema -schemas "$schemas" "$work/invalid.yaml" >"$work/invalid.out" 2>&1; then
  say "FAIL: selftest: helmcheck schema refuses invalid objects (it passed)"
elif grep -q '^document 1 (selftest.yaml): YAML: .*key "name" already set in map' "$work/invalid.out" \
    && grep -qF 'spec.ports[0]: unknown field "targetPorts"' "$work/invalid.out" \
    && grep -q '^schema: 2 objects, 2 invalid' "$work/invalid.out"; then
  say "PASS: selftest: helmcheck schema refuses a duplicate key and an unknown field"
else
  say "FAIL: selftest: helmcheck schema refuses invalid objects: $(cat "$work/invalid.out")"
fi
# Values the chart must refuse under Helm (`fail` in the templates, the
# kubeVersion constraint), with the message an operator would see.
refuse() {
  local want=$1; shift
  if "$hc" template -chart "$chart" -name taskmesh -namespace taskmesh "$@" >/dev/null 2>"$work/refuse.err"; then
    say "FAIL: refuses $*: it rendered"
  elif grep -qF -- "$want" "$work/refuse.err"; then
    say "PASS: refuses $* ($want)"
  else
    say "FAIL: refuses $*: wrong message: $(cat "$work/refuse.err")"
  fi
}
refuse "redis.mode must be internal or external" -set-yaml redis.mode=cluster
refuse "redis.external.url is required" -set-yaml redis.mode=external
refuse "must not contain a password" -set-yaml redis.mode=external -set-yaml 'redis.external.url=redis://:pw@r:6379/0'
cl=(-set-yaml redis.mode=external -set-yaml redis.external.cluster=true)
refuse "a Redis Cluster has only database 0 (redis.external.cluster=true)" "${cl[@]}" \
  -set-yaml 'redis.external.addresses=[r0:6379]' -set-yaml redis.db=2
refuse "redis.external.addresses[1] \"r1:6379/3\": a Redis Cluster has only database 0" "${cl[@]}" \
  -set-yaml 'redis.external.addresses=[r0:6379, "r1:6379/3"]'
refuse "redis.external.cluster=true needs redis.external.addresses" "${cl[@]}"
refuse "redis.external.addresses must be a list of HOST:PORT" "${cl[@]}" -set-yaml redis.external.addresses=r0:6379
refuse "must be HOST:PORT (no redis://, no password" "${cl[@]}" -set-yaml 'redis.external.addresses=["redis://:pw@r0:6379"]'
refuse "redis.external.url and redis.external.addresses exclude each other" "${cl[@]}" \
  -set-yaml 'redis.external.addresses=[r0:6379]' -set-yaml redis.external.url=redis://r:6379
refuse "redis.external.cluster=true needs redis.mode=external" -set-yaml redis.external.cluster=true \
  -set-yaml 'redis.external.addresses=[r0:6379]'
refuse "set redis.external.cluster=true too" -set-yaml redis.mode=external -set-yaml 'redis.external.addresses=[r0:6379]'
refuse "redis.external.cluster must be true or false" -set-yaml redis.mode=external -set-yaml redis.external.cluster=maybe \
  -set-yaml redis.external.url=redis://r:6379
refuse "appendfsync must be always or everysec" -set-yaml redis.internal.appendfsync=no
refuse "is served by no worker pool" -set-yaml tests.queue=nobody
refuse "is used twice" -set-yaml 'workers.pools=[{name: a, queues: [default]}, {name: a, queues: [x]}]'
refuse "must be a DNS label" -set-yaml 'workers.pools=[{name: Bad_Pool, queues: [default]}]'
refuse "minReplicas <= maxReplicas" -set-yaml 'workers.pools=[{name: a, queues: [default], minReplicas: 5, maxReplicas: 2}]'
refuse "kubeVersion" -kube-version 1.23.0
tick='{name: tick, queue: default, schedule: "@every 30s", task: {type: echo}}'
warm='workers.pools=[{name: default, queues: [default], minReplicas: 1}]'
refuse "periodicTasks[0].queue \"nowhere\" is served by no worker pool" -set-yaml "periodicTasks=[${tick/default/nowhere}]" -set-yaml "$warm"
refuse "periodicTasks need a worker running at all times" -set-yaml "periodicTasks=[$tick]"
refuse "periodicTasks[0].name \"bad name\"" -set-yaml "periodicTasks=[${tick/tick/\"bad name\"}]" -set-yaml "$warm"
refuse "name, queue, schedule and task.type are required" -set-yaml 'periodicTasks=[{name: tick, queue: default, task: {type: echo}}]' -set-yaml "$warm"
refuse "name \"tick\" is used twice" -set-yaml "periodicTasks=[$tick, $tick]" -set-yaml "$warm"
refuse "taskService.metricsPort 50051 is also taskService.port" -set-yaml taskService.metricsPort=50051
refuse "workers.pools[default].metricsPort 8081 is also its healthPort" -set-yaml workers.metricsPort=8081
refuse "workers.pools[a].metricsPort must be 0 (no /metrics) or a port 1-65535" \
  -set-yaml 'workers.pools=[{name: a, queues: [default], metricsPort: 70000}]'
refuse "taskService.metricsPort must be 0 (no /metrics) or a port" -set-yaml taskService.metricsPort=-1
refuse "listenHost \"[::]\": --metrics_listen binds an IPv4 address only" -set-yaml 'listenHost="[::]"'
refuse "gateway.terminationGracePeriodSeconds is derived" -set-yaml gateway.terminationGracePeriodSeconds=30
refuse "gateway.maxJsonDepth must be 1-99" -set-yaml gateway.maxJsonDepth=100
refuse "gateway.maxHeaderBytes must be at least 1024" -set-yaml gateway.maxHeaderBytes=512
refuse "gateway.maxBodyBytes must be a whole number from 1" -set-yaml gateway.maxBodyBytes=1Mi
refuse "gateway.ioThreads must be a whole number >= 0" -set-yaml gateway.ioThreads=-1
refuse "gateway.idleTimeout must be a duration" -set-yaml gateway.idleTimeout=60
refuse "gateway.accessLog must be true or false, unquoted" -set-yaml 'gateway.accessLog="true"'
refuse "gateway.terminationGraceMarginSeconds must be at least 5" -set-yaml gateway.terminationGraceMarginSeconds=2
refuse "gateway.corsOrigins: \"app.example.com\"" -set-yaml 'gateway.corsOrigins=[app.example.com]'
refuse "gateway.routes: \"Echo\" is not a fully qualified" -set-yaml 'gateway.routes={Echo: "e:9000"}'
refuse "must be HOST:PORT or dns:///NAME:PORT" -set-yaml 'gateway.routes={a.v1.Echo: "http://e:9000"}'
refuse "gateway.upstream \"tasks\" must be HOST:PORT" -set-yaml gateway.upstream=tasks
refuse "binaryData[x.pb] is not base64" -set-yaml 'gateway.descriptorSets.binaryData={x.pb: "not base64!"}'
refuse "volume is set but volumeFiles lists no file" -set-yaml 'gateway.descriptorSets.volume={configMap: {name: apis}}'
refuse "volumeFiles needs gateway.descriptorSets.volume" -set-yaml 'gateway.descriptorSets.volumeFiles=[a.pb]'
refuse "taskmeshProtos=false leaves the gateway nothing to serve" -set-yaml gateway.taskmeshProtos=false
refuse "the helm test creates a task through the taskmesh API" -set-yaml gateway.taskmeshProtos=false \
  -set-yaml 'gateway.descriptorSets.binaryData={x.pb: "CgA="}'

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
