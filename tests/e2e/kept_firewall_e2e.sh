#!/usr/bin/env bash
# The firewall kept from the last verified apply (state_dir/firewall.kept), through the command
# line, in a network namespace of its own: a verified apply keeps it (0600); a no-op apply with
# the desired state from the cache then does not read the table (-v says "firewall kept") and
# changes nothing; every hand change is
# still found and repaired by the next apply, because any commit moves the ruleset's generation:
# an element deleted, an element's target changed, the table deleted, a commit in another table.
# An edit of the forwards (other desired rules), a record that others may write, a record of
# another generation and --no-cache all make the run read the table.
# Usage: kept_firewall_e2e.sh WG_FLEET_BINARY   (root: network namespaces, wireguard-go)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
ns=wgfkf$$; ifn=kf$$
tmp=$(mktemp -d /tmp/wgf-keptfw.XXXXXX)
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
  sleep 0.3
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns" || { echo "cannot create a namespace"; exit 1; }
ip netns exec "$ns" ip link set lo up

cfg=$tmp/fleet.yaml
peer_key=$(wg genkey | wg pubkey)
# An edge node with N forwards to addresses behind a peer, TCP and UDP alternating.
write_fleet() {  # N
  {
    printf 'state_dir: %s/state\nhosts_file: %s/hosts\nhttp_routes_dir: %s/routes\nfleets:\n' "$tmp" "$tmp" "$tmp"
    printf '  edge:\n    interface: %s\n    ipv4: 10.50.0.0/24\n' "$ifn"
    printf '    controllers:\n      edge1: { endpoint: 10.77.31.1, ipv4: 10.50.0.1 }\n'
    printf '    peers:\n      svc: { endpoint: 10.77.31.2, ipv4: 10.50.0.12, public_key: %s, routes: [10.99.0.0/16] }\n' "$peer_key"
    printf 'forwards:\n'
    for ((i = 0; i < $1; i++)); do
      proto=tcp; ((i % 2)) && proto=udp
      printf '  - { name: f%d, node: edge1, proto: %s, port: %d, to: 10.99.0.%d, to_port: 80 }\n' "$i" "$proto" $((1024 + i)) $((i + 1))
    done
  } > "$cfg"
}
kept=$tmp/state/firewall.kept
W() { ip netns exec "$ns" "$bin" -c "$cfg" --node edge1 --state-dir "$tmp/state" "$@"; }
N() { ip netns exec "$ns" nft "$@"; }
elements() { N list map inet wg-fleet fwd4 2>/dev/null | grep -o 'comment "dnat-f[0-9]*-v4"' | wc -l; }
used() { grep 'wg-fleet: timing:' "$1" | grep -q 'firewall kept'; }

write_fleet 4
W -v apply > "$tmp/1" 2>&1; rc=$?
check "the first apply converges (exit 0)" test $rc = 0
check "4 forwards in the map" test "$(elements)" = 4
check "it keeps the firewall record, 0600" test -f "$kept" -a "$(stat -c %a "$kept" 2>/dev/null)" = 600
check "the first apply read the table" bash -c "! grep 'wg-fleet: timing:' '$tmp/1' | grep -q 'firewall kept'"

# The first apply generated the key, so it kept no desired state: the record is relied on when
# the desired state comes from the cache (on a miss the table is read alongside the parse).
W -v apply > "$tmp/1b" 2>&1; rc=$?
check "the second apply converges and keeps the desired state" bash -c "test $rc = 0 && grep -q 'desired state kept in' '$tmp/1b'"
W -v apply > "$tmp/2" 2>&1; rc=$?
check "a no-op apply converges" test $rc = 0
check "it relies on the record (-v: firewall kept)" used "$tmp/2"
check "and its read alongside did not read the table" grep -q 'firewall (table unchanged)' "$tmp/2"
check "No changes" grep -q "No changes: the node matches the fleet." "$tmp/2"
W -v plan --detailed-exitcode > "$tmp/plan" 2>&1; rc=$?
check "plan relies on it too: nothing to do (exit 0)" test $rc = 0
check "plan: firewall kept" used "$tmp/plan"

# An element deleted by hand.
N delete element inet wg-fleet fwd4 '{ tcp . 1024 }'
check "(an element deleted by hand: 3 left)" test "$(elements)" = 3
W -v plan --detailed-exitcode > "$tmp/plan2" 2>&1; rc=$?
check "plan sees the deleted element (exit 2)" test $rc = 2
W -v apply > "$tmp/3" 2>&1; rc=$?
check "the next apply reads the table" bash -c "! grep 'wg-fleet: timing:' '$tmp/3' | grep -q 'firewall kept'"
check "and repairs it (exit 0, 4 elements)" test $rc = 0 -a "$(elements)" = 4
W -v apply > "$tmp/4" 2>&1; rc=$?
check "the run after the repair relies on the new record" bash -c "test $rc = 0 && grep 'wg-fleet: timing:' '$tmp/4' | grep -q 'firewall kept'"

# An element's target changed by hand (deleted and added again with another target).
N delete element inet wg-fleet fwd4 '{ udp . 1025 }'
N add element inet wg-fleet fwd4 '{ udp . 1025 comment "dnat-f1-v4" : 10.99.0.99 . 80 }'
W -v apply > "$tmp/5" 2>&1; rc=$?
check "a changed target is found and repaired" bash -c "test $rc = 0 && ! grep 'wg-fleet: timing:' '$tmp/5' | grep -q 'firewall kept'"
check "the element points where the file says again" bash -c "ip netns exec $ns nft list map inet wg-fleet fwd4 | grep -q '10.99.0.2 . 80' && ! ip netns exec $ns nft list map inet wg-fleet fwd4 | grep -q '10.99.0.99'"

# The table deleted by hand.
W apply > /dev/null 2>&1
N delete table inet wg-fleet
W -v apply > "$tmp/6" 2>&1; rc=$?
check "a deleted table is made again (exit 0, 4 elements)" test $rc = 0 -a "$(elements)" = 4
check "that run read the table" bash -c "! grep 'wg-fleet: timing:' '$tmp/6' | grep -q 'firewall kept'"

# A commit in another table: the generation moved, the table is read (and found as it should be).
W apply > /dev/null 2>&1
N add table inet other$$
W -v apply > "$tmp/7" 2>&1; rc=$?
check "another table's commit: the table is read" bash -c "test $rc = 0 && ! grep 'wg-fleet: timing:' '$tmp/7' | grep -q 'firewall kept'"
check "and nothing changed" grep -q "No changes: the node matches the fleet." "$tmp/7"
N delete table inet other$$

# Another desired state (a forward removed from the file): the record's digest is not the
# desired rules', so the table is read and the forward removed.
W apply > /dev/null 2>&1
write_fleet 3
W -v apply > "$tmp/8" 2>&1; rc=$?
check "an edit of the forwards reads the table and applies it (3 elements)" bash -c "test $rc = 0 && test \$(ip netns exec $ns nft list map inet wg-fleet fwd4 | grep -o 'comment \"dnat-f[0-9]*-v4\"' | wc -l) = 3"

# A record that others may write, one of another generation, and --no-cache: not relied on.
W apply > /dev/null 2>&1
chmod o+w "$kept"
W -v apply > "$tmp/9" 2>&1; rc=$?
check "a record others may write is not relied on" bash -c "test $rc = 0 && ! grep 'wg-fleet: timing:' '$tmp/9' | grep -q 'firewall kept'"
check "it is replaced, 0600" test "$(stat -c %a "$kept")" = 600
sed -i '2s/ [0-9]* \([0-9-]*\)$/ 1 \1/' "$kept"
W -v apply > "$tmp/10" 2>&1; rc=$?
check "a record of another generation is not relied on" bash -c "test $rc = 0 && ! grep 'wg-fleet: timing:' '$tmp/10' | grep -q 'firewall kept'"
W -v --no-cache apply > "$tmp/11" 2>&1; rc=$?
check "--no-cache reads the table" bash -c "test $rc = 0 && ! grep 'wg-fleet: timing:' '$tmp/11' | grep -q 'firewall kept'"
W -v apply > "$tmp/12" 2>&1; rc=$?
check "and the next run relies on the record again" used "$tmp/12"
check "the record holds no private key" bash -c "! grep -qF \"\$(cat $tmp/state/edge.key)\" '$kept'"

finish
