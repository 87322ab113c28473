#!/usr/bin/env bash
# Safety promises through the command line, on wireguard-go in a network namespace of our own:
#   routes: a protocol-87 route on a foreign veth survives apply; two wg-fleet instances (other
#     state dirs, other interfaces) keep each other's routes;
#   adoption: a WireGuard device wg-fleet did not create is left as it is (key, port, peers) and
#     apply exits 1 naming --adopt; with --adopt it is taken over and recorded;
#   lock: a run that cannot get the state directory's lock within --lock-timeout exits 1 naming
#     the holder's pid; applies of two configs started together run one after the other and the
#     node ends exactly at one of them; parallel keygens agree on one key, the published one.
# Usage: safety_e2e.sh WG_FLEET_BINARY SOURCE_DIR   (root)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
command -v wireguard-go >/dev/null || { echo "needs wireguard-go"; exit 1; }
id=$$
ns=wgfs$id
tmp=$(mktemp -d /tmp/wgf-safety.XXXXXX)
holder_pid=
cleanup() {
  [[ -n $holder_pid ]] && kill "$holder_pid" 2>/dev/null
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
in_ns() { ip netns exec "$ns" "$@"; }
wgf() { in_ns "$bin" -q "$@"; }

ip netns add "$ns" || exit 1
in_ns ip link set lo up

# fleet NAME PORT ROUTE [EXTRA PEER LINE]: a controller c1 with one peer routing ROUTE.
fleet() {
  cat <<EOF
hosts_file: $tmp/hosts-$1
fleets:
  $1:
    port: $2
    controllers:
      c1: { endpoint: 198.51.100.1 }
    peers:
      p1: { controller: c1, public_key: "L1BSyf0VsZoYxYTQE2NWgZhhPww06EQJ73k4cJoVnsI=", routes: [$3] }
${4:-}
EOF
}

# ---- routes scoped to our own interfaces --------------------------------------------------
fa=ra$id; fb=rb$id
fleet "$fa" 51820 10.20.0.0/16 >"$tmp/a.yaml"
fleet "$fb" 51821 10.30.0.0/16 >"$tmp/b.yaml"
in_ns ip link add vx$id type veth peer name vy$id
in_ns ip link set vx$id up
in_ns ip route add 10.99.0.0/16 dev vx$id proto 87
A() { wgf -c "$tmp/a.yaml" --node c1 --state-dir "$tmp/sa" "$@"; }
B() { wgf -c "$tmp/b.yaml" --node c1 --state-dir "$tmp/sb" "$@"; }
check "instance A applies" A apply
check "instance B (other state dir, other interface) applies" B apply
check "instance A applies again" A apply
routes=$(in_ns ip route show proto 87)
check "a protocol-87 route on a foreign veth survives both instances" grep -q "10.99.0.0/16 dev vx$id" <<<"$routes"
check "A's route survives B's apply" grep -q "10.20.0.0/16 dev $fa" <<<"$routes"
check "B's route survives A's apply" grep -q "10.30.0.0/16 dev $fb" <<<"$routes"
check "A plans no route change" bash -c "! ip netns exec $ns $bin -q -c $tmp/a.yaml --node c1 --state-dir $tmp/sa plan | grep -q route"
check "B plans no route change" bash -c "! ip netns exec $ns $bin -q -c $tmp/b.yaml --node c1 --state-dir $tmp/sb plan | grep -q route"

# ---- a WireGuard device wg-fleet did not create -------------------------------------------
fd=fd$id
fleet "$fd" 51822 10.40.0.0/16 >"$tmp/d.yaml"
in_ns wireguard-go "$fd" >/dev/null 2>&1
wg genkey >"$tmp/foreign.key"
in_ns wg set "$fd" private-key "$tmp/foreign.key" listen-port 51999 peer "HZKtS2mH+gNHzF0vts+eR8g/T2yus7Xvb2KXMFKJIcM=" allowed-ips 10.50.0.0/24
before=$(in_ns wg showconf "$fd")
D() { in_ns "$bin" -c "$tmp/d.yaml" --node c1 --state-dir "$tmp/sd" "$@"; }
D apply >"$tmp/d.out" 2>"$tmp/d.err"; rc=$?
check "apply on a foreign device exits 1" test $rc = 1
check "the error says the device is not ours and how to adopt it" grep -q "interface $fd is a WireGuard device that wg-fleet did not create.*wg-fleet apply --adopt $fd" "$tmp/d.err"
check "the foreign device is untouched: key, port, peers" test "$(in_ns wg showconf "$fd")" = "$before"
D plan --detailed-exitcode >/dev/null 2>&1; rc=$?
check "plan on a foreign device exits 1 too" test $rc = 1
D plan --adopt "$fd" >"$tmp/d.plan" 2>&1
check "plan --adopt shows the key change and what it disrupts" grep -q "private key.*" "$tmp/d.plan"
check "apply --adopt takes the device over" D -q apply --adopt "$fd"
check "the adopted device has the node's key" test "$(in_ns wg show "$fd" private-key)" = "$(cat "$tmp/sd/$fd.key")"
check "the adopted device listens on the fleet's port" test "$(in_ns wg show "$fd" listen-port)" = 51822
check "the adopted device is recorded: later runs need no --adopt" D -q plan --detailed-exitcode

# ---- the state directory's lock -------------------------------------------------------------
python3 - "$tmp/sa/lock" "$tmp/holding" <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()} test-holder\n".encode())
open(sys.argv[2], "w").close()
time.sleep(120)
PY
holder_pid=$!
for _ in $(seq 1 100); do [[ -e $tmp/holding ]] && break; sleep 0.05; done
in_ns "$bin" -q -c "$tmp/a.yaml" --node c1 --state-dir "$tmp/sa" --lock-timeout 1 apply 2>"$tmp/lock.err"; rc=$?
check "apply gives up after --lock-timeout with exit 1" test $rc = 1
check "the message names the holder's pid and command" grep -q "holds this node's state directory $tmp/sa: pid $holder_pid (test-holder)" "$tmp/lock.err"
in_ns "$bin" -q -c "$tmp/a.yaml" --node c1 --state-dir "$tmp/sa" --lock-timeout 1 keygen >/dev/null 2>"$tmp/lock2.err"; rc=$?
check "keygen waits for the lock too, and says so" bash -c "[[ $rc == 1 ]] && grep -q \"pid $holder_pid (test-holder)\" $tmp/lock2.err"
check "plan does not need the lock" A plan >/dev/null
kill "$holder_pid"; wait "$holder_pid" 2>/dev/null; holder_pid=
check "apply runs once the holder is gone" A apply

# Two applies of different configs at once on one state dir: one after the other; the node ends
# exactly at one of them.
fp=pp$id
python3 "$src/tests/bench/gen_fleet.py" --controllers 1 --peers 300 --fleet "$fp" --seed one --out "$tmp/p1.yaml" 2>/dev/null
python3 "$src/tests/bench/gen_fleet.py" --controllers 1 --peers 300 --fleet "$fp" --seed two --out "$tmp/p2.yaml" 2>/dev/null
sed -i -e "s|^prune_timeout:.*|hosts_file: $tmp/hosts-p|" -e "s|^    port: 51820|    port: 51830|" "$tmp/p1.yaml" "$tmp/p2.yaml"
P() { in_ns "$bin" -q -c "$1" --node server1 --state-dir "$tmp/sp" "${@:2}"; }
peers_of() { grep -A2 "^      [a-z]*-[0-9]*:$" "$1" | sed -n 's/.*public_key: //p' | sort; }
for round in 1 2 3; do
  P "$tmp/p1.yaml" apply >"$tmp/r1.out" 2>&1 & a=$!
  P "$tmp/p2.yaml" apply >"$tmp/r2.out" 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  [[ $ra$rb == 00 ]] || { echo "exit codes $ra $rb:"; cat "$tmp/r1.out" "$tmp/r2.out"; }
  check "round $round: both applies complete (exit 0, 0)" test "$ra$rb" = 00
  live=$(in_ns wg show "$fp" peers | sort)
  one=no; [[ $live == "$(peers_of "$tmp/p1.yaml")" ]] && one=p1; [[ $live == "$(peers_of "$tmp/p2.yaml")" ]] && one=p2
  check "round $round: the device holds exactly one config's peers" test $one != no
  other=p2; [[ $one == p2 ]] && other=p1
  P "$tmp/$one.yaml" plan --detailed-exitcode >/dev/null; r_one=$?
  P "$tmp/$other.yaml" plan --detailed-exitcode >/dev/null; r_other=$?
  check "round $round: plan of the winner exits 0, of the other 2" test "$r_one$r_other" = 02
done

# Parallel first keygens: one key; every run prints it; the published .pub is it.
fk=kg$id
{ echo "keys_dir: $tmp/keys"; fleet "$fk" 51823 10.60.0.0/16; } >"$tmp/k.yaml"
for i in $(seq 1 12); do
  "$bin" -q -c "$tmp/k.yaml" --node c1 --state-dir "$tmp/sk" keygen >"$tmp/kg.$i" 2>&1 &
done
wait
check "parallel keygens all print the same public key" test "$(cat "$tmp"/kg.* | sort -u | wc -l)" = 1
check "it is the key file's public key" test "$(awk '{print $2}' "$tmp/kg.1")" = "$(wg pubkey <"$tmp/sk/$fk.key")"
check "and the published one" test "$(cat "$tmp/keys/$fk/c1.pub")" = "$(wg pubkey <"$tmp/sk/$fk.key")"
check "no temporary key file is left" test "$(ls -A "$tmp/sk" | grep -vc -e "^lock$" -e "^$fk.key$")" = 0

finish
