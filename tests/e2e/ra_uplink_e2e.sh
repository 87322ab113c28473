#!/usr/bin/env bash
# Enabling IPv6 forwarding must not cost the host its IPv6 uplink. A node namespace learns its
# default route from router advertisements sent by radvd in a neighbour (router) namespace over
# a veth; `wg-fleet apply` makes the node a controller (IPv6 forwarding on). The RA-learned
# default route must still be there right after apply (turning forwarding on purges the RA
# routes of interfaces whose accept_ra is not 2) and come back from the next RA after it is
# flushed (with forwarding on, RAs are ignored unless accept_ra is 2). Then the node is demoted
# to a peer: forwarding and accept_ra go back to what they were.
# Usage: ra_uplink_e2e.sh WG_FLEET_BINARY   (root; needs radvd)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
command -v radvd >/dev/null || { echo "needs radvd (Debian package radvd)"; in_ci && exit 1 || exit 77; }

id=$$
node=wgfra-n$id router=wgfra-r$id
vn=vran$id vr=vrar$id wgif=wra$id   # unique per run, at most 15 characters
tmp=$(mktemp -d /tmp/wgf-ra.XXXXXX)
radvd_pid=
cleanup() {
  [[ -n $radvd_pid ]] && kill "$radvd_pid" 2>/dev/null && wait "$radvd_pid" 2>/dev/null
  # wireguard-go, started by wg-fleet inside the node namespace, which is this test's own.
  for p in $(ip netns pids "$node" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$node" 2>/dev/null
  ip netns del "$router" 2>/dev/null
  rm -f "/var/run/wireguard/$wgif.sock"
  rm -rf "$tmp"
}
trap cleanup EXIT
in_node() { ip netns exec "$node" "$@"; }
wgf() { in_node "$bin" -c "$tmp/fleet.yaml" --node n1 "$@"; }
# Polls a condition: for convergence (an RA arriving), never for timing.
eventually() { local tries=$1; shift; for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.5; done; "$@"; }
ra_default() { in_node ip -6 route show default proto ra dev "$vn" | grep -q .; }
sysctl_of() { in_node cat "/proc/sys/net/ipv6/conf/$1"; }

ip netns add "$router" && ip netns add "$node" || { echo "cannot create namespaces"; exit 1; }
ip link add "$vr" netns "$router" type veth peer name "$vn" netns "$node"
ip -n "$router" link set lo up
ip -n "$router" link set "$vr" up
ip -n "$router" addr add 2001:db8:a1::1/64 dev "$vr" nodad
ip netns exec "$router" sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n "$node" link set lo up
in_node sysctl -qw "net.ipv6.conf.$vn.accept_ra=1" net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.all.forwarding=0
ip -n "$node" link set "$vn" up

cat > "$tmp/radvd.conf" <<EOF
interface $vr {
  AdvSendAdvert on;
  MinRtrAdvInterval 3;
  MaxRtrAdvInterval 4;
  AdvDefaultLifetime 600;
  prefix 2001:db8:a1::/64 { AdvOnLink on; AdvAutonomous on; };
};
EOF
# `ip netns exec` execs radvd in place: $! is radvd's own pid. -n: no daemon, so it stays ours.
ip netns exec "$router" radvd -n -m stderr -C "$tmp/radvd.conf" -p "$tmp/radvd.pid" 2>"$tmp/radvd.log" &
radvd_pid=$!

check "the node learns its default route from router advertisements" eventually 60 ra_default

peer_key=$(wg genkey | wg pubkey)
cat > "$tmp/fleet.yaml" <<EOF
state_dir: $tmp/state
hosts_file: $tmp/hosts
fleets:
  ra$id:
    interface: $wgif
    controllers:
      n1: { endpoint: 192.0.2.1 }
    peers:
      p1: { controller: n1, public_key: "$peer_key" }
EOF
wgf plan > "$tmp/plan.txt" 2>&1
check "plan raises accept_ra on the uplink" grep -qx "~ sysctl net/ipv6/conf/$vn/accept_ra 1 -> 2" "$tmp/plan.txt"
check "plan raises accept_ra on default (interfaces made later)" grep -qx "~ sysctl net/ipv6/conf/default/accept_ra 1 -> 2" "$tmp/plan.txt"
check "plan leaves all/accept_ra alone" bash -c "! grep -q 'conf/all/accept_ra' '$tmp/plan.txt'"
raise_line=$(grep -n "conf/$vn/accept_ra" "$tmp/plan.txt" | cut -d: -f1)
fwd_line=$(grep -n "conf/all/forwarding 0 -> 1" "$tmp/plan.txt" | cut -d: -f1)
check "plan raises accept_ra before it turns forwarding on" test "${raise_line:-9999}" -lt "${fwd_line:-0}"

check "apply makes the node a controller" wgf -q apply
check "IPv6 forwarding is on" test "$(sysctl_of all/forwarding)" = 1
check "the uplink's accept_ra is 2" test "$(sysctl_of "$vn"/accept_ra)" = 2
check "the RA-learned default route survived apply" ra_default
check "state.json records the changed sysctls with their originals" \
  python3 -c "import json,sys; s=json.load(open('$tmp/state/state.json'))['sysctls']; sys.exit(not (s['net/ipv6/conf/$vn/accept_ra']=={'original':'1','value':'2'} and s['net/ipv6/conf/all/forwarding']=={'original':'0','value':'1'}))"
# Only a router advertisement accepted now can bring the route back.
in_node ip -6 route del default proto ra dev "$vn"
check "the route is gone after the flush" bash -c "! ip netns exec $node ip -6 route show default proto ra dev $vn | grep -q ."
check "the next router advertisement brings the default route back" eventually 60 ra_default
check "a second apply plans nothing" wgf -q plan --detailed-exitcode

# Demoted to a peer: no forwarding needed any more.
cat > "$tmp/fleet.yaml" <<EOF
state_dir: $tmp/state
hosts_file: $tmp/hosts
fleets:
  ra$id:
    interface: $wgif
    controllers:
      c0: { endpoint: 192.0.2.1, public_key: "$peer_key" }
    peers:
      n1: { controller: c0 }
EOF
wgf plan > "$tmp/plan2.txt" 2>&1
check "plan restores forwarding" grep -qx "~ sysctl net/ipv6/conf/all/forwarding 1 -> 0 (restored: wg-fleet no longer needs it)" "$tmp/plan2.txt"
check "plan restores the uplink's accept_ra" grep -qx "~ sysctl net/ipv6/conf/$vn/accept_ra 2 -> 1 (restored: wg-fleet no longer needs it)" "$tmp/plan2.txt"
check "apply demotes the node" wgf -q apply
check "IPv6 forwarding is back to 0" test "$(sysctl_of all/forwarding)" = 0
check "the uplink's accept_ra is back to 1" test "$(sysctl_of "$vn"/accept_ra)" = 1
check "default/accept_ra is back to 1" test "$(sysctl_of default/accept_ra)" = 1
check "state.json records no sysctl any more" \
  python3 -c "import json,sys; sys.exit(json.load(open('$tmp/state/state.json'))['sysctls'] != {})"
check "the RA-learned default route is still there" ra_default
check "a second apply plans nothing" wgf -q plan --detailed-exitcode

finish
