#!/usr/bin/env bash
# apply --try on real nodes (network namespaces, wireguard-go), issue 14:
#  a) a try that moves the hub (a controller) to a port no peer dials is rolled back within its
#     window, and every session returns: `wg show` (port, peers, endpoints), `ip route` and
#     wg-fleet's nft table are as before, byte for byte. The break is real: the hub's underlay
#     drops the new port, so roaming cannot save the sessions. The rolled-back desired state is
#     then held: a plain apply refuses it, plan says so.
#  b) a good try (a keepalive change) is kept after its automatic confirmation; one with
#     --manual is kept after `wg-fleet confirm`.
#  c) a try whose apply process is SIGKILLed: plan shows it, another apply refuses it before its
#     deadline, the next apply after the deadline rolls it back (and does nothing else).
#  d) --probe false on a good change is rolled back; --probe true confirms it.
#  (a and d: the process that waited plans its rollback from its last check's device read.)
#  e) watch --try: a broken edit rolled back by watch, which goes on; the next good edit confirmed.
# The journal names every try, confirmation and rollback.
# Usage: try_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
use_sandbox try
trap '"$bin" sandbox down --name "$name" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# keepalive 1: the peers send to the hub every second, so a session that works shows received
# bytes within the (short) windows of this test, and one that is broken shows none.
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
# Good edits: the keepalive the hub sets on its peers.
for k in 2 3 4 5; do sed "s|^    keepalive: 1$|    keepalive: $k|" "$tmp/fleet.yaml" > "$tmp/ka$k.yaml"; done

check "sandbox up" "$bin" -q sandbox --name "$name" up "$tmp/fleet.yaml"
state=/run/wg-fleet-sandbox/$name/nodes/hub/state
hub() { in_node hub wg-fleet -c "$1" "${@:2}"; }
hub6=$(in_node hub ip -6 -o addr show dev home scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
check "the hub has a fleet address" test -n "$hub6"
reach() { in_node "$1" ping -6 -c1 -W1 "$hub6" >/dev/null 2>&1; }
check "alice reaches the hub" eventually reach alice
check "bob reaches the hub" eventually reach bob

# What the rollback must give back exactly: the device without the moving counters, routes, the
# firewall table. The peers sorted by key: wireguard-go lists them in the order of a Go map,
# which differs from one `wg show` to the next.
snapshot() {
  in_node hub wg show home dump | awk -F'\t' 'NR == 1 {print $3, $4; next} {print $1, $3, $4, $8}' | { IFS= read -r device; echo "$device"; sort; }
  in_node hub ip -6 route show
  in_node hub ip -4 route show
  in_node hub nft list table inet wg-fleet
}
snapshot > "$tmp/before"

# The underlay of the hub lets only the old port through.
in_node hub nft -f - <<'NFT'
table inet trytest {
  chain in { type filter hook input priority -10; udp dport 51821 drop; }
  chain out { type filter hook output priority -10; udp sport 51821 drop; }
}
NFT

## a) a broken try is rolled back, every session returns
hub "$tmp/moved.yaml" -v apply --try 4 > "$tmp/a.out" 2>&1; rc=$?
cat "$tmp/a.out"
check "a) apply --try of the broken port exits 1 (rolled back)" test $rc = 1
check "a) the try moved the port" grep -q "listen port 51820 -> 51821" "$tmp/a.out"
check "a) the rollback is shown as a plan" grep -q "listen port 51821 -> 51820" "$tmp/a.out"
check "a) it says why: the peers did not come back" grep -q "not back: " "$tmp/a.out"
check "a) the rollback planned from the waiting process's last check (one device read)" grep -q "timing of the rollback: .*device(s) from the last poll" "$tmp/a.out"
check "a) no pending try left" test ! -e "$state/try.json"
snapshot > "$tmp/after"
check "a) wg show (port, peers, endpoints), ip route and the nft table as before, byte for byte" cmp "$tmp/before" "$tmp/after"
diff "$tmp/before" "$tmp/after"
check "a) alice's session returns" eventually reach alice
check "a) bob's session returns" eventually reach bob
check "a) the journal has the try, its rollback and the rollback's operations" \
  bash -c "grep -q 'ok try .* started: window 4 s' $state/journal.log && grep -q 'ok try .* rolled back (deadline passed; not back:' $state/journal.log && grep -q 'ok ~ device home: listen port 51821 -> 51820' $state/journal.log"
# The file still holds the broken state: a plain apply refuses it, plan says why.
hub "$tmp/moved.yaml" apply > "$tmp/held.out" 2>&1; rc=$?
check "a) a plain apply of the rolled-back file exits 1" test $rc = 1
check "a) ... naming the ways on" grep -q -- "--force-rolled-back" "$tmp/held.out"
check "a) ... and changes nothing" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home listen-port) == 51820 ]]"
check "a) plan shows the hold" bash -c "\"$bin\" sandbox exec --name $name hub wg-fleet -c $tmp/moved.yaml plan | grep -q '^held: '"

## b) a good try is confirmed by the peers' traffic; --manual by wg-fleet confirm
hub "$tmp/ka2.yaml" apply --try 30 > "$tmp/b.out" 2>&1; rc=$?
cat "$tmp/b.out"
check "b) a good try exits 0 (confirmed)" test $rc = 0
check "b) confirmed by the peers' health" grep -q "confirmed (health: 2 peer(s) back)" "$tmp/b.out"
check "b) the change stays" bash -c "\"$bin\" sandbox exec --name $name hub wg show home persistent-keepalive | awk '{print \$2}' | sort -u | grep -qx 2"
check "b) no pending try left" test ! -e "$state/try.json"
hub "$tmp/ka3.yaml" apply --try 60 --manual > "$tmp/bm.out" 2>&1 &
waiting=$!
check "b) --manual: the try is pending" eventually test -e "$state/try.json"
check "b) status shows the pending try" bash -c "\"$bin\" sandbox exec --name $name hub wg-fleet -c $tmp/ka3.yaml status | grep -q '^pending try .*rollback in'"
hub "$tmp/ka3.yaml" apply > "$tmp/refused.out" 2>&1; rc=$?
check "b) another apply refuses while a try is pending" test $rc = 1
check "b) ... saying how to go on" grep -q "confirm it with \`wg-fleet confirm\`" "$tmp/refused.out"
check "b) wg-fleet confirm" hub "$tmp/ka3.yaml" confirm
wait $waiting; rc=$?
cat "$tmp/bm.out"
check "b) the --manual try exits 0 after confirm" test $rc = 0
check "b) ... confirmed manually" grep -q "confirmed (manual)" "$tmp/bm.out"
check "b) the manual change stays" bash -c "\"$bin\" sandbox exec --name $name hub wg show home persistent-keepalive | awk '{print \$2}' | sort -u | grep -qx 3"

## c) a try whose process is SIGKILLed is rolled back by the next run after its deadline
hub "$tmp/moved.yaml" apply --try 10 --manual > "$tmp/c.out" 2>&1 &
killed=$!
# Killed as soon as its record is written and its apply done (it prints the deadline then).
check "c) the try is applied" eventually grep -q "^Try .* applied;" "$tmp/c.out"
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/try.json")
deadline=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deadline"])' "$state/try.json")
kill -KILL "$pid"
wait $killed
cat "$tmp/c.out"
check "c) the port is the try's" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home listen-port) == 51821 ]]"
check "c) plan shows the pending try" bash -c "\"$bin\" sandbox exec --name $name hub wg-fleet -c $tmp/fleet.yaml plan | grep -q '^pending try '"
# Wait out the deadline (not a timing assertion: the rollback must wait for it).
while (( $(date +%s) <= deadline )); do sleep 0.2; done
check "c) the port is still the try's (nobody rolled it back yet)" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home listen-port) == 51821 ]]"
hub "$tmp/fleet.yaml" apply > "$tmp/c2.out" 2>&1; rc=$?
cat "$tmp/c2.out"
check "c) the next apply rolls it back (exit 1: it did nothing else)" test $rc = 1
check "c) ... saying so" grep -q "Rolled back try" "$tmp/c2.out"
check "c) the port is back" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home listen-port) == 51820 ]]"
check "c) no pending try left" test ! -e "$state/try.json"
check "c) alice's session returns" eventually reach alice
check "c) bob's session returns" eventually reach bob

## d) --probe
hub "$tmp/ka4.yaml" -v apply --try 5 --probe false > "$tmp/d.out" 2>&1; rc=$?
cat "$tmp/d.out"
check "d) --probe false is rolled back (exit 1)" test $rc = 1
check "d) ... because the probe failed" grep -q "the probe failed" "$tmp/d.out"
check "d) ... planned from the last check's read" grep -q "timing of the rollback: .*device(s) from the last poll" "$tmp/d.out"
check "d) the keepalive is back to 3" bash -c "\"$bin\" sandbox exec --name $name hub wg show home persistent-keepalive | awk '{print \$2}' | sort -u | grep -qx 3"
hub "$tmp/ka5.yaml" apply --try 30 --probe true > "$tmp/d2.out" 2>&1; rc=$?
cat "$tmp/d2.out"
check "d) --probe true on a good change is confirmed (exit 0)" test $rc = 0
check "d) ... by health and probe" grep -q "confirmed (health: 2 peer(s) back; probe)" "$tmp/d2.out"
check "d) the keepalive is 5" bash -c "\"$bin\" sandbox exec --name $name hub wg show home persistent-keepalive | awk '{print \$2}' | sort -u | grep -qx 5"
check "the journal has every confirmation" bash -c "[[ \$(grep -c 'ok try .* confirmed (' $state/journal.log) == 3 ]]"
check "the journal has every rollback" bash -c "[[ \$(grep -c 'ok try .* rolled back (' $state/journal.log) == 3 ]]"

## e) watch --try: an edit that breaks is rolled back by watch, which goes on and holds the
## restored state; the next good edit is confirmed.
cp "$tmp/ka5.yaml" "$tmp/watched.yaml"
in_node_bg hub wg-fleet -c "$tmp/watched.yaml" watch --try 4 --interval 3600 > "$tmp/watch.log" 2>&1 &
watcher=$!
check "e) watch starts converged" eventually grep -q "converged\|watching" "$tmp/watch.log"
sleep 1
cp "$tmp/moved.yaml" "$tmp/watched.yaml.new" && mv "$tmp/watched.yaml.new" "$tmp/watched.yaml"
check "e) the broken edit is rolled back by watch" eventually grep -q "Rolled back try" "$tmp/watch.log"
check "e) the port is back" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home listen-port) == 51820 ]]"
check "e) alice's session returns" eventually reach alice
cp "$tmp/ka4.yaml" "$tmp/watched.yaml.new" && mv "$tmp/watched.yaml.new" "$tmp/watched.yaml"
check "e) the next good edit is confirmed" eventually grep -q "confirmed (health" "$tmp/watch.log"
check "e) ... and in force" bash -c "\"$bin\" sandbox exec --name $name hub wg show home persistent-keepalive | awk '{print \$2}' | sort -u | grep -qx 4"
for p in $(ip netns pids "wgfsb-$name-hub" 2>/dev/null); do
  tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "watch --try" && kill "$p"
done
wait $watcher
cat "$tmp/watch.log"

check "sandbox down" "$bin" sandbox down --name "$name"
finish
