#!/usr/bin/env bash
# End to end: examples/multi-controller.yaml (3 controllers, a peer on each, an IPv4 pool, routes
# behind a controller and behind a peer) in network namespaces, driven only through the wg-fleet
# command line. `sandbox test` must pass its whole matrix: every member reaches every other at
# its IPv6 address, its IPv4 address and its host name, and an address inside every announced
# route; relayed traffic keeps its source address (no masquerade on the controllers).
# Usage: multi_controller_e2e.sh WG_FLEET_BINARY SOURCE_DIR   (root)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
name=mc$$
tmp=$(mktemp -d /tmp/wgf-mc-e2e.XXXXXX)
cleanup() {
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
in_node() { local node=$1; shift; "$bin" sandbox exec --name "$name" "$node" "$@"; }
nodes="hub-a hub-b hub-c alice bob carol"

cfg=$tmp/fleet.yaml
cp "$src/examples/multi-controller.yaml" "$cfg"
sed -i 's|^keys_dir:.*||' "$cfg"   # the sandbox supplies its own keys directory

check "sandbox up" "$bin" -q sandbox --name "$name" up "$cfg"
"$bin" sandbox test --name "$name" >"$tmp/matrix" 2>&1; rc=$?
cat "$tmp/matrix"
check "the whole matrix passes (IPv6, IPv4, names, announced routes)" test $rc = 0
# 6 members: 30 ordered pairs x (IPv6, IPv4, name) = 90; 3 routes x 5 other members = 15.
check "the matrix asked 105 questions" grep -qx "105 passed, 0 failed" "$tmp/matrix"
for n in $nodes; do
  check "$n: a second apply plans nothing (plan --detailed-exitcode = 0)" in_node "$n" wg-fleet -q plan --detailed-exitcode
done

# Relayed traffic keeps its source: carol (on hub-c) connects to bob's route address (behind
# hub-b); bob sees carol's own IPv4 address, not a controller's.
carol4=$(in_node carol ip -4 -o addr show dev multi | awk '{print $4}' | cut -d/ -f1)
check "carol has an IPv4 address in the pool" test -n "$carol4"
in_node bob python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.20.0.1", 8000)); s.listen(1); s.settimeout(20)
c, a = s.accept(); open(sys.argv[1], "w").write(a[0] + "\n")
' "$tmp/seen" &
srv=$!
for _ in $(seq 1 50); do in_node bob ss -ltnH 2>/dev/null | grep -q 10.20.0.1:8000 && break; sleep 0.1; done
in_node carol python3 -c 'import socket; socket.create_connection(("10.20.0.1", 8000), timeout=10).close()'
wait $srv
check "bob sees carol's own address ($carol4) on a connection relayed by two controllers" grep -qx "$carol4" "$tmp/seen"
check "no controller masquerades" bash -c "for n in hub-a hub-b hub-c; do \"$bin\" sandbox exec --name $name \$n nft list table inet wg-fleet | grep -q masquerade && exit 1; done; exit 0"

check "sandbox down" "$bin" sandbox down --name "$name"
check "no namespace left" bash -c "! ip netns list | grep -q wgfsb-$name"
finish
