#!/usr/bin/env bash
# HA on etcd (issue 14): three etcd members and two fabric-managers on them,
# one the leader and one a standby, and four simulated node agents that dial
# both (--manager m1,m2). Memory is lent across the ring and proven by bytes;
# then the leader is killed with -9: the standby takes over within the lease
# TTL, the agents re-register with it, fabricctl (--server m1,m2) follows it,
# allocation goes on and every grant still verifies by bytes. Everything runs
# on loopback in a temporary directory and is killed on exit; every fabric
# connection is mutual TLS (deploy/pki.sh), as in deploy/demo.sh.
# Usage: deploy/demo-ha.sh BIN_DIR   (deploy/dev.sh demo-ha passes build/bin)
set -euo pipefail

BIN="$(cd "${1:-build/bin}" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d -t fabric-demo-ha-XXXXXX)"
ETCD="${ETCD:-etcd}"
ETCDCTL="${ETCDCTL:-etcdctl}"
NODES=(n1 n2 n3 n4)
AGENT_PIDS=()
ETCD_PIDS=()
declare -A MANAGER_PID MANAGER_ADDR

# shellcheck source=deploy/demo_lib.sh
. "$ROOT/deploy/demo_lib.sh"

cleanup() {
  stop_pids "${AGENT_PIDS[@]}" "${MANAGER_PID[@]}"
  SIG=KILL stop_pids "${ETCD_PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT

# A TCP port on 127.0.0.1 that nobody listens on (and not handed out before).
TAKEN=" "
free_port() {
  local p
  while true; do
    p=$((20000 + RANDOM % 30000))
    case "$TAKEN" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN="$TAKEN$p "
      echo "$p"
      return
    fi
  done
}

# Three etcd members on loopback; ENDPOINTS is their client addresses.
start_etcd() {
  local names=(e1 e2 e3) peers=() clients=() i
  for i in 0 1 2; do
    clients[i]=$(free_port)
    peers[i]=$(free_port)
  done
  local cluster=""
  for i in 0 1 2; do
    cluster="$cluster${cluster:+,}${names[i]}=http://127.0.0.1:${peers[i]}"
  done
  for i in 0 1 2; do
    "$ETCD" --name "${names[i]}" --data-dir "$WORK/etcd-${names[i]}" \
      --listen-client-urls "http://127.0.0.1:${clients[i]}" \
      --advertise-client-urls "http://127.0.0.1:${clients[i]}" \
      --listen-peer-urls "http://127.0.0.1:${peers[i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${peers[i]}" \
      --initial-cluster "$cluster" --initial-cluster-token fabric-demo-ha \
      --initial-cluster-state new \
      >"$WORK/etcd-${names[i]}.log" 2>&1 &
    ETCD_PIDS+=($!)
  done
  ENDPOINTS=""
  for i in 0 1 2; do ENDPOINTS="$ENDPOINTS${ENDPOINTS:+,}127.0.0.1:${clients[i]}"; done
  for _ in $(seq 1 500); do
    ETCDCTL_API=3 "$ETCDCTL" --endpoints "$ENDPOINTS" endpoint health \
      >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "etcd did not become healthy; logs in $WORK:" >&2
  tail -n 5 "$WORK"/etcd-*.log >&2
  exit 1
}

# Starts manager NAME (m1, m2) on the etcd cluster; it serves as a standby
# until elected.
start_ha_manager() {
  local name=$1 log="$WORK/manager-$1.log"
  # shellcheck disable=SC2046 # the flags are words without spaces
  "$BIN/fabric-manager" --store "etcd://$ENDPOINTS/fabric-demo" \
    --lease-ttl 2s --listen 127.0.0.1:0 --heartbeat-timeout 2s \
    $(tls_flags "manager-$name") --policy "$ROOT/deploy/policy/policy.textproto" \
    --audit-log "$WORK/audit-$name.log" >"$log" 2>&1 &
  MANAGER_PID[$name]=$!
  MANAGER_ADDR[$name]="127.0.0.1:$(manager_port "$log")"
}

# The manager whose log says it was elected, waiting for one (of those given).
wait_leader() {
  for _ in $(seq 1 500); do
    for m in "$@"; do
      if grep -q 'elected leader' "$WORK/manager-$m.log"; then
        echo "$m"
        return
      fi
    done
    sleep 0.02
  done
  echo "no manager of $* was elected; logs in $WORK" >&2
  exit 1
}

# `fabricctl get managers`, where this fabricctl has it.
show_managers() {
  if "$BIN/fabricctl" get managers >/dev/null 2>&1; then ctl get managers; fi
}

step "0. A certificate authority, and a certificate for every program"
make_pki m1 m2
echo "CA and certificates in $PKI: manager/m1, manager/m2, node/n1..n4, user/admin, user/watcher"

step "1. Three etcd members on loopback"
start_etcd
echo "etcd at $ENDPOINTS (data in $WORK)"

step "2. Two fabric-managers on etcd: one is elected, the other stands by"
start_ha_manager m1
start_ha_manager m2
export FABRIC_SERVER="${MANAGER_ADDR[m1]},${MANAGER_ADDR[m2]}"
LEADER=$(wait_leader m1 m2)
echo "m1 on ${MANAGER_ADDR[m1]}, m2 on ${MANAGER_ADDR[m2]}; the leader is $LEADER"
show_managers

step "3. Four simulated node agents that dial both managers"
start_agents "$FABRIC_SERVER"
echo "agents ${NODES[*]} started with --manager $FABRIC_SERVER"

step "4. Declare the ring and lend memory across it"
ctl apply -f "$ROOT/deploy/examples/ring-vf.json"
ctl alloc mem --from n1 --to n3 --size 64MiB --wait
ctl alloc mem --from n2 --to n4 --size 16MiB --wait
ctl verify --all

step "5. kill -9 the leader ($LEADER): the standby takes over"
SIG=KILL stop_pids "${MANAGER_PID[$LEADER]}"
unset "MANAGER_PID[$LEADER]"
OTHER=$([ "$LEADER" = m1 ] && echo m2 || echo m1)
echo "killed $LEADER; asking at once: fabricctl retries until $OTHER is elected"
echo "(within the lease TTL, 2s) and answers from there; the new leader shows"
echo "allocations PENDING until the agents registered with it and reported"
ctl get allocations
wait_leader "$OTHER" >/dev/null
echo "$OTHER is the leader now"
show_managers
for n in "${NODES[@]}"; do
  wait_for_line "$WORK/agent-$n.log" "registered with ${MANAGER_ADDR[$OTHER]}" \
    "fabric-agent $n" >/dev/null
done
echo "every agent registered with $OTHER"
# fabricctl follows the leader: the allocations stay READY and their bytes
# still verify.
wait_ready 2
ctl get allocations
ctl verify --all

step "6. Allocation goes on, on the new leader"
ctl alloc mem --from n4 --to n1 --size 2MiB --wait
wait_ready 3
ctl get allocations
ctl verify --all

step "Done: cleaning up"
