#!/usr/bin/env bash
# watch --try on real nodes (network namespaces, wireguard-go): the pending try is a state of the
# loop, not a wait that blocks it, and the state a rollback restored is kept in force.
#  a) SIGTERM with a bad try pending: watch exits at once (not once the try settles), the try
#     stays recorded and in force; the next apply after its deadline rolls it back.
#  b) an edit during a pending try waits for it (said in the log), and is applied as a new try
#     right after the first is rolled back; ticks meanwhile repair nothing.
#  c) held after a rollback: a peer removed by hand and wg-fleet's nft table deleted are repaired
#     by the next tick, back to the restored state; the hold stays; a watch started afterwards
#     repairs too (the restored state is kept in state_dir).
# Usage: watch_try_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
use_sandbox wtry
watcher=
stop_watch() {
  [[ -n $watcher ]] || return 0
  kill -TERM "$watcher" 2>/dev/null
  wait "$watcher" 2>/dev/null
  watcher=
}
trap 'stop_watch; "$bin" sandbox down --name "$name" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# keepalive 1: the peers send to the hub every second, so a session that works shows received
# bytes within the windows of this test, and one that is broken shows none.
cat > "$tmp/fleet.yaml" <<'YAML'
fleets:
  home:
    keepalive: 1
    controllers:
      hub: { endpoint: 10.77.0.1 }
    peers:
      alice: { controller: hub }
      bob: { controller: hub }
YAML
# The broken edit: the hub moves to a port no peer dials (the peers keep the old file).
sed 's|^    keepalive: 1$|    keepalive: 1\n    port: 51821|' "$tmp/fleet.yaml" > "$tmp/moved.yaml"
# A good edit: the keepalive the hub sets on its peers.
sed 's|^    keepalive: 1$|    keepalive: 2|' "$tmp/fleet.yaml" > "$tmp/ka2.yaml"

check "sandbox up" "$bin" -q sandbox --name "$name" up "$tmp/fleet.yaml"
state=/run/wg-fleet-sandbox/$name/nodes/hub/state
hub6=$(in_node hub ip -6 -o addr show dev home scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
check "the hub has a fleet address" test -n "$hub6"
reach() { in_node "$1" ping -6 -c1 -W1 "$hub6" >/dev/null 2>&1; }
check "alice reaches the hub" eventually reach alice
check "bob reaches the hub" eventually reach bob
port() { in_node hub wg show home listen-port; }
port_is() { [[ $(port) == "$1" ]]; }
keepalive_is() { in_node hub wg show home persistent-keepalive | awk '{print $2}' | sort -u | grep -qx "$1"; }
# The underlay of the hub lets only the old port through.
in_node hub nft -f - <<'NFT'
table inet trytest {
  chain in { type filter hook input priority -10; udp dport 51821 drop; }
  chain out { type filter hook output priority -10; udp sport 51821 drop; }
}
NFT

# edit FILE: the watched file replaced by FILE, renamed into place (one edit).
edit() { cp "$1" "$tmp/watched.yaml.new" && mv "$tmp/watched.yaml.new" "$tmp/watched.yaml"; }
# start_watch LOG TRY INTERVAL
start_watch() {
  in_node_bg hub wg-fleet -c "$tmp/watched.yaml" watch --try "$2" --interval "$3" > "$tmp/$1" 2>&1 &
  watcher=$!
}
running() { kill -0 "$watcher" 2>/dev/null; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$state/try.json" "$1"; }

## a) SIGTERM during a pending try
cp "$tmp/fleet.yaml" "$tmp/watched.yaml"
start_watch a.log 30 3600
check "a) watch starts" eventually grep -q "watching" "$tmp/a.log"
edit "$tmp/moved.yaml"
check "a) the broken edit is applied as a try" eventually grep -q "try .* applied: pending try" "$tmp/a.log"
check "a) the try moved the port" port_is 51821
deadline=$(json_field deadline)
kill -TERM "$watcher"
# A bound, not a measurement: the try's window is 30 s, and a watch that waited for its verdict
# would exit only after rolling it back.
exited() { ! running; }
for _ in $(seq 1 80); do exited && break; sleep 0.25; done
check "a) watch exits on SIGTERM with the try pending" exited
wait "$watcher"
watcher=
cat "$tmp/a.log"
check "a) ... saying the try stays pending and how it ends" grep -q "try .* is still pending .*the next apply or watch run after its deadline rolls it back" "$tmp/a.log"
check "a) the try stays recorded" test -e "$state/try.json"
check "a) ... and in force (nobody rolled it back)" port_is 51821
# Wait out the deadline (not a timing assertion: the rollback must wait for it).
while (( $(date +%s) <= deadline )); do sleep 0.2; done
in_node hub wg-fleet -c "$tmp/fleet.yaml" apply > "$tmp/a2.out" 2>&1; rc=$?
cat "$tmp/a2.out"
check "a) the next apply after the deadline rolls it back (exit 1: it did nothing else)" test $rc = 1
check "a) ... saying so" grep -q "Rolled back try" "$tmp/a2.out"
check "a) the port is back" port_is 51820
check "a) no pending try left" test ! -e "$state/try.json"
check "a) alice's session returns" eventually reach alice

## b) an edit during a pending try is applied once the try settles
cp "$tmp/fleet.yaml" "$tmp/watched.yaml"
start_watch b.log 15 2
check "b) watch starts" eventually grep -q "watching" "$tmp/b.log"
edit "$tmp/moved.yaml"
check "b) the broken edit is applied as a try" eventually grep -q "try .* applied: pending try" "$tmp/b.log"
first=$(json_field id)
edit "$tmp/ka2.yaml"
check "b) the edit during the try waits for it" eventually grep -q "waiting for try $first to settle before applying the edit" "$tmp/b.log"
check "b) ... not applied yet: the try is still pending" test "$(json_field id)" = "$first"
check "b) ... the keepalive is still 1" keepalive_is 1
check "b) the first try is rolled back" eventually grep -q "Rolled back try $first" "$tmp/b.log"
check "b) the edit is then applied as a new try" eventually grep -q "applying the edit that waited for try $first" "$tmp/b.log"
check "b) ... which is confirmed" eventually grep -q "confirmed (health: 2 peer(s) back)" "$tmp/b.log"
check "b) the edit is in force" keepalive_is 2
check "b) ... on the old port" port_is 51820
in_node hub wg-fleet -c "$tmp/ka2.yaml" plan > "$tmp/b.plan" 2>&1
cat "$tmp/b.plan"
check "b) plan of the edited file: nothing to do" grep -q "^No changes" "$tmp/b.plan"
check "b) ticks during the try repaired nothing" bash -c "! grep -q 'drift corrected' $tmp/b.log"

## c) held after a rollback: drift from the restored state is repaired
edit "$tmp/moved.yaml"
check "c) the broken edit is rolled back" eventually bash -c "[[ \$(grep -c 'Rolled back try' $tmp/b.log) == 2 ]]"
check "c) the hold is on" test -e "$state/try-held"
check "c) ... with the state it keeps, 0600" bash -c "[[ \$(stat -c %a $state/try-held.json) == 600 ]]"
check "c) ... which holds no private key" bash -c "! grep -qi 'private' $state/try-held.json"
check "c) the port is back" port_is 51820
alice=$(in_node alice wg show home public-key)
has_alice() { in_node hub wg show home peers | grep -qxF "$alice"; }
check "c) the hub has alice as a peer" has_alice
# (Not checked gone afterwards: the next tick may already have put it back.)
check "c) alice removed by hand" in_node hub wg set home peer "$alice" remove
check "c) a tick puts alice back" eventually has_alice
check "c) ... logged as a repair of the held state" eventually grep -q "drift from the state the rollback of try .* restored (held)" "$tmp/b.log"
check "c) ... journaled" grep -q "ok try .* held: drift repaired (tick): " "$state/journal.log"
check "c) the hold stays" test -e "$state/try-held"
check "c) the port is still the restored one" port_is 51820
check "c) alice's session returns" eventually reach alice
in_node hub nft delete table inet wg-fleet
check "c) a tick restores wg-fleet's nft table" eventually bash -c "\"$bin\" sandbox exec --name $name hub nft list table inet wg-fleet >/dev/null 2>&1"
check "c) plan still shows the hold" bash -c "\"$bin\" sandbox exec --name $name hub wg-fleet -c $tmp/moved.yaml plan | grep -q '^held: '"
stop_watch
cat "$tmp/b.log"
# The restored state survives a restart of watch.
in_node hub wg set home peer "$alice" remove
start_watch c.log 15 3600
check "c) a watch started later repairs the held state too" eventually has_alice
check "c) ... at its start" eventually grep -q "start: drift from the state the rollback of try" "$tmp/c.log"
stop_watch
cat "$tmp/c.log"

check "sandbox down" "$bin" sandbox down --name "$name"
finish
