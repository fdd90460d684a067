#!/usr/bin/env bash
# The main job on the embedded default: fabric-manager on SQLite and four
# simulated node agents, each a separate process, on a ring. Memory is lent
# across the ring, proven by bytes, rerouted around a failed link and proven
# again; then the manager is killed with -9, restarted, and everything is
# still there. Every connection is mutual TLS: a CA made by deploy/pki.sh in
# the demo's state directory, a certificate for the manager, one per node and
# one for the admin user fabricctl runs as (FABRIC_TLS_* in its environment).
# Usage: deploy/demo.sh BIN_DIR   (deploy/dev.sh demo passes build/bin)
set -euo pipefail

BIN="$(cd "${1:-build/bin}" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d -t fabric-demo-XXXXXX)"
NODES=(n1 n2 n3 n4)
MANAGER_PID=""
AGENT_PIDS=()

cleanup() {
  for pid in "${AGENT_PIDS[@]}" $MANAGER_PID; do
    { kill "$pid" && wait "$pid"; } 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1;34m## %s\033[0m\n' "$*"; }
ctl() {
  echo "\$ fabricctl $*"
  "$BIN/fabricctl" "$@"
}

STARTS=0
start_manager() {
  STARTS=$((STARTS + 1))
  local log="$WORK/manager-$STARTS.log" port=""
  # A fixed port, so that the agents find the restarted manager again.
  # shellcheck disable=SC2046 # the flags are words without spaces
  "$BIN/fabric-manager" --db "$WORK/fabric.db" --listen "127.0.0.1:${PORT:-0}" \
    --heartbeat-timeout 2s $(tls_flags manager-m1) \
    --policy "$ROOT/deploy/policy.textproto" --audit-log "$WORK/audit.log" \
    >"$log" 2>&1 &
  MANAGER_PID=$!
  for _ in $(seq 1 500); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | sed 's/.*://') || true
    [ -n "$port" ] && break
    sleep 0.02
  done
  if [ -z "$port" ]; then
    echo "fabric-manager did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  PORT=$port
  export FABRIC_SERVER="127.0.0.1:$port"
}

step "0. A certificate authority, and a certificate for every program"
PKI="$WORK/pki"
"$ROOT/deploy/pki.sh" init "$PKI"
"$ROOT/deploy/pki.sh" issue "$PKI" manager m1
for n in "${NODES[@]}"; do "$ROOT/deploy/pki.sh" issue "$PKI" node "$n"; done
"$ROOT/deploy/pki.sh" issue "$PKI" user admin --role admin
"$ROOT/deploy/pki.sh" issue "$PKI" user watcher --role viewer
# KIND-NAME's flags: --tls-cert, --tls-key and --tls-ca.
tls_flags() {
  echo --tls-cert "$PKI/$1.crt" --tls-key "$PKI/$1.key" --tls-ca "$PKI/ca.crt"
}
# fabricctl reads its certificate from the environment: it is user/admin.
export FABRIC_TLS_CERT="$PKI/user-admin.crt"
export FABRIC_TLS_KEY="$PKI/user-admin.key"
export FABRIC_TLS_CA="$PKI/ca.crt"
echo "CA and certificates in $PKI: manager/m1, node/n1..n4, user/admin (admin), user/watcher (viewer)"

step "1. Start fabric-manager (SQLite) and four simulated node agents"
start_manager
echo "fabric-manager on $FABRIC_SERVER, state in $WORK/fabric.db"
for n in "${NODES[@]}"; do
  extra=()
  # n3 also has an SR-IOV NIC and an NVMe drive whose VFs it can lend.
  [ "$n" = n3 ] && extra=(--sim-hardware "$ROOT/deploy/examples/lender-host.json")
  # shellcheck disable=SC2046
  "$BIN/fabric-agent" --manager "$FABRIC_SERVER" --node "$n" --backend sim \
    --sim-dir "$WORK/sim" $(tls_flags "node-$n") "${extra[@]}" \
    >"$WORK/agent-$n.log" 2>&1 &
  AGENT_PIDS+=($!)
done
echo "agents ${NODES[*]} started; the simulator keeps each host's memory and"
echo "bridge registers as files under $WORK/sim"

step "2. Declare the ring: port 2 of each bridge cabled to port 1 of the next"
# deploy/examples/ring-vf.json: n1..n4, 1 GiB each, n3 declares its device MMIO.
ctl apply -f "$ROOT/deploy/examples/ring-vf.json"
ctl get links

step "3. Lend memory across the ring and wait until the agents applied it"
# The owner of each is the caller's identity, user/admin.
ctl alloc mem --from n1 --to n3 --size 64MiB --wait
ctl alloc mem --from n2 --to n4 --size 16MiB --wait
ctl alloc mem --from n4 --to n1 --size 2MiB --wait

step "4. Prove it with bytes: each borrower writes a pattern, the target reads it back"
ctl verify --all

step "5. The address map of bridge n1: what it claims, forwards and translates"
ctl get maps n1

step "6. Take link n1--n2 down: the maps are recomputed and traffic goes the other way"
ctl link down n1 n2
wait_ready() {
  for _ in $(seq 1 100); do
    ready=$("$BIN/fabricctl" get allocations -o json | grep -c '"READY"' || true)
    [ "$ready" -eq 3 ] && return
    sleep 0.1
  done
}
wait_ready
ctl get allocations
ctl verify --all

step "7. Lend an SR-IOV VF of n3 to n1: shadow device, config space, DMA, interrupts"
for _ in $(seq 1 200); do
  "$BIN/fabricctl" get vfs --node n3 2>/dev/null | grep -q HEALTHY && break
  sleep 0.05
done
ctl get vfs --node n3
ATT=$("$BIN/fabricctl" vf attach --vf n3/0000:3b:02.0 --to n1 --vm vm1 \
        --interrupts auto --wait | head -1 | awk '{print $1}')
echo "attached: $ATT"
ctl vf config "$ATT" read 0x0                 # vendor:device through the shadow
ctl vf config "$ATT" write 0x0 0x1234 --size 2 # protected: dropped and counted
ctl vf setup "$ATT"                            # the borrower's driver starts it
ctl vf verify "$ATT"                           # the VF DMAs into n1's memory
ctl vf interrupt "$ATT" --count 5              # vm1 not running: via the hypervisor
ctl vm start n1 vm1 --core 2                   # queued interrupts injected at entry
ctl vf interrupt "$ATT" --count 5              # vm1 running: direct, no exits
sleep 1.2                                      # counters come with heartbeats
ctl describe attachment "$ATT"
ctl vf detach "$ATT"

step "8. Roles: a viewer reads, but may not change anything; every change is audited"
viewer() {
  echo "\$ fabricctl --tls-cert user-watcher.crt --tls-key user-watcher.key $*"
  "$BIN/fabricctl" --tls-cert "$PKI/user-watcher.crt" \
    --tls-key "$PKI/user-watcher.key" "$@"
}
viewer get allocations
if viewer alloc mem --from n1 --to n2 --size 1MiB; then
  echo "a viewer was allowed to allocate" >&2
  exit 1
fi
echo "(refused, as the policy says: deploy/policy.textproto)"
echo "\$ tail -n 3 $WORK/audit.log"
tail -n 3 "$WORK/audit.log"

step "9. kill -9 the manager and restart it: nothing acknowledged is lost"
{ kill -9 "$MANAGER_PID" && wait "$MANAGER_PID"; } 2>/dev/null || true
echo "killed fabric-manager (pid $MANAGER_PID); restarting on the same database"
start_manager
wait_ready
ctl get allocations
ctl verify --all

step "Done: cleaning up"
