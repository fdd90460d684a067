#!/usr/bin/env bash
# The main job on the embedded default: fabric-manager on SQLite and four
# simulated node agents, each a separate process, on a ring. Memory is lent
# across the ring, proven by bytes, rerouted around a failed link and proven
# again; then the manager is killed with -9, restarted, and everything is
# still there. Every connection is mutual TLS: a CA made by deploy/pki.sh in
# the demo's state directory, a certificate for the manager, one per node and
# one for the admin user fabricctl runs as (FABRIC_TLS_* in its environment).
# Then a simulated kubelet runs a pod with a remote VF and remote memory
# through fabric-device-plugin, and deletes it: the plugin frees both.
# Usage: deploy/demo.sh BIN_DIR   (deploy/dev.sh demo passes build/bin)
set -euo pipefail

BIN="$(cd "${1:-build/bin}" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d -t fabric-demo-XXXXXX)"
NODES=(n1 n2 n3 n4)
MANAGER_PID=""
AGENT_PIDS=()
PLUGIN_PID=""
SIM_PID=""
# The kubelet's sockets: under /tmp, short (unix socket paths are at most
# 107 bytes).
KUBELET="$(mktemp -d /tmp/fabric-kubelet-XXXXXX)"

# shellcheck source=deploy/demo_lib.sh
. "$ROOT/deploy/demo_lib.sh"

cleanup() {
  stop_pids $SIM_PID $PLUGIN_PID "${AGENT_PIDS[@]}" $MANAGER_PID
  rm -rf "$WORK" "$KUBELET"
}
trap cleanup EXIT

STARTS=0
start_manager() {
  STARTS=$((STARTS + 1))
  local log="$WORK/manager-$STARTS.log"
  # A fixed port, so that the agents find the restarted manager again.
  # shellcheck disable=SC2046 # the flags are words without spaces
  "$BIN/fabric-manager" --db "$WORK/fabric.db" --listen "127.0.0.1:${PORT:-0}" \
    --heartbeat-timeout 2s $(tls_flags manager-m1) \
    --policy "$ROOT/deploy/policy/policy.textproto" --audit-log "$WORK/audit.log" \
    >"$log" 2>&1 &
  MANAGER_PID=$!
  PORT=$(manager_port "$log")
  export FABRIC_SERVER="127.0.0.1:$PORT"
}

step "0. A certificate authority, and a certificate for every program"
make_pki m1
echo "CA and certificates in $PKI: manager/m1, node/n1..n4, user/admin (admin), user/watcher (viewer)"

step "1. Start fabric-manager (SQLite) and four simulated node agents"
start_manager
echo "fabric-manager on $FABRIC_SERVER, state in $WORK/fabric.db"
start_agents "$FABRIC_SERVER"
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
wait_ready 3
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
echo "(refused, as the policy says: deploy/policy/policy.textproto)"
echo "\$ tail -n 3 $WORK/audit.log"
tail -n 3 "$WORK/audit.log"

step "9. Kubernetes: a pod asks for one remote VF and two remote memory chunks"
# fabric-device-plugin for n1, as n1 (its certificate), lists what the
# manager offers n1. No kubelet runs here: fabric-kubelet-sim serves the
# kubelet's device-plugin and PodResources APIs from their upstream protos
# and runs one pod: preferred devices, Allocate (attached and READY), the
# CDI specs; then it deletes the pod, and the plugin frees both claims.
# shellcheck disable=SC2046 # the flags are words without spaces
"$BIN/fabric-device-plugin" --manager "$FABRIC_SERVER" --node n1 \
  --kubelet-dir "$KUBELET" --cdi-dir "$WORK/cdi" --memory-chunk 64Mi \
  --pod-resources-socket "$KUBELET/pod-resources.sock" \
  --release-grace 1s --pod-resources-interval 200ms \
  $(tls_flags node-n1) >"$WORK/plugin.log" 2>&1 &
PLUGIN_PID=$!
"$BIN/fabric-kubelet-sim" --kubelet-dir "$KUBELET" \
  --pod-resources-socket "$KUBELET/pod-resources.sock" --cdi-dir "$WORK/cdi" \
  --vfs 1 --memory 2 --end-pod-on "$WORK/end-pod" >"$WORK/kubelet.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 1 600); do
  grep -q "is running" "$WORK/kubelet.log" && break
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.05
done
cat "$WORK/kubelet.log"
grep -q "is running" "$WORK/kubelet.log" || {
  echo "the pod did not start; the plugin's log:" >&2
  cat "$WORK/plugin.log" >&2
  exit 1
}
SHOWN=$(wc -l <"$WORK/kubelet.log")
echo "The claims are the plugin's, owned by node/n1:"
ctl get attachments --node n1
ctl get allocations --node n1
touch "$WORK/end-pod"
if ! wait "$SIM_PID"; then
  SIM_PID=""
  tail -n +"$((SHOWN + 1))" "$WORK/kubelet.log"
  echo "the plugin did not free the pod's devices; its log:" >&2
  cat "$WORK/plugin.log" >&2
  exit 1
fi
SIM_PID=""
tail -n +"$((SHOWN + 1))" "$WORK/kubelet.log"
ctl get attachments --node n1
stop_pids $PLUGIN_PID
PLUGIN_PID=""

step "10. kill -9 the manager and restart it: nothing acknowledged is lost"
{ kill -9 "$MANAGER_PID" && wait "$MANAGER_PID"; } 2>/dev/null || true
echo "killed fabric-manager (pid $MANAGER_PID); restarting on the same database"
start_manager
wait_ready 3
ctl get allocations
ctl verify --all

step "Done: cleaning up"
