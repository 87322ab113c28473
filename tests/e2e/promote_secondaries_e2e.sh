#!/usr/bin/env bash
# Deleting an IPv4 primary address must not take its secondaries with it. The node's WireGuard
# interface holds two IPv4 addresses in one subnet: 10.61.0.1/24 (primary, from the fleet) and
# 10.61.0.2/24 (secondary, added by hand, as an earlier run or an adopted device can leave
# it). The fleet then moves the node to 10.61.0.2: apply deletes only the primary, and without
# promote_secondaries the kernel would delete the secondary with it.
# Usage: promote_secondaries_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"

id=$$
node=wgfps-n$id wgif=wps$id   # unique per run
tmp=$(mktemp -d /tmp/wgf-ps.XXXXXX)
cleanup() {
  for p in $(ip netns pids "$node" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$node" 2>/dev/null
  rm -f "/var/run/wireguard/$wgif.sock"
  rm -rf "$tmp"
}
trap cleanup EXIT
in_node() { ip netns exec "$node" "$@"; }
wgf() { in_node "$bin" -c "$tmp/fleet.yaml" --node n1 "$@"; }
v4_of() { in_node ip -4 -o addr show dev "$wgif" | awk '{print $4 (/secondary/ ? " secondary" : "")}' | sort | tr '\n' ' '; }

ip netns add "$node" || { echo "cannot create a namespace"; exit 1; }
ip -n "$node" link set lo up
peer_key=$(wg genkey | wg pubkey)
fleet() {
  cat > "$tmp/fleet.yaml" <<EOF
state_dir: $tmp/state
hosts_file: $tmp/hosts
fleets:
  ps$id:
    interface: $wgif
    ipv4: 10.61.0.0/24
    controllers:
      n1: { endpoint: 192.0.2.1, ipv4: $1 }
    peers:
      p1: { controller: n1, public_key: "$peer_key", ipv4: 10.61.0.9 }
EOF
}

fleet 10.61.0.1
check "apply brings the node up with 10.61.0.1/24" wgf -q apply
check "promote_secondaries is on for the interface" test "$(in_node cat /proc/sys/net/ipv4/conf/$wgif/promote_secondaries)" = 1
in_node ip addr add 10.61.0.2/24 dev "$wgif"
check "10.61.0.2/24 is a secondary of 10.61.0.1/24" test "$(v4_of)" = "10.61.0.1/24 10.61.0.2/24 secondary "

# As on a device an older wg-fleet made, or one adopted: the plan must turn it on before the
# deletion.
in_node sysctl -qw "net.ipv4.conf.$wgif.promote_secondaries=0"

fleet 10.61.0.2
wgf plan > "$tmp/plan.txt" 2>&1
check "plan deletes only the old primary" grep -qx -- "- address 10.61.0.1/24 dev $wgif" "$tmp/plan.txt"
# The text groups operations by resource; plan --json lists them in the order apply runs them.
wgf plan --json 2>/dev/null | python3 -c 'import json, sys; print("\n".join(o["line"] for o in json.load(sys.stdin)["ops"]))' > "$tmp/order.txt"
promote_line=$(grep -n "~ sysctl net/ipv4/conf/$wgif/promote_secondaries 0 -> 1" "$tmp/order.txt" | cut -d: -f1)
delete_line=$(grep -n -- "- address 10.61.0.1/24" "$tmp/order.txt" | cut -d: -f1)
check "plan turns promote_secondaries on before it deletes the primary" test "${promote_line:-9999}" -lt "${delete_line:-0}"
check "apply converges (nothing left over)" wgf -q apply
check "the secondary survived the deletion of the primary" test "$(v4_of)" = "10.61.0.2/24 "
check "a second apply plans nothing" wgf -q plan --detailed-exitcode

finish
