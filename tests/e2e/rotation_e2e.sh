#!/usr/bin/env bash
# Key rotation under `watch` on every node: the demo fleet (2 controllers, 3 peers) in network
# namespaces with wireguard-go, each node running `watch --interval 1`, one shared keys_dir (the
# sandbox's). All pairs reach each other; alice runs `wg-fleet rotate --at +5s`; every pair pings
# every 100 ms across the switch. No pair without alice loses a packet (the switch touches no
# other session); alice's sessions' outage is measured and printed (a figure, not asserted: timing
# belongs to tests/bench/bench_rotation.sh). After it: all pairs reach each other, alice's new key
# is on every device that has her, the old key nowhere, alice.next.pub is gone, and the journals
# record the rotation.
# Usage: rotation_e2e.sh WG_FLEET_BINARY SOURCE_DIR   (root)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
name=rot$$
tmp=$(mktemp -d /tmp/wgf-rot.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
wgf() { "$bin" -q sandbox --name "$name" "$@"; }
in_node() { local node=$1; shift; "$bin" sandbox exec --name "$name" "$node" "$@"; }
nodes=(hub1 hub2 alice bob carol)
sbdir=/run/wg-fleet-sandbox/$name
keys=$sbdir/keys/demo

cfg=$tmp/fleet.yaml
cp "$src/examples/demo.yaml" "$cfg"
sed -i 's|^keys_dir:.*||' "$cfg"   # the sandbox supplies its own keys directory

check "sandbox up" wgf up "$cfg"
for n in "${nodes[@]}"; do
  in_node_bg "$n" wg-fleet watch --interval 1 >"$tmp/watch-$n.log" 2>&1 &
  pids+=($!)
done
for n in "${nodes[@]}"; do
  check "$n: watch is running" eventually grep -q "watching" "$tmp/watch-$n.log"
done
check "all pairs reach each other before the rotation" wgf test

old=$(cat "$keys/alice.pub")
check "alice has a published key" test -n "$old"

# Every pair, one ping each way of the pair's round trip, every 100 ms, across the switch.
count=170
pairs=()
for ((i = 0; i < ${#nodes[@]}; i++)); do
  for ((j = i + 1; j < ${#nodes[@]}; j++)); do
    a=${nodes[i]} b=${nodes[j]}
    pairs+=("$a-$b")
    in_node_bg "$a" ping -n -i 0.1 -c "$count" -W 1 "$b.demo" >"$tmp/ping-$a-$b.log" 2>&1 &
    pids+=($!)
    ping_pids+=($!)
  done
done
sleep 3
check "rotate (alice, switch in 5 s)" bash -c "\"$bin\" sandbox exec --name $name alice wg-fleet rotate --at +5s >$tmp/rotate.out 2>&1"
cat "$tmp/rotate.out"
check "rotate printed the switch time" grep -q "switch at 20" "$tmp/rotate.out"
check "rotate did not print the private key" bash -c "! grep -qF -f <(cat $sbdir/nodes/alice/state/demo.key.next) $tmp/rotate.out"
check "the next private key is 0600" test "$(stat -c %a "$sbdir/nodes/alice/state/demo.key.next")" = 600
check "alice.next.pub is published with its switch time" grep -q "^switch_at: 20" "$keys/alice.next.pub"
new=$(sed -n 's/^public_key: //p' "$keys/alice.next.pub")
check "the next key differs from the old one" test -n "$new" -a "$new" != "$old"
for p in "${ping_pids[@]}"; do wait "$p"; done

# Lost packets per pair: a pair with alice is her session (through a hub for the peers); any
# other pair must lose nothing.
for pair in "${pairs[@]}"; do
  log=$tmp/ping-$pair.log
  sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$log")
  got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$log")
  lost=$(( ${sent:-0} - ${got:-0} ))
  # The longest run of missing replies, from the sequence numbers that came back.
  gap=$(sed -n 's/.*icmp_seq=\([0-9]*\) .*/\1/p' "$log" | sort -n | uniq | awk -v n="$count" '
    BEGIN { prev = 0; max = 0 } { if ($1 - prev - 1 > max) max = $1 - prev - 1; prev = $1 } END { if (n - prev > max) max = n - prev; print max }')
  case $pair in
    *alice*) echo "outage $pair: $lost of $sent lost, longest gap $gap packets = $(awk -v g="$gap" 'BEGIN { printf "%.1f", g * 0.1 }') s"
             check "$pair: replies came back (sent ${sent:-0}, received ${got:-0})" test "${got:-0}" -gt 0 ;;
    *) check "$pair (no alice): no packet lost across the switch ($lost of $sent)" test "${sent:-0}" -eq "$count" -a "$lost" -eq 0 ;;
  esac
done

check "alice.next.pub is gone" eventually test ! -e "$keys/alice.next.pub"
check "the next key file moved into place" test ! -e "$sbdir/nodes/alice/state/demo.key.next"
check "alice.pub holds the new key" test "$(cat "$keys/alice.pub")" = "$new"
check "alice's device has the new key" test "$(in_node alice wg show demo public-key)" = "$new"
for n in hub1 hub2; do
  check "$n has alice's new key" eventually bash -c "\"$bin\" sandbox exec --name $name $n wg show demo peers | grep -qxF '$new'"
done
for n in "${nodes[@]}"; do
  check "$n: the old key is nowhere" bash -c "! \"$bin\" sandbox exec --name $name $n wg show demo dump | grep -qF '$old'"
done
check "all pairs reach each other after the rotation" wgf test
check "alice's journal: rotation scheduled" grep -q "rotation scheduled: fleet demo" "$sbdir/nodes/alice/state/journal.log"
check "alice's journal: key switched" grep -q "key switched: .*demo.key.next moved to" "$sbdir/nodes/alice/state/journal.log"
check "hub1's journal: the peer key swap" grep -q "peer alice .* key swap (new key" "$sbdir/nodes/hub1/state/journal.log"
check "hub1's watch logged the swap once" test "$(grep -c "peer key swapped: alice on demo" "$tmp/watch-hub1.log")" = 1
grep -h "key switched\|peer key swapped" "$tmp"/watch-*.log
# key_max_age (the demo file says 90d): a key published 100 days ago is warned about, located at
# the member; alice's new key is not. status shows the age of the node's own key.
touch -d '100 days ago' "$keys/bob.pub"
in_node hub1 wg-fleet check >"$tmp/check.out" 2>&1
check "check warns about bob's 100-day-old key, at bob" grep -q "warning: fleets.demo.peers.bob: the key of bob in fleet demo is 100d old" "$tmp/check.out"
check "check does not warn about alice's new key" bash -c "! grep -q 'the key of alice' $tmp/check.out"
check "status --json has alice's key age" bash -c "\"$bin\" sandbox exec --name $name alice wg-fleet status --json | python3 -c 'import json,sys; i=json.load(sys.stdin)[\"interfaces\"][0]; sys.exit(0 if 0 <= i[\"key_age_seconds\"] < 600 else 1)'"
check "no secret in any journal" bash -c "! grep -rqF -f <(cat $sbdir/nodes/*/state/*.key) $sbdir/nodes/*/state/journal.log"
check "sandbox down" "$bin" sandbox down --name "$name"
check "no namespace left" bash -c "! ip netns list | grep -q wgfsb-$name"
finish
