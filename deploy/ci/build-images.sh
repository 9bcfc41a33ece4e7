#!/usr/bin/env bash
# `make images`: the images docker-compose.ci.yml runs, built without the public image registry (not reachable on
# CI): a Debian root filesystem made by debootstrap and imported as the base, Debian's PostgreSQL and nginx on it,
# and reroute's own image from deploy/Dockerfile with that base instead of the official python one.
# Needs root (debootstrap), a running Docker engine and the Debian mirror; the base is made once and reused.
set -euo pipefail
cd "$(dirname "$0")/../.."

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${REROUTE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
BASE=reroute-ci/python:3.11-bookworm          # stands in for python:3.11-slim
BUILD=reroute-ci/python-build:3.11-bookworm   # the same plus the CA bundle pip needs; a build stage only
export DOCKER_BUILDKIT=0                       # no buildx here; the classic builder

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { local t0=$SECONDS; echo "-- $1"; shift; "$@"; echo "-- done in $((SECONDS - t0)) s"; }

base() {
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" \
        || { tail -n 30 "$work/debootstrap.log"; return 1; }
    rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin
    tar -C "$work/rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE"
}

build_stage_base() {
    mkdir -p "$work/build-base"
    cp "$CA_BUNDLE" "$work/build-base/ca-certificates.crt"
    cp deploy/ci/python-build.Dockerfile "$work/build-base/Dockerfile"
    docker build -q --build-arg BASE="$BASE" -t "$BUILD" "$work/build-base"
}

if docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "-- $BASE: already here (docker rmi it to make it again)"
else
    step "$BASE from debootstrap ($MIRROR)" base
fi
step "$BUILD (the base plus the CA bundle, for build stages)" build_stage_base
step "reroute-ci/postgres:15 (Debian's PostgreSQL)" \
    docker build -q --build-arg BASE="$BASE" -t reroute-ci/postgres:15 -f deploy/ci/postgres.Dockerfile deploy/ci
step "reroute-ci/nginx:bookworm (Debian's nginx)" \
    docker build -q --build-arg BASE="$BASE" -t reroute-ci/nginx:bookworm -f deploy/ci/nginx.Dockerfile deploy/ci
step "reroute-ci/app:local (deploy/Dockerfile on the Debian base)" \
    docker build -q --build-arg BUILD_IMAGE="$BUILD" --build-arg BASE_IMAGE="$BASE" -t reroute-ci/app:local \
    -f deploy/Dockerfile .
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' 'reroute-ci/*'
