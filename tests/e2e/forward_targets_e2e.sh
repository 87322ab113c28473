#!/usr/bin/env bash
# Forwards end to end through the command line. A fleet in the sandbox (wireguard-go tunnels):
# edge1, the controller, forwards public ports to addresses that lie behind peer svc: svc's IPv4
# fleet address, its IPv6 fleet address (read from `addresses --json`) and addresses inside the
# IPv4 and IPv6 prefixes svc announces in `routes:` (on its loopback), and to svc by name (`to:
# svc`: both of its fleet addresses). A client namespace on edge1's "internet" side connects to
# edge1's public port over TCP and UDP, IPv4 and IPv6, and must land on the service at each
# address, masqueraded to edge1's fleet address, and get the reply. The forwards are elements of
# edge1's DNAT maps, as `nft list` shows them. Then: removing a forward from the file closes its
# port after the next apply (the other family's forward of that port stays); deleting the
# nftables table by hand is repaired by the next apply, and within a tick under `watch`.
# svc is also the gateway into a tailnet (Headscale/Tailscale): it announces 100.64.0.0/10 and
# fd7a:115c:a1e0::/48 in `routes:`, and edge1 reaches a tailnet address behind it over the fleet.
# Usage: forward_targets_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"

name=ft$$
client=wgfftc$$
tmp=$(mktemp -d /tmp/wgf-ft-e2e.XXXXXX)
srv=
watcher=
cleanup() {
  [[ -n $watcher ]] && kill "$watcher" 2>/dev/null && wait "$watcher" 2>/dev/null
  # The service itself, not only the `sandbox exec` that started it: it holds ctest's output pipe.
  [[ -s $tmp/service.pid ]] && kill "$(cat "$tmp/service.pid")" 2>/dev/null
  [[ -n $srv ]] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
  ip netns del "$client" 2>/dev/null
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

cfg=$tmp/fleet.yaml
write_cfg() {  # $1: the forwards: list
  cat > "$cfg" <<EOF
fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 10.77.31.1, ipv4: 10.50.0.1 }
    peers:
      svc: { endpoint: 10.77.31.2, ipv4: 10.50.0.12, routes: [192.0.2.0/24, "2001:db8:50::/48", 100.64.0.0/10, "fd7a:115c:a1e0::/48"] }
$1
EOF
}
write_cfg ""
addr_of() {  # NODE FAMILY(4|6): the node's address in fleet edge, from the address plan
  "$bin" -c "$cfg" --dropin-dir /nonexistent addresses --json |
    python3 -c "import json,sys; print(next(a.split('/')[0] for a in json.load(sys.stdin)['fleets']['edge']['nodes']['$1']['addresses'] if (':' in a)==($2==6)))"
}
svc6=$(addr_of svc 6); edge4=$(addr_of edge1 4); edge6=$(addr_of edge1 6)
check "svc has an IPv6 fleet address ($svc6), edge1 $edge4 and $edge6" test -n "$svc6" -a -n "$edge4" -a -n "$edge6"
forwards="forwards:
  - { name: web4, node: edge1, port: 8080, to: 10.50.0.12, to_port: 8000 }
  - { name: web6, node: edge1, port: 8080, to: \"2001:db8:50::7\", to_port: 8000 }
  - { name: dns4, node: edge1, proto: udp, port: 5353, to: 192.0.2.7, to_port: 5300 }
  - { name: dns6, node: edge1, proto: udp, port: 5353, to: \"$svc6\", to_port: 5300 }
  - { name: websvc, node: edge1, port: 9080, to: svc, to_port: 8000 }
  - { name: dnssvc, node: edge1, proto: udp, port: 9053, to: svc, to_port: 5300 }"
write_cfg "$forwards"
check "check accepts the explicit targets" "$bin" -c "$cfg" --dropin-dir /nonexistent -q check

check "sandbox up" "$bin" -q sandbox --name "$name" up "$cfg"
# svc's LAN behind it (the prefixes it announces), one address of each on its loopback.
in_node svc ip addr add 192.0.2.7/32 dev lo
in_node svc ip addr add 2001:db8:50::7/128 dev lo
# The tailnet behind svc: one address of each of its ranges, as tailscaled would hold them.
in_node svc ip addr add 100.64.0.7/32 dev lo
in_node svc ip addr add fd7a:115c:a1e0::7/128 dev lo

# The client on edge1's public side: a link of its own, documentation addresses.
ip netns add "$client"
ip -n "$client" link set lo up
ip link add pub$$ netns "wgfsb-$name-edge1" type veth peer name up0 netns "$client"
ip -n "wgfsb-$name-edge1" addr add 198.51.100.2/24 dev pub$$
ip -n "wgfsb-$name-edge1" addr add 2001:db8:1::2/64 dev pub$$ nodad
ip -n "wgfsb-$name-edge1" link set pub$$ up
ip -n "$client" addr add 198.51.100.1/24 dev up0
ip -n "$client" addr add 2001:db8:1::1/64 dev up0 nodad
ip -n "$client" link set up0 up

# The service on svc: TCP 8000 on every address, UDP 5300 on the two forwarded ones; each answer
# names the peer it saw and the local address it was reached at. Exits after 120 s of silence.
cat > "$tmp/service.py" <<EOF
import os, select, socket
open("$tmp/service.pid", "w").write(str(os.getpid()))
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("::", 8000)); t.listen(8)
u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u4.bind(("192.0.2.7", 5300))
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("$svc6", 5300))
u4m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u4m.bind(("10.50.0.12", 5300))
def bare(a): return a[7:] if a.startswith("::ffff:") else a
while True:
    ready, _, _ = select.select([t, u4, u6, u4m], [], [], 120)
    if not ready: break
    for s in ready:
        if s is t:
            c, a = t.accept()
            c.sendall(("tcp from %s at %s\n" % (bare(a[0]), bare(c.getsockname()[0]))).encode()); c.close()
        else:
            data, a = s.recvfrom(100)
            s.sendto(("udp from %s at %s\n" % (a[0], s.getsockname()[0])).encode(), a)
EOF
in_node_bg svc python3 "$tmp/service.py" &
srv=$!
eventually bash -c "\"$bin\" sandbox exec --name $name svc ss -ltnH | grep -q ':8000'"

# One request from the client to edge1's public address; prints the service's answer.
ask() {  # PROTO ADDR PORT
  ip netns exec "$client" timeout 5 python3 - "$@" <<'EOF'
import socket, sys
proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
if proto == "tcp":
    c = socket.create_connection((addr, port), timeout=2)
    print(c.recv(100).decode().strip())
else:
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1)
    s.sendto(b"?", (addr, port))
    print(s.recvfrom(100)[0].decode().strip())
EOF
}
answers() {  # PROTO ADDR PORT WANT: the answer is exactly WANT
  local got; got=$(ask "$1" "$2" "$3" 2>/dev/null); [[ $got == "$4" ]] || { echo "  got '$got', want '$4'" >&2; return 1; }
}
closed() { ! ask "$@" >/dev/null 2>&1; }
check "tcp, IPv4: edge1:8080 lands on svc's fleet address 10.50.0.12, masqueraded to $edge4" \
  eventually answers tcp 198.51.100.2 8080 "tcp from $edge4 at 10.50.0.12"
check "tcp, IPv6: edge1:8080 lands on 2001:db8:50::7 in svc's routes, masqueraded to $edge6" \
  eventually answers tcp 2001:db8:1::2 8080 "tcp from $edge6 at 2001:db8:50::7"
check "udp, IPv4: edge1:5353 lands on 192.0.2.7 in svc's routes" \
  eventually answers udp 198.51.100.2 5353 "udp from $edge4 at 192.0.2.7"
check "udp, IPv6: edge1:5353 lands on svc's fleet address $svc6" \
  eventually answers udp 2001:db8:1::2 5353 "udp from $edge6 at $svc6"
check "tcp, IPv4: edge1:9080 lands on svc by name, at 10.50.0.12" \
  eventually answers tcp 198.51.100.2 9080 "tcp from $edge4 at 10.50.0.12"
check "tcp, IPv6: edge1:9080 lands on svc by name, at $svc6" \
  eventually answers tcp 2001:db8:1::2 9080 "tcp from $edge6 at $svc6"
check "udp, IPv4: edge1:9053 lands on svc by name, at 10.50.0.12" \
  eventually answers udp 198.51.100.2 9053 "udp from $edge4 at 10.50.0.12"
check "udp, IPv6: edge1:9053 lands on svc by name, at $svc6" \
  eventually answers udp 2001:db8:1::2 9053 "udp from $edge6 at $svc6"
for n in edge1 svc; do
  check "$n: a second apply plans nothing" in_node "$n" wg-fleet -q plan --detailed-exitcode
done
listed=$(in_node edge1 nft list table inet wg-fleet)
check "edge1's table looks forwards up in its IPv4 map for IPv4 clients only" \
  grep -qF 'meta nfproto ipv4 dnat ip to meta l4proto . th dport map @fwd4' <<<"$listed"
check "web4 is an element of that map: tcp . 8080 to 10.50.0.12 . 8000" \
  grep -qF 'tcp . 8080 comment "dnat-web4-v4" : 10.50.0.12 . 8000' <<<"$listed"
check "websvc's IPv6 element targets svc's fleet address $svc6" \
  grep -qF "tcp . 9080 comment \"dnat-websvc-v6\" : $svc6 . 8000" <<<"$listed"

# The tailnet gateway: edge1 reaches a tailnet address behind svc, over the fleet.
check "edge1 routes 100.64.0.0/10 and fd7a:115c:a1e0::/48 into the fleet (wg-fleet's routes, protocol 87)" \
  bash -c "\"$bin\" sandbox exec --name $name edge1 ip route show 100.64.0.0/10 | grep -q 'proto 87' &&
           \"$bin\" sandbox exec --name $name edge1 ip -6 route show fd7a:115c:a1e0::/48 | grep -q 'proto 87'"
check "edge1 reaches 100.64.0.7 behind svc (TCP)" \
  eventually bash -c "\"$bin\" sandbox exec --name $name edge1 timeout 5 python3 -c 'import socket; print(socket.create_connection((\"100.64.0.7\", 8000), timeout=2).recv(100).decode().strip())' | grep -q 'tcp from 10.50.0.1 at 100.64.0.7'"
check "edge1 reaches fd7a:115c:a1e0::7 behind svc (TCP)" \
  eventually bash -c "\"$bin\" sandbox exec --name $name edge1 timeout 5 python3 -c 'import socket; print(socket.create_connection((\"fd7a:115c:a1e0::7\", 8000), timeout=2).recv(100).decode().strip())' | grep -q 'at fd7a:115c:a1e0::7'"

# Removing a forward closes its port (for its family) after the next apply.
write_cfg "$(grep -v 'name: web4' <<<"$forwards")"
check "apply without web4" in_node edge1 wg-fleet -q apply
check "tcp, IPv4: edge1:8080 is closed" closed tcp 198.51.100.2 8080
check "tcp, IPv6: edge1:8080 still answers" answers tcp 2001:db8:1::2 8080 "tcp from $edge6 at 2001:db8:50::7"
check "no rule dnat-web4 left" bash -c "! \"$bin\" sandbox exec --name $name edge1 nft list table inet wg-fleet | grep -q dnat-web4"

# A table deleted by hand is put back by the next apply.
check "delete the table by hand" in_node edge1 nft delete table inet wg-fleet
check "udp, IPv4: edge1:5353 is closed without the table" closed udp 198.51.100.2 5353
check "plan sees the missing table (exit 2)" bash -c "\"$bin\" sandbox exec --name $name edge1 wg-fleet -q plan --detailed-exitcode >/dev/null; test \$? = 2"
check "apply repairs it" in_node edge1 wg-fleet -q apply
check "udp, IPv4: answers again" eventually answers udp 198.51.100.2 5353 "udp from $edge4 at 192.0.2.7"
check "udp, IPv6: answers again" eventually answers udp 2001:db8:1::2 5353 "udp from $edge6 at $svc6"
check "tcp, IPv6: answers again" eventually answers tcp 2001:db8:1::2 8080 "tcp from $edge6 at 2001:db8:50::7"
check "edge1: nothing left to do" in_node edge1 wg-fleet -q plan --detailed-exitcode

# Under watch, a table deleted by hand is put back within a tick (the interval), no apply run.
in_node_bg edge1 wg-fleet watch --interval 2 >"$tmp/watch.log" 2>&1 &
watcher=$!
check "watch runs on edge1" kill -0 "$watcher"
check "delete the table by hand under watch" in_node edge1 nft delete table inet wg-fleet
check "watch repairs it: udp, IPv4: edge1:5353 answers again" eventually answers udp 198.51.100.2 5353 "udp from $edge4 at 192.0.2.7"
check "and tcp, IPv4 by name: edge1:9080 answers again" eventually answers tcp 198.51.100.2 9080 "tcp from $edge4 at 10.50.0.12"
kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null; watcher=

# Someone else's firewall: a Docker-like ip filter FORWARD chain that drops by policy. plan warns
# (it changes nothing there) and says what to add; with those rules in, the forwards still answer.
check "a foreign FORWARD chain with policy drop" in_node edge1 nft add table ip filter
in_node edge1 nft add chain ip filter FORWARD "{ type filter hook forward priority 0; policy drop; }"
warned=$(in_node edge1 wg-fleet plan 2>&1)
check "plan warns that table ip filter, chain FORWARD drops forwarded fleet traffic" \
  grep -q "table ip filter, chain FORWARD (hook forward, priority 0) drops by policy" <<<"$warned"
checked=$(in_node edge1 wg-fleet check 2>&1)
check "check on edge1 (root, a node of the fleet) warns about that chain too" \
  grep -q "table ip filter, chain FORWARD (hook forward, priority 0) drops by policy" <<<"$checked"
check "and check on another node does not" \
  bash -c "! \"$bin\" sandbox exec --name $name svc wg-fleet check 2>&1 | grep -q 'drops by policy'"
check "udp, IPv4: edge1:5353 is dropped there" closed udp 198.51.100.2 5353
# Every rule the warning proposes, run as it is written.
for rule in $(grep -o "iptables -I FORWARD -[io] [^ ;]* -j ACCEPT" <<<"$warned" | tr ' ' '@'); do
  in_node edge1 nft add rule ip filter FORWARD "$(tr '@' ' ' <<<"$rule" | sed -E 's/iptables -I FORWARD -i ([^ ]+) -j ACCEPT/iifname "\1" accept/; s/iptables -I FORWARD -o ([^ ]+) -j ACCEPT/oifname "\1" accept/')" \
    || echo "  could not add: $rule" >&2
done
check "with the rules the warning names, udp, IPv4: edge1:5353 answers again" \
  eventually answers udp 198.51.100.2 5353 "udp from $edge4 at 192.0.2.7"
chain_before=$(in_node edge1 nft list chain ip filter FORWARD)
in_node edge1 wg-fleet -q apply
check "apply leaves that chain as it was (wg-fleet changes no other table)" \
  test "$(in_node edge1 nft list chain ip filter FORWARD)" = "$chain_before"
in_node edge1 nft delete table ip filter

# The opt-in: firewall: foreign_accept makes apply insert those rules itself, marked as ours, and
# remove exactly them again when the opt-in goes. The chain has a rule of its own that stays.
in_node edge1 nft add table ip filter
in_node edge1 nft add chain ip filter FORWARD "{ type filter hook forward priority 0; policy drop; }"
in_node edge1 nft add rule ip filter FORWARD ip saddr 203.0.113.9 counter drop
theirs=$(in_node edge1 nft list chain ip filter FORWARD)
check "udp, IPv4: dropped again by the fresh chain" closed udp 198.51.100.2 5353
write_cfg "$(grep -v 'name: web4' <<<"$forwards")
firewall: { foreign_accept: true }"
planned=$(in_node edge1 wg-fleet plan 2>&1)
check "with foreign_accept, plan shows the rules to insert into ip filter FORWARD" \
  grep -qx '+ rule in table ip filter, chain FORWARD (another table.s; firewall: foreign_accept): insert oifname "edge" accept comment "wg-fleet:oif-edge"' <<<"$planned"
check "and no warning about that chain" bash -c "! grep -q 'chain FORWARD (hook forward, priority 0) drops by policy' <<<\"\$1\"" _ "$planned"
check "apply inserts them" in_node edge1 wg-fleet -q apply
check "udp, IPv4: edge1:5353 answers through the chain" eventually answers udp 198.51.100.2 5353 "udp from $edge4 at 192.0.2.7"
check "edge1: a second plan is empty" in_node edge1 wg-fleet -q plan --detailed-exitcode
listed=$(in_node edge1 nft list chain ip filter FORWARD)
check "the chain holds our two marked rules, first" \
  bash -c "grep -A2 'policy drop;' <<<\"\$1\" | tail -2 | grep -c 'comment \"wg-fleet:[io]if-edge\"' | grep -qx 2" _ "$listed"
check "and its own rule as it was" test "$(grep -v 'comment "wg-fleet:' <<<"$listed")" = "$theirs"
# A marked rule edited by hand is replaced; the chain's own rule is never touched.
handle=$(in_node edge1 nft -a list chain ip filter FORWARD | sed -n 's/.*comment "wg-fleet:iif-edge" # handle \([0-9]*\)/\1/p')
in_node edge1 nft replace rule ip filter FORWARD handle "$handle" iifname "edge" counter accept comment '"wg-fleet:iif-edge"'
check "plan replaces a marked rule edited by hand" \
  bash -c "\"$bin\" sandbox exec --name $name edge1 wg-fleet -q plan --detailed-exitcode >/dev/null; test \$? = 2"
in_node edge1 wg-fleet -q apply
check "after the apply, nothing left to do" in_node edge1 wg-fleet -q plan --detailed-exitcode
write_cfg "$(grep -v 'name: web4' <<<"$forwards")"
planned=$(in_node edge1 wg-fleet plan 2>&1)
check "without the opt-in, plan removes them" \
  grep -qx -- '- rule in table ip filter, chain FORWARD: iifname "edge" accept comment "wg-fleet:iif-edge"' <<<"$planned"
check "apply removes them" in_node edge1 wg-fleet -q apply
same_chain() { diff <(echo "$theirs") <(in_node edge1 nft list chain ip filter FORWARD) >&2; }
check "the chain is exactly as it was before" same_chain
check "udp, IPv4: dropped again" closed udp 198.51.100.2 5353
# A chain that goes away takes our rules with it: nothing to remove.
write_cfg "$(grep -v 'name: web4' <<<"$forwards")
firewall: { foreign_accept: true }"
in_node edge1 wg-fleet -q apply
in_node edge1 nft delete table ip filter
check "with the chain gone, nothing to do" in_node edge1 wg-fleet -q plan --detailed-exitcode

check "sandbox down" "$bin" sandbox down --name "$name"
finish
