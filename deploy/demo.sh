#!/usr/bin/env bash
# The main job on the embedded default: a manager on SQLite, an 8-node ring,
# memory lent between several pairs, the maps and allocations, then a
# kill -9 of the manager, a restart, and proof that the state is intact.
# Usage: deploy/demo.sh BIN_DIR   (deploy/dev.sh demo passes build/bin)
set -euo pipefail

BIN="$(cd "${1:-build/bin}" && pwd)"
WORK="$(mktemp -d -t fabric-demo-XXXXXX)"
MANAGER_PID=""
cleanup() {
  if [ -n "$MANAGER_PID" ]; then
    { kill "$MANAGER_PID" && wait "$MANAGER_PID"; } 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1;34m## %s\033[0m\n' "$*"; }

STARTS=0
start_manager() {
  STARTS=$((STARTS + 1))
  local log="$WORK/manager-$STARTS.log"
  "$BIN/fabric-manager" --db "$WORK/fabric.db" --listen 127.0.0.1:0 \
    >"$log" 2>&1 &
  MANAGER_PID=$!
  local port=""
  for _ in $(seq 1 500); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" |
      tail -n 1 | sed 's/.*://') || true
    [ -n "$port" ] && break
    sleep 0.02
  done
  if [ -z "$port" ]; then
    echo "fabric-manager did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  export FABRIC_SERVER="127.0.0.1:$port"
  echo "fabric-manager (pid $MANAGER_PID) on $FABRIC_SERVER, state in $WORK/fabric.db"
}

ctl() {
  echo "\$ fabricctl $*"
  "$BIN/fabricctl" "$@"
}

step "1. Start the manager on SQLite"
start_manager

step "2. Declare an 8-node ring (port 2 of bridge i wired to port 1 of bridge i+1)"
ctl create ring lab --nodes n1,n2,n3,n4,n5,n6,n7,n8 --profile sim --export 4GiB
ctl get links

step "3. Lend memory between several pairs"
ctl alloc mem --from n1 --to n3 --size 64MiB --owner demo --request-id demo-1
ctl alloc mem --from n2 --to n7 --size 1GiB --owner demo --request-id demo-2
ctl alloc mem --from n5 --to n1 --size 2MiB --owner demo --request-id demo-3
ctl alloc mem --from n8 --to n4 --size 256MiB --owner demo --ttl 1h --request-id demo-4
echo "(PENDING: no agents run in this demo, so nothing has been applied to hardware yet)"

step "4. The address maps: what each bridge claims and forwards"
ctl get maps n1
ctl get maps n5
ctl get bridges

step "5. The allocations"
ctl get allocations
"$BIN/fabricctl" get allocations -o json >"$WORK/before.json"
"$BIN/fabricctl" get maps -o json >"$WORK/maps-before.json"

step "6. kill -9 the manager, restart it on the same database"
{ kill -9 "$MANAGER_PID" && wait "$MANAGER_PID"; } 2>/dev/null || true
echo "killed pid $MANAGER_PID"
start_manager

step "7. The state after the restart"
ctl get allocations
"$BIN/fabricctl" get allocations -o json >"$WORK/after.json"
"$BIN/fabricctl" get maps -o json >"$WORK/maps-after.json"
# Generations are per manager epoch; everything else must be identical.
strip() { grep -v -e '"generation"' -e '"requiredGeneration"' "$1"; }
if diff <(strip "$WORK/before.json") <(strip "$WORK/after.json") >/dev/null &&
   diff <(strip "$WORK/maps-before.json") <(strip "$WORK/maps-after.json") >/dev/null; then
  echo "state intact: allocations and maps are identical after kill -9"
else
  echo "STATE DIFFERS after restart:" >&2
  diff <(strip "$WORK/before.json") <(strip "$WORK/after.json") >&2 || true
  exit 1
fi

step "8. A retried request returns the original allocation (no double grant)"
ctl alloc mem --from n1 --to n3 --size 64MiB --owner demo --request-id demo-1

step "Done"
