#!/usr/bin/env bash
# Migration from the Python wg-fleet on wireguard-go in network namespaces: the server's wg_<fleet>
# device as the Python manager left it (`wg-quick up` of the wg_<fleet>.conf it writes, then
# `wg set … peer KEY allowed-ips ADDR` for a registered client), with a client in a second
# namespace that has a session with it (a ping over the tunnel). Then `serve --import-python`
# of its clients.db and conf, and `apply --adopt wg_<fleet>` (the documented opt-in): the device
# is the same (ifindex), keeps its private key, the client is still its peer with the same
# allowed IPs and its session (latest handshake kept), and the client still pings across.
# Without the import the adoption would give the device a new key and the ping would fail.
#
#   python_import_netns.sh WG_FLEET   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
for t in wireguard-go wg-quick wg python3; do command -v $t >/dev/null || { echo "needs $t"; exit 1; }; done
id=$$
fleet=pi$id
dev=wg_$fleet
cdev=wgc$id
nss=wgpis$id nsc=wgpic$id
tmp=$(mktemp -d /tmp/wgf-pyimport-netns.XXXXXX)
cleanup() {
  remove_netns "$nss" "$nsc"
  rm -f "/var/run/wireguard/$dev.sock" "/var/run/wireguard/$cdev.sock"
  rm -rf "$tmp"
}
trap cleanup EXIT
# A first echo can go before the tunnel's addresses are usable (IPv6 duplicate address detection
# on a fresh interface) or while the first handshake is made: up to five tries.
ping_server() { for _ in 1 2 3 4 5; do C ping -6 -c 1 -W 2 "$prefix::1" && return 0; sleep 1; done; return 1; }
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_HIDE_KEYS=always

prefix=fd00:a0a8:34d:2a00
port=$((20000 + id % 20000))
server_client_netns "$id" || exit 1

# ---- the server as the Python manager left it ----
umask 077
mkdir -p "$tmp/etc-wireguard"
server_key=$(wg genkey)
cat >"$tmp/etc-wireguard/$dev.conf" <<EOF
[Interface]
Address = $prefix::1
ListenPort = $port
PrivateKey = $server_key
EOF
client_key=$(wg genkey)
client_pub=$(wg pubkey <<<"$client_key")
client_addr=$prefix:1234:5678:9abc:def0
S wg-quick up "$tmp/etc-wireguard/$dev.conf" >/dev/null 2>&1 || { echo "wg-quick up $dev failed"; exit 1; }
S wg set "$dev" peer "$client_pub" allowed-ips "$client_addr"
# The bare Address gives the server a /128 and no route back to its clients; a working Python
# server had one (by hand or a PostUp).
S ip -6 route add "$prefix::/64" dev "$dev"
# ---- the client, as the register response configured it ----
cat >"$tmp/$cdev.conf" <<EOF
[Interface]
PrivateKey = $client_key
Address = $client_addr

[Peer]
PublicKey = $(wg pubkey <<<"$server_key")
Endpoint = 192.0.2.1:$port
AllowedIPs = $prefix::1/128
PersistentKeepalive = 25
EOF
C wg-quick up "$tmp/$cdev.conf" >/dev/null 2>&1 || { echo "wg-quick up $cdev failed"; exit 1; }
check "before: the client pings the server over the tunnel" ping_server
ifindex=$(S cat "/sys/class/net/$dev/ifindex")
key_before=$(S wg show "$dev" private-key)
hs_before=$(S wg show "$dev" latest-handshakes | awk -v k="$client_pub" '$1 == k {print $2}')
check "before: the server has a handshake with the client" test "${hs_before:-0}" -gt 0

python3 - "$tmp/clients.db" "$fleet" "$client_pub" "$client_addr" <<'PY'
import sqlite3, sys, datetime
db = sqlite3.connect(sys.argv[1])
db.execute("""CREATE TABLE clients (id INTEGER NOT NULL, fleet_id VARCHAR NOT NULL, public_key VARCHAR NOT NULL,
    assigned_ip VARCHAR NOT NULL, http_request_ip VARCHAR NOT NULL, hostname VARCHAR, timestamp DATETIME NOT NULL, PRIMARY KEY (id))""")
now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat(" ")
db.execute("INSERT INTO clients VALUES (1, ?, ?, ?, '192.0.2.2', 'excavator', ?)", (sys.argv[2], sys.argv[3], sys.argv[4], now))
db.commit()
PY
cat >"$tmp/fleet.yaml" <<EOF
domain: test.internal
state_dir: $tmp/state
hosts_file: $tmp/hosts
fleets:
  $fleet:
    ip6: $prefix::1
    subnet: $prefix::/64
    external_ip: 192.0.2.1
    port: $port
    server: srv
    exclusive: true  # peers the fleet does not know are removed: the client stays only as imported
EOF
W() { S "$bin" -c "$tmp/fleet.yaml" --node srv "$@"; }

W serve --import-python "$tmp/clients.db" --wg-conf-dir "$tmp/etc-wireguard" >"$tmp/import.out" 2>&1; rc=$?
cat "$tmp/import.out"
check "the import exits 0" test $rc -eq 0
check "the import prints no private key" bash -c "! grep -qF -e '$server_key' -e '$client_key' '$tmp/import.out'"
W -q apply >"$tmp/apply0.out" 2>&1; rc=$?
check "apply without the opt-in leaves the Python manager's device alone (exit 1, names --adopt $dev)" \
  bash -c "[[ $rc == 1 ]] && grep -q -- '--adopt $dev' '$tmp/apply0.out'"
W -q apply --adopt "$dev" >"$tmp/apply.out" 2>&1; rc=$?
cat "$tmp/apply.out"
check "apply --adopt $dev exits 0" test $rc -eq 0
check "the device was not recreated (same ifindex)" test "$(S cat "/sys/class/net/$dev/ifindex" 2>/dev/null)" = "$ifindex"
check "the device keeps its private key" test "$(S wg show "$dev" private-key)" = "$key_before"
check "the client is still a peer with the same allowed IPs" \
  bash -c "ip netns exec $nss wg show $dev allowed-ips | grep -qx '$client_pub	$client_addr/128'"
hs_after=$(S wg show "$dev" latest-handshakes | awk -v k="$client_pub" '$1 == k {print $2}')
check "the client's session was kept (latest handshake not reset: $hs_before -> ${hs_after:-none})" test "${hs_after:-0}" -ge "$hs_before"
check "after: the client still pings the server over the tunnel" ping_server
check "after: the server's hosts file names the client" grep -q "^$client_addr excavator\.$fleet\.test\.internal$" "$tmp/hosts"
check "the node is converged (plan --detailed-exitcode exits 0, no --adopt needed)" W -q plan --detailed-exitcode
finish
