# shellcheck shell=bash
# Shared by deploy/demo.sh and deploy/demo-ha.sh (sourced, not run). The
# caller sets BIN (the binaries), ROOT (the checkout), WORK (the demo's state
# directory), NODES (the simulated nodes) and AGENT_PIDS=().

step() { printf '\n\033[1;34m## %s\033[0m\n' "$*"; }
ctl() {
  echo "\$ fabricctl $*"
  "$BIN/fabricctl" "$@"
}

# Kills each pid given (SIGTERM, or the signal in $SIG) and reaps it.
stop_pids() {
  for pid in "$@"; do
    { kill "-${SIG:-TERM}" "$pid" && wait "$pid"; } 2>/dev/null || true
  done
}

# wait_for_line LOG PATTERN WHAT: waits until LOG has a line matching the
# extended regex PATTERN and prints its first match; exits naming WHAT and
# showing LOG when none comes within 10 s.
wait_for_line() {
  local log=$1 pattern=$2 what=$3 hit=""
  for _ in $(seq 1 500); do
    hit=$(grep -o -E -m 1 "$pattern" "$log" 2>/dev/null) || true
    [ -n "$hit" ] && { echo "$hit"; return; }
    sleep 0.02
  done
  echo "$what: nothing matched '$pattern' in $log:" >&2
  cat "$log" >&2
  exit 1
}

# The port a fabric-manager logging to LOG listens on (its first line).
manager_port() {
  wait_for_line "$1" 'listening on 127\.0\.0\.1:[0-9]+' "fabric-manager" |
    sed 's/.*://'
}

# A CA in $WORK/pki and certificates for the managers named (manager-NAME),
# every node in NODES, user/admin (admin) and user/watcher (viewer).
# fabricctl runs as user/admin: FABRIC_TLS_* are exported.
make_pki() {
  PKI="$WORK/pki"
  "$ROOT/deploy/pki.sh" init "$PKI"
  for m in "$@"; do "$ROOT/deploy/pki.sh" issue "$PKI" manager "$m"; done
  for n in "${NODES[@]}"; do "$ROOT/deploy/pki.sh" issue "$PKI" node "$n"; done
  "$ROOT/deploy/pki.sh" issue "$PKI" user admin --role admin
  "$ROOT/deploy/pki.sh" issue "$PKI" user watcher --role viewer
  export FABRIC_TLS_CERT="$PKI/user-admin.crt"
  export FABRIC_TLS_KEY="$PKI/user-admin.key"
  export FABRIC_TLS_CA="$PKI/ca.crt"
}

# KIND-NAME's flags: --tls-cert, --tls-key and --tls-ca.
tls_flags() {
  echo --tls-cert "$PKI/$1.crt" --tls-key "$PKI/$1.key" --tls-ca "$PKI/ca.crt"
}

# Starts a simulated agent for every node in NODES, dialling MANAGERS (one
# address, or a list).
start_agents() {
  local managers=$1
  for n in "${NODES[@]}"; do
    extra=()
    # n3 also has an SR-IOV NIC and an NVMe drive whose VFs it can lend.
    [ "$n" = n3 ] && extra=(--sim-hardware "$ROOT/deploy/examples/lender-host.json")
    # shellcheck disable=SC2046 # the flags are words without spaces
    "$BIN/fabric-agent" --manager "$managers" --node "$n" --backend sim \
      --sim-dir "$WORK/sim" $(tls_flags "node-$n") "${extra[@]}" \
      >>"$WORK/agent-$n.log" 2>&1 &
    AGENT_PIDS+=($!)
  done
}

# Waits until N allocations are READY (up to 10 s).
wait_ready() {
  local want=$1 ready
  for _ in $(seq 1 100); do
    ready=$("$BIN/fabricctl" get allocations -o json | grep -c '"READY"' || true)
    [ "$ready" -eq "$want" ] && return
    sleep 0.1
  done
}
