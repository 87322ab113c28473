#!/usr/bin/env bash
# examples/client/ against a real `wg-fleet serve`, in two network namespaces (root): the register
# script enrols the client (its own key, a token), `wg-quick up` of the config it wrote reaches the
# server's fleet address over the tunnel, and the ping, run exactly as wg-fleet-ping.service's
# ExecStart with the curl configuration the script wrote, gives the client its host name in the
# server's hosts file.
#
#   client_example_netns.sh WG_FLEET SOURCE_DIR   (root)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
for t in wireguard-go wg-quick wg curl jq; do command -v $t >/dev/null || { echo "needs $t"; exit 1; }; done
id=$$
fleet=ce$id
sdev=wgce$id cdev=wgcl$id
nss=wgces$id nsc=wgcec$id
tmp=$(mktemp -d /tmp/wgf-client-netns.XXXXXX)
serve_pid=
cleanup() {
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  remove_netns "$nss" "$nsc"
  rm -f "/var/run/wireguard/$sdev.sock" "/var/run/wireguard/$cdev.sock"
  rm -rf "$tmp"
}
trap cleanup EXIT
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go
# Waits up to about 30 s for a command to succeed (a liveness wait, not a timing assertion).
until_ok() { for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

prefix=fd00:cafe:$((id % 65536 / 4096)):1
port=$((20000 + id % 20000))
server_client_netns "$id" || exit 1

umask 077
echo "token-$id-$RANDOM" >"$tmp/token"
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
    interface: $sdev
serve:
  listen: ["192.0.2.1:8000", "[$prefix::1]:8000"]
  token_file: $tmp/token
EOF
S "$bin" -c "$tmp/fleet.yaml" --node server serve --interval 5 >"$tmp/serve.log" 2>&1 &
serve_pid=$!
check "serve answers on 192.0.2.1:8000" until_ok S curl -fsS http://192.0.2.1:8000/health

C env WG_FLEET_CONF_DIR="$tmp/client-wireguard" WG_FLEET_PING_CONF="$tmp/client-ping.curlrc" WG_FLEET_TOKEN_FILE="$tmp/token" \
  WG_FLEET_HOSTNAME=excavator "$src/examples/client/wg-fleet-register" http://192.0.2.1:8000 "$fleet" "$cdev" >"$tmp/register.out" 2>&1
rc=$?
cat "$tmp/register.out"
check "wg-fleet-register exits 0" test $rc -eq 0
conf=$tmp/client-wireguard/$cdev.conf
check "its config is 0600" test "$(stat -c %a "$conf" 2>/dev/null)" = 600
addr=$(sed -n 's/^Address = \(.*\)\/64$/\1/p' "$conf")
check "the server holds the client's key as a peer at its address" \
  until_ok bash -c "ip netns exec $nss wg show $sdev allowed-ips | grep -qx \"\$(wg pubkey < <(sed -n 's/^PrivateKey = //p' '$conf'))	$addr/128\""
check "wg-quick up of the config it wrote" C bash -c "wg-quick up '$conf' >/dev/null 2>&1"
check "the client pings the server's fleet address over the tunnel" until_ok C ping -6 -c 1 -W 1 "$prefix::1"

exec_start=$(sed -n 's/^ExecStart=//p' "$src/examples/client/wg-fleet-ping.service")
exec_start=${exec_start//%d\/curlrc/$tmp/client-ping.curlrc}
read -r -a argv <<<"$exec_start"
out=$(C "${argv[@]}" 2>&1); rc=$?
check "the ping unit's ExecStart answers {\"status\": \"ok\"} ($out)" bash -c "[[ $rc == 0 ]] && jq -e '.status == \"ok\"' <<<'$out' >/dev/null"
check "the server's hosts file names the client" until_ok grep -qx "$addr excavator\.$fleet\.test\.internal" "$tmp/hosts"
finish || { cat "$tmp/serve.log"; exit 1; }
