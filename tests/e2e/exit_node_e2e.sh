#!/usr/bin/env bash
# Exit nodes, end to end through the command line. A fleet in the sandbox (wireguard-go tunnels):
# gw, the controller, has an "internet" link to a namespace of its own (inet) holding addresses
# only gw can reach; laptop and desk are peers. With `exit_node: gw` on laptop, laptop reaches
# inet's addresses over TCP, IPv4 and IPv6, through the tunnel, masqueraded to gw's address on
# that link; its handshake keeps working (a fresh one after its peer entry is removed by hand);
# traffic to desk, inside the fleet, keeps laptop's fleet address as its source. Removing
# exit_node and applying restores laptop's default routes and rules as they were, and a second
# plan on each node is empty.
# Usage: exit_node_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"

name=ex$$
inet=wgfexi$$
tmp=$(mktemp -d /tmp/wgf-ex-e2e.XXXXXX)
cleanup() {
  for f in "$tmp"/*.pid; do [[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null; done
  ip netns del "$inet" 2>/dev/null
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
# Polls a condition for at most 30 s: for convergence (a first handshake), never for timing.
eventually() { local end=$((SECONDS + 30)); until "$@"; do ((SECONDS < end)) || return 1; sleep 0.25; done; }

cfg=$tmp/fleet.yaml
write_cfg() {  # $1: laptop's extra keys
  cat > "$cfg" <<EOF
fleets:
  ex:
    ipv4: 10.60.0.0/24
    controllers:
      gw: { endpoint: 10.77.33.1, ipv4: 10.60.0.1 }
    peers:
      laptop: { endpoint: 10.77.33.2, ipv4: 10.60.0.2 $1 }
      desk: { endpoint: 10.77.33.3, ipv4: 10.60.0.3 }
EOF
}
write_cfg ""
addr_of() {  # NODE FAMILY(4|6): the node's address in fleet ex, from the address plan
  "$bin" -c "$cfg" --dropin-dir /nonexistent addresses --json |
    python3 -c "import json,sys; print(next(a.split('/')[0] for a in json.load(sys.stdin)['fleets']['ex']['nodes']['$1']['addresses'] if (':' in a)==($2==6)))"
}
laptop6=$(addr_of laptop 6); desk6=$(addr_of desk 6)
check "laptop and desk have IPv6 fleet addresses ($laptop6, $desk6)" test -n "$laptop6" -a -n "$desk6"

check "sandbox up" "$bin" -q sandbox --name "$name" up "$cfg"
ns_gw=wgfsb-$name-gw
# The internet side of gw: a link to inet, documentation addresses. inet has no route anywhere
# else, so only gw's own addresses on that link can be answered: what reaches inet from laptop's
# fleet addresses was masqueraded.
ip netns add "$inet"
ip -n "$inet" link set lo up
ip link add up$$ netns "$ns_gw" type veth peer name eth0 netns "$inet"
ip -n "$ns_gw" addr add 203.0.113.1/24 dev up$$
ip -n "$ns_gw" addr add 2001:db8:99::1/64 dev up$$ nodad
ip -n "$ns_gw" link set up$$ up
ip -n "$inet" addr add 203.0.113.2/24 dev eth0
ip -n "$inet" addr add 2001:db8:99::2/64 dev eth0 nodad
ip -n "$inet" link set eth0 up

# laptop reaches gw's endpoint only through its own default route (no on-link subnet): with the
# exit node's rules in place, the tunnel's packets get there only because the device marks them.
in_node laptop ip addr del 10.77.33.2/24 dev eth0
in_node laptop ip addr add 10.77.33.2/32 dev eth0
in_node laptop ip route add default via 10.77.33.1 dev eth0 onlink
routing() {  # laptop's default routes and rules, IPv4 and IPv6
  in_node laptop sh -c 'ip -4 route show default; ip -6 route show default; ip -4 rule; ip -6 rule'
}
before=$(routing)

# A TCP service that answers with the address it saw the client come from and exits after 120 s
# of silence: on inet's addresses, and on desk's fleet addresses.
serve() {  # ID NETNS-COMMAND...: the service on port 9000 of every address of that namespace
  local id=$1; shift
  cat > "$tmp/$id.py" <<EOF
import os, select, socket
open("$tmp/$id.pid", "w").write(str(os.getpid()))
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("::", 9000)); t.listen(8)
def bare(a): return a[7:] if a.startswith("::ffff:") else a
while select.select([t], [], [], 120)[0]:
    c, a = t.accept()
    c.sendall(("from %s\n" % bare(a[0])).encode()); c.close()
EOF
  "$@" python3 "$tmp/$id.py" &
}
serve inet ip netns exec "$inet"
serve desk in_node desk
eventually bash -c "ip netns exec $inet ss -ltnH | grep -q ':9000'"
eventually bash -c "\"$bin\" sandbox exec --name $name desk ss -ltnH | grep -q ':9000'"

ask() {  # ADDR: laptop's request to ADDR port 9000; prints the answer
  in_node laptop timeout 5 python3 -c "
import socket, sys
c = socket.create_connection((sys.argv[1], 9000), timeout=2)
print(c.recv(100).decode().strip())" "$1"
}
answers() {  # ADDR WANT
  local got; got=$(ask "$1" 2>/dev/null); [[ $got == "$2" ]] || { echo "  got '$got', want '$2'" >&2; return 1; }
}
unreached() { ! ask "$1" >/dev/null 2>&1; }

check "without an exit node, laptop cannot reach 203.0.113.2" unreached 203.0.113.2
check "without an exit node, laptop cannot reach 2001:db8:99::2" unreached 2001:db8:99::2

# laptop takes gw as its exit node.
write_cfg ", exit_node: gw"
check "check accepts exit_node: gw" "$bin" -c "$cfg" --dropin-dir /nonexistent -q check
check "gw: apply" in_node gw wg-fleet -q apply
check "laptop: apply" in_node laptop wg-fleet -q apply
wgdev=ex
check "laptop's device marks its packets 0x7767" bash -c "\"$bin\" sandbox exec --name $name laptop wg show $wgdev fwmark | grep -qx 0x7767"
rules=$(in_node laptop sh -c 'ip -4 rule; ip -6 rule')
check "laptop has wg-quick's rules for IPv4 and IPv6 (not fwmark 0x7767 lookup 30567; lookup main suppress_prefixlength 0)" \
  test "$(grep -c 'not from all fwmark 0x7767 lookup 30567 proto 87' <<<"$rules")" = 2 -a \
       "$(grep -c 'from all lookup main suppress_prefixlength 0 proto 87' <<<"$rules")" = 2
check "table 30567 holds the default routes through the tunnel" \
  bash -c "\"$bin\" sandbox exec --name $name laptop ip -4 route show table 30567 | grep -q '^default dev $wgdev proto 87' &&
           \"$bin\" sandbox exec --name $name laptop ip -6 route show table 30567 | grep -q '^default dev $wgdev proto 87'"
check "laptop's own default route is still there" bash -c "\"$bin\" sandbox exec --name $name laptop ip -4 route show default | grep -q 'via 10.77.33.1'"
check "IPv4: laptop reaches 203.0.113.2 through gw, masqueraded to 203.0.113.1" eventually answers 203.0.113.2 "from 203.0.113.1"
check "IPv6: laptop reaches 2001:db8:99::2 through gw, masqueraded to 2001:db8:99::1 (NAT66)" \
  eventually answers 2001:db8:99::2 "from 2001:db8:99::1"
check "IPv4: inside the fleet, desk sees laptop's own address" eventually answers 10.60.0.3 "from 10.60.0.2"
check "IPv6: inside the fleet, desk sees laptop's own address" eventually answers "$desk6" "from $laptop6"
check "gw's table masquerades laptop's addresses only out of non-fleet interfaces" \
  bash -c "\"$bin\" sandbox exec --name $name gw nft list table inet wg-fleet | grep -q 'ip saddr 10.60.0.2 oifname != \"$wgdev\" masquerade comment \"exit-masq-laptop-10.60.0.2\"'"

# The handshake with the policy rules in place: the peer entry removed by hand, the next apply
# puts it back and a new handshake must go out through the marked socket to the default route,
# not into the tunnel.
gwkey=$(in_node laptop wg show $wgdev peers | head -1)
t0=$(date +%s)
in_node laptop wg set $wgdev peer "$gwkey" remove
check "laptop: apply restores gw's entry" in_node laptop wg-fleet -q apply
fresh_handshake() {
  local t; t=$(in_node laptop wg show $wgdev latest-handshakes | awk -v k="$gwkey" '$1 == k { print $2 }')
  [[ -n $t && $t -ge $t0 ]]
}
check "a fresh handshake with gw after the switch" eventually fresh_handshake
check "IPv4: still through gw after the new handshake" eventually answers 203.0.113.2 "from 203.0.113.1"
for n in gw laptop desk; do
  check "$n: a second apply plans nothing" in_node "$n" wg-fleet -q plan --detailed-exitcode
done
check "wg-fleet status on laptop shows gw's handshake" bash -c "\"$bin\" sandbox exec --name $name laptop wg-fleet status | grep -q gw"

# exit_node goes: the previous routing comes back.
write_cfg ""
check "laptop: apply without exit_node" in_node laptop wg-fleet -q apply
check "gw: apply without exit_node" in_node gw wg-fleet -q apply
after=$(routing)
check "laptop's default routes and rules are as before" test "$after" = "$before"
[[ $after == "$before" ]] || diff <(echo "$before") <(echo "$after")
check "laptop's device carries no mark" bash -c "\"$bin\" sandbox exec --name $name laptop wg show $wgdev fwmark | grep -qx off"
check "laptop cannot reach 203.0.113.2 any more" unreached 203.0.113.2
check "gw has no exit rules left" bash -c "! \"$bin\" sandbox exec --name $name gw nft list table inet wg-fleet | grep -q exit-"
for n in gw laptop desk; do
  check "$n: nothing left to do" in_node "$n" wg-fleet -q plan --detailed-exitcode
done

check "sandbox down" "$bin" sandbox down --name "$name"
finish
