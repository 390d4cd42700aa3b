#!/usr/bin/env bash
# Builds the three taskmesh images from the repository root with BuildKit.
#   deploy/docker/build.sh [TAG] [PREFIX]     (defaults: 0.1.0 taskmesh)
# then e.g. `docker push PREFIX/worker:TAG`, or `kind load docker-image ...`.
set -euo pipefail
tag=${1:-0.1.0}
prefix=${2:-taskmesh}
root=$(cd "$(dirname "$0")/../.." && pwd)
for target in task-service worker api-gateway; do
  DOCKER_BUILDKIT=1 docker build -f "$root/deploy/docker/Dockerfile" \
    --target "$target" -t "$prefix/$target:$tag" "$root"
done
