#!/usr/bin/env bash
# Developer entry point. Subcommands:
#   deps   install the Debian packages the build needs (idempotent)
#   build  Release build; binaries land in build/bin/
#   test   deps, build, then every test through ctest
#   demo   deps, build, then the main job on the embedded default (SQLite)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libpci-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
)

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "deps: all ${#PACKAGES[@]} Debian packages present"
    return
  fi
  log "deps: installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
}

build() {
  log "build: Release into $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

run_tests() {
  log "test: ctest"
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" \
    --timeout 600
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  test) deps; build; run_tests ;;
  demo) deps; build; exec bash "$ROOT/deploy/demo.sh" "$BUILD_DIR/bin" ;;
  *)
    echo "usage: $0 deps|build|test|demo" >&2
    exit 2
    ;;
esac
