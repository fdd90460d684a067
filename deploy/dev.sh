#!/usr/bin/env bash
# Developer entry point. Subcommands:
#   deps       install the Debian packages the build needs (idempotent)
#   build      Release build; binaries land in build/bin/
#   test       deps, build, every test through ctest; then test-asan, then
#              every fuzz target briefly (FUZZ_SECONDS_CI each) and its
#              corpus as a regression test. What CI runs.
#   test-asan  deps, then a clang build with AddressSanitizer and
#              UndefinedBehaviorSanitizer in build-asan/, and every test
#              there; any finding fails the test that made it
#   fuzz [S]   deps, the libFuzzer targets (tests/fuzz) in build-fuzz/, each
#              run for S seconds (default 20) over a copy of its corpus;
#              fails on any crash, saved in build-fuzz/fuzz-artifacts/
#   demo       deps, build, then the main job on the embedded default (SQLite)
#   demo-ha    deps, build, then HA on etcd: three etcd members, two managers,
#              the leader killed with -9 while allocation goes on
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUILD_ASAN_DIR="${BUILD_ASAN_DIR:-$ROOT/build-asan}"
BUILD_FUZZ_DIR="${BUILD_FUZZ_DIR:-$ROOT/build-fuzz}"
# Seconds each fuzz target runs in `test`.
FUZZ_SECONDS_CI="${FUZZ_SECONDS_CI:-15}"
# The sanitizer builds need clang: libFuzzer exists only there.
SANITIZE_CXX="${SANITIZE_CXX:-clang++-14}"

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libpci-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev openssl
  # fabric-manager's allocator (FABRIC_MALLOC in CMakeLists.txt).
  libjemalloc-dev
  # The device plugin's CDI spec files (issue 15).
  nlohmann-json3-dev
  # HA (issue 14): etcd, etcdctl and etcd's gRPC protos.
  etcd-server etcd-client golang-etcd-server-dev
  # Kubernetes (issue 15): the manifests' test parses kustomize's YAML.
  python3 python3-yaml
  # REST, OpenAPI, metrics and the Python client (issue 16): google/api's
  # protos, protoc-gen-swagger, the HTTP server, the Python gRPC runtime and
  # plugin, and the tests' Prometheus parser and promtool.
  golang-github-grpc-ecosystem-grpc-gateway-dev golang-grpc-gateway
  libcpp-httplib-dev libssl-dev python3-grpcio python3-protobuf
  python3-requests python3-prometheus-client prometheus
  # test-asan and fuzz: clang and its sanitizer and libFuzzer runtimes.
  clang-14 libclang-rt-14-dev
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
  # `kubectl kustomize` builds deploy/kubernetes in the tests; any kubectl
  # will do, else Debian's.
  command -v kubectl >/dev/null || missing+=(kubernetes-client)
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

# The options ctest gives every test of a sanitizer build (the list
# FABRIC_TEST_ENVIRONMENT in CMakeLists.txt), for the fuzz targets run here;
# reports go to stderr, i.e. into the run's log.
sanitizer_env() {
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$ROOT/deploy/sanitizers/lsan.supp:print_suppressions=0"
}

build_asan() {
  log "test-asan: clang build with ASan and UBSan into $BUILD_ASAN_DIR"
  CXX="$SANITIZE_CXX" cmake -S "$ROOT" -B "$BUILD_ASAN_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFABRIC_SANITIZE=address,undefined \
    >/dev/null
  cmake --build "$BUILD_ASAN_DIR" -j "$(nproc)"
}

# sanitized_ctest BUILD_DIR CTEST_ARGS...: ctest in a sanitizer build, then
# the reports its processes wrote (CMake sends them to
# BUILD_DIR/sanitizer-reports/, children of the tests included): any report
# fails, even one from a process whose test passed.
sanitized_ctest() {
  local dir="$1" reports="$1/sanitizer-reports" rc=0
  shift
  rm -rf "$reports"
  mkdir -p "$reports"
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "$@" || rc=$?
  if [ -n "$(ls -A "$reports")" ]; then
    for f in "$reports"/*; do
      printf '\n==> %s\n' "$f"
      cat "$f"
    done
    echo "sanitizer findings: see the reports above ($reports)" >&2
    return 1
  fi
  return "$rc"
}

run_asan_tests() {
  log "test-asan: ctest (sanitizer options are set per test by CMake)"
  sanitized_ctest "$BUILD_ASAN_DIR" --timeout 900
}

build_fuzz() {
  log "fuzz: libFuzzer targets into $BUILD_FUZZ_DIR"
  CXX="$SANITIZE_CXX" cmake -S "$ROOT" -B "$BUILD_FUZZ_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFABRIC_FUZZ=ON >/dev/null
  cmake --build "$BUILD_FUZZ_DIR" -j "$(nproc)" --target fuzz
}

# run_fuzz SECONDS: each target for SECONDS over a scratch copy of its
# corpus (new inputs stay there; nothing is written into the repo), then the
# checked-in corpora replayed through ctest. A crash, a leak, a sanitizer
# finding or a hang (-timeout) fails; the input is kept in
# $BUILD_FUZZ_DIR/fuzz-artifacts/.
run_fuzz() {
  local seconds="$1" failed=() target bin work log_file
  local artifacts="$BUILD_FUZZ_DIR/fuzz-artifacts"
  mkdir -p "$artifacts"
  sanitizer_env
  for bin in "$BUILD_FUZZ_DIR"/fuzz/*_fuzzer; do
    target="$(basename "$bin")"
    work="$(mktemp -d)"
    cp -r "$ROOT/tests/fuzz/corpus/$target" "$work/corpus"
    log_file="$artifacts/$target.log"
    log "fuzz: $target for ${seconds}s"
    if "$bin" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$target-" "$work/corpus" \
        >"$log_file" 2>&1; then
      grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' \
        "$log_file" | tr '\n' ' ' || true
      echo "corpus $(find "$work/corpus" -type f | wc -l) files"
    else
      tail -n 60 "$log_file"
      failed+=("$target")
    fi
    rm -rf "$work"
  done
  if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: crashes in ${failed[*]}; inputs and logs in $artifacts" >&2
    return 1
  fi
  log "fuzz: corpus regression (ctest -L fuzz)"
  sanitized_ctest "$BUILD_FUZZ_DIR" -L fuzz --timeout 600
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  test)
    deps; build; run_tests
    build_asan; run_asan_tests
    build_fuzz; run_fuzz "$FUZZ_SECONDS_CI"
    ;;
  test-asan) deps; build_asan; run_asan_tests ;;
  fuzz) deps; build_fuzz; run_fuzz "${2:-20}" ;;
  demo) deps; build; exec bash "$ROOT/deploy/demo.sh" "$BUILD_DIR/bin" ;;
  demo-ha) deps; build; exec bash "$ROOT/deploy/demo-ha.sh" "$BUILD_DIR/bin" ;;
  *)
    echo "usage: $0 deps|build|test|test-asan|fuzz [SECONDS]|demo|demo-ha" >&2
    exit 2
    ;;
esac
