#!/usr/bin/env bash
# Installs, from Debian's packages, what taskmesh needs to build, run and test,
# and only what is missing. Idempotent: a second run installs nothing.
#
#   scripts/install_deps.sh           build, run and test the C++ mesh
#   scripts/install_deps.sh --chart   also what validates the Helm chart
#   scripts/install_deps.sh --bench   also what bench/gateway/run.sh drives
set -euo pipefail

packages=(
  bazel-bootstrap        # Bazel 4.2.3, works offline against system libraries
  g++
  libgrpc++-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler
  libabsl-dev
  libhiredis-dev
  libssl-dev
  libgtest-dev libgmock-dev
  libbenchmark-dev
  redis-server redis-tools
  faketime                         # tests/fault F7: libfaketime skews the workers' clocks
  libboost-dev                     # api_gateway: Boost.Beast and Asio (header-only)
  libgoogle-perftools-dev          # api_gateway: tcmalloc
  libnghttp2-dev                   # api_gateway: its HTTP/2 (gRPC) upstream client
  nlohmann-json3-dev               # api_gateway: the OpenAPI document (header-only)
  clang-14 libclang-rt-14-dev      # api_gateway/fuzz: libFuzzer, ASan, UBSan
  curl                             # scripts/run_local.sh: api_gateway readiness
  lua-check                        # broker/lua: luacheck over the Lua scripts (a test)
)
if [[ "${1:-}" == "--chart" ]]; then
  # deploy/helm/validate: its Go program (helm.sh/helm/v4) builds with Go
  # >= 1.26 (/usr/local/go) from the Go module cache, not from Debian.
  packages+=(python3-yaml)
fi
if [[ "${1:-}" == "--bench" ]]; then
  # bench/gateway/run.sh: load generators and the HTTP ceiling.
  packages+=(wrk nghttp2-client nginx-light)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Debian package starts a system redis-server on 6379; taskmesh starts its
# own private servers and does not need it.
echo "install_deps: done"
