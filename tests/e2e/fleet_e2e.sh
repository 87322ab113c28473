#!/usr/bin/env bash
# End to end, as a user would: the demo fleet (2 controllers, 3 peers) in network namespaces with
# real WireGuard (wireguard-go here), driven only through the wg-fleet command line.
#   up + all-pairs reachability; a second apply changes nothing; remove a peer, change an
#   endpoint, add a controller in the YAML and converge; `watch` undoes a manual
#   `wg set ... remove` on its next tick and keeps the last good config through an invalid edit.
# Usage: fleet_e2e.sh WG_FLEET_BINARY SOURCE_DIR   (root)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
name=e2e$$
tmp=$(mktemp -d /tmp/wgf-e2e.XXXXXX)
watch_pid=
notify_pid=
cleanup() {
  [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  [[ -n $notify_pid ]] && kill "$notify_pid" 2>/dev/null
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
wgf() { "$bin" -q sandbox --name "$name" "$@"; }
in_node() { local node=$1; shift; "$bin" sandbox exec --name "$name" "$node" "$@"; }
peers_of() { in_node "$1" wg show demo peers 2>/dev/null | wc -l; }

cfg=$tmp/fleet.yaml
cp "$src/examples/demo.yaml" "$cfg"
sed -i 's|^keys_dir:.*||' "$cfg"   # the sandbox supplies its own keys directory

check "sandbox up" wgf up "$cfg"
check "all pairs reach each other (hub topology)" wgf test
for n in hub1 hub2 alice bob carol; do
  check "$n: a second apply plans nothing (plan --detailed-exitcode = 0)" in_node "$n" wg-fleet -q plan --detailed-exitcode
done
check "hub1 has 4 peers" test "$(peers_of hub1)" = 4
check "alice has 2 peers (the controllers)" test "$(peers_of alice)" = 2

# Remove a peer from the fleet.
python3 - "$cfg" <<'PY'
import sys,re; p=sys.argv[1]; s=open(p).read()
s=re.sub(r"\n      carol:\n        controller: hub1", "", s); open(p,"w").write(s)
PY
check "remove carol: converge" wgf up "$cfg"
check "hub1 lost carol (3 peers)" test "$(peers_of hub1)" = 3
check "hub2 lost carol (3 peers)" test "$(peers_of hub2)" = 3
check "after removal, hub1 plans nothing" in_node hub1 wg-fleet -q plan --detailed-exitcode

# Change an endpoint: hub2 is now dialled on another port, which it also listens on.
hs_before=$(in_node hub1 wg show demo latest-handshakes | sort)
sed -i 's|endpoint: 10.77.0.2$|endpoint: "10.77.0.2:51899"|; s|^    port:.*||' "$cfg"
python3 - "$cfg" <<'PY'
import sys; p=sys.argv[1]; s=open(p).read()
s=s.replace("  demo:\n", "  demo:\n    port: 51899\n", 1); open(p,"w").write(s)
PY
check "change port and endpoint: converge" wgf up "$cfg"
check "hub1 listens on 51899" bash -c "\"$bin\" sandbox exec --name $name hub1 wg show demo listen-port | grep -qx 51899"
check "alice dials hub2 at 10.77.0.2:51899" bash -c "\"$bin\" sandbox exec --name $name alice wg show demo endpoints | grep -q '10.77.0.2:51899'"
check "all pairs still reach each other" wgf test

# Add a controller.
python3 - "$cfg" <<'PY'
import sys; p=sys.argv[1]; s=open(p).read()
s=s.replace("    controllers:\n", "    controllers:\n      hub3:\n        endpoint: 10.77.0.3\n", 1); open(p,"w").write(s)
PY
check "add controller hub3: converge" wgf up "$cfg"
check "alice now has 3 controllers" test "$(peers_of alice)" = 3
check "all pairs reach each other with hub3" wgf test

# watch: a manual removal is undone on the next tick; an invalid edit changes nothing.
# A stand-in for systemd's notify socket, to see READY/STATUS arrive.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(60)
with open(sys.argv[2], "a") as out:
    while True:
        try: out.write(s.recv(4096).decode() + "\n"); out.flush()
        except socket.timeout: break
' "$tmp/notify.sock" "$tmp/notify.log" &
notify_pid=$!
for _ in $(seq 1 50); do [[ -S $tmp/notify.sock ]] && break; sleep 0.1; done
NOTIFY_SOCKET=$tmp/notify.sock "$bin" sandbox exec --name "$name" hub1 wg-fleet watch --interval 1 >"$tmp/watch.log" 2>&1 &
watch_pid=$!
sleep 2
check "watch told systemd it is ready" grep -q "READY=1" "$tmp/notify.log"
check "watch reported its status to systemd" grep -q "STATUS=converged" "$tmp/notify.log"
kill -HUP "$watch_pid"
sleep 1
check "watch reloaded on SIGHUP" grep -q "(SIGHUP)" "$tmp/watch.log"
bob_key=$(cat /run/wg-fleet-sandbox/$name/keys/demo/bob.pub)
in_node hub1 wg set demo peer "$bob_key" remove
restored=no
for _ in $(seq 1 50); do
  if in_node hub1 wg show demo peers | grep -q "$bob_key"; then restored=yes; break; fi
  sleep 0.2
done
check "watch restored bob after a manual 'wg set ... remove'" test $restored = yes
check "watch logged the drift correction" grep -q "drift corrected" "$tmp/watch.log"
# alice dials in (no endpoint in the file): hub1 knows where from her packets. Removed by hand,
# she comes back with that endpoint at once, not when her side next rekeys.
alice_key=$(cat /run/wg-fleet-sandbox/$name/keys/demo/alice.pub)
alice_ep=$(in_node hub1 wg show demo endpoints | awk -v k="$alice_key" '$1 == k {print $2}')
check "hub1 has an endpoint for alice" test -n "$alice_ep" -a "$alice_ep" != "(none)"
in_node hub1 wg set demo peer "$alice_key" remove
alice_back=
for _ in $(seq 1 50); do
  alice_back=$(in_node hub1 wg show demo endpoints | awk -v k="$alice_key" '$1 == k {print $2}')
  [[ -n $alice_back ]] && break
  sleep 0.2
done
check "watch restored alice with the endpoint last seen for her ($alice_ep)" test -n "$alice_ep" -a "$alice_back" = "$alice_ep"
# The userspace WireGuard process dies: the next tick starts it again and reconfigures it.
wgpid=$(for p in $(ip netns pids "wgfsb-$name-hub1"); do [[ $(cat /proc/$p/comm 2>/dev/null) == wireguard-go ]] && echo $p; done | head -1)
check "hub1 runs wireguard-go" test -n "$wgpid"
[[ -n $wgpid ]] && kill -9 "$wgpid"
back=no
for _ in $(seq 1 75); do
  sleep 0.2
  npid=$(for p in $(ip netns pids "wgfsb-$name-hub1"); do [[ $(cat /proc/$p/comm 2>/dev/null) == wireguard-go ]] && echo $p; done | head -1)
  if [[ -n $npid && $npid != "$wgpid" ]] && [[ $(peers_of hub1) == 4 ]]; then back=yes; break; fi
done
check "watch restarted a killed wireguard-go and restored its 4 peers" test $back = yes
# Sessions with the restarted hub come back when the peers' timers notice (keepalive 25 s, then
# a new handshake): allow a minute.
reached=no
for _ in $(seq 1 30); do
  if in_node alice ping -c1 -W2 hub1.demo >/dev/null 2>&1; then reached=yes; break; fi
done
check "alice reaches the restarted hub1 again" test $reached = yes

dump_before=$(in_node hub1 wg show demo allowed-ips | sort)
cp "$cfg" "$tmp/good.yaml"
printf 'fleets:\n  demo:\n    controllers: [oops\n' > "$cfg.new" && mv "$cfg.new" "$cfg"
sleep 3
dump_after=$(in_node hub1 wg show demo allowed-ips | sort)
check "an invalid edit changed nothing" test "$dump_before" = "$dump_after"
check "watch reported the invalid edit" grep -q "last good configuration stays in force" "$tmp/watch.log"
check "watch is still running" kill -0 "$watch_pid"
cp "$tmp/good.yaml" "$cfg"
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null; watch_pid=
check "watch exited cleanly on SIGTERM" grep -q "exiting on" "$tmp/watch.log"

check "no secret in any journal" bash -c "! grep -rqF -f <(cat /run/wg-fleet-sandbox/$name/nodes/*/state/*.key) /run/wg-fleet-sandbox/$name/nodes/*/state/journal.log"
check "private keys are 0600" bash -c "test -z \"\$(find /run/wg-fleet-sandbox/$name/nodes/*/state -name '*.key' ! -perm 0600)\""

check "sandbox down" "$bin" sandbox down --name "$name"
check "no namespace left" bash -c "! ip netns list | grep -q wgfsb-$name"
finish
