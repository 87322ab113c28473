#!/usr/bin/env bash
# A run killed at any point leaves nothing the next run cannot find: `wg-fleet apply` of a
# 2,000-peer fleet on wireguard-go in a namespace of our own is SIGKILLed at a random moment,
# ITERATIONS times, alternating between two fleets with different peers so that every apply has
# thousands of changes to make; after each kill the next apply exits 0 and
# `plan --detailed-exitcode` exits 0. Then a revoked member:
#   - added by a run killed right after its peer appeared on the device, then removed from the
#     file: the next apply removes its peer;
#   - removed by a run that is killed part way: the next apply removes its peer.
# Usage: sigkill_e2e.sh WG_FLEET_BINARY SOURCE_DIR [ITERATIONS (default 10)]   (root)
set -u
bin=$(realpath "$1"); src=$(realpath "$2"); iterations=${3:-10}
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
id=$$
ns=wgfk$id
ifname=sk$id
tmp=$(mktemp -d /tmp/wgf-sigkill.XXXXXX)
run_pid=
cleanup() {
  [[ -n $run_pid ]] && kill -9 "$run_pid" 2>/dev/null
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$ns" || exit 1
ip netns exec "$ns" ip link set lo up
gen() {  # gen SEED OUT [extra gen_fleet options]
  python3 "$src/tests/bench/gen_fleet.py" --controllers 1 --peers 2000 --fleet "$ifname" --seed "$1" --out "$2" "${@:3}" 2>/dev/null
  sed -i "s|^prune_timeout:.*|hosts_file: $tmp/hosts|" "$2"
}
gen one "$tmp/one.yaml"
gen two "$tmp/two.yaml"
wgf() { ip netns exec "$ns" "$bin" -q -c "$1" --node server1 --state-dir "$tmp/state" "${@:2}"; }
# An apply of $1 in the background; run_pid is wg-fleet's own pid (`ip netns exec` execs it),
# so SIGKILL reaches wg-fleet itself, not a shell around it.
apply_bg() {
  ip netns exec "$ns" "$bin" -q -c "$1" --node server1 --state-dir "$tmp/state" apply >/dev/null 2>&1 &
  run_pid=$!
}

# Starts an apply of $1 in the background and SIGKILLs it after $2 milliseconds; says whether
# it was still running when killed.
kill_apply_after() {
  apply_bg "$1"
  sleep "$(( $2 / 1000 )).$(printf '%03d' $(( $2 % 1000 )))"
  local was=finished
  # Still running: alive and not a zombie waiting to be reaped.
  if [[ $(awk '{print $3}' "/proc/$run_pid/stat" 2>/dev/null) =~ ^[RSD]$ ]]; then was=killed; fi
  kill -9 "$run_pid" 2>/dev/null
  wait "$run_pid" 2>/dev/null
  run_pid=
  echo $was
}

# How long one full apply takes here (all 2,000 peers replaced), to spread the kills over it.
wgf "$tmp/one.yaml" apply >/dev/null 2>&1
start=$(date +%s%N)
wgf "$tmp/two.yaml" apply >/dev/null 2>&1
span=$(( ($(date +%s%N) - start) / 1000000 ))
(( span < 50 )) && span=50
echo "one full apply: ${span} ms (kills land within it)"

keys_of() { grep -A2 "^      [a-z]*-[0-9-]*:$" "$1" | sed -n 's/.*public_key: //p' | sort; }
keys_of "$tmp/one.yaml" >"$tmp/one.keys"
keys_of "$tmp/two.yaml" >"$tmp/two.keys"
killed=0
at_cfg=two  # where the node is
for i in $(seq 1 "$iterations"); do
  to=one; [[ $at_cfg == one ]] && to=two
  at=$(( RANDOM % span ))
  was=$(kill_apply_after "$tmp/$to.yaml" "$at")
  [[ $was == killed ]] && killed=$((killed+1))
  # Every other time the file goes back to what the node had before the killed run: what that
  # run added must then be found and removed too.
  next=$to; (( i % 2 == 0 )) && next=$at_cfg
  wgf "$tmp/$next.yaml" apply >"$tmp/next.out" 2>&1; rc=$?
  [[ $rc == 0 ]] || tail -5 "$tmp/next.out"
  check "kill $i at ${at} ms of an apply of '$to' ($was): the next apply, of '$next', converges" test $rc = 0
  wgf "$tmp/$next.yaml" plan --detailed-exitcode >/dev/null 2>&1; rc=$?
  check "kill $i: plan --detailed-exitcode exits 0" test $rc = 0
  check "kill $i: the device has exactly the peers of '$next'" \
    bash -c "diff -q <(ip netns exec $ns wg show $ifname peers | sort) $tmp/$next.keys >/dev/null"
  at_cfg=$next
done
echo "$killed of $iterations applies were killed while running"
check "most kills landed in a running apply" test $(( killed * 2 )) -ge "$iterations"

# A member added by a killed run, then revoked in the file.
victim=$(sed -n 's/^        public_key: //p' "$tmp/one.yaml" | sed -n '1000p')
victim_name=$(grep -B2 "public_key: $victim" "$tmp/one.yaml" | sed -n 's/^      \([a-z0-9-]*\):$/\1/p')
# `revoked`: the fleet `one` without the victim, and with a LAN routed by every third peer
# instead of every tenth (hundreds of peer and route changes besides the removal).
gen one "$tmp/one-more-routes.yaml" --routes-every 3
python3 - "$tmp/one-more-routes.yaml" "$victim_name" "$tmp/revoked.yaml" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
out, skip = [], False
for l in lines:
    if l == f"      {sys.argv[2]}:":
        skip = True
        continue
    if skip and l.startswith("        "):
        continue
    skip = False
    out.append(l)
open(sys.argv[3], "w").write("\n".join(out))
PY
check "the revoked fleet lacks the victim" bash -c "! grep -q '$victim' '$tmp/revoked.yaml'"
has_victim() { ip netns exec "$ns" wg show "$ifname" peers 2>/dev/null | grep -qF "$victim"; }
# The run is killed as soon as its journal says the victim's peer was set (the journal is
# appended right after each batch), which is before it has finished.
journal=$tmp/state/journal.log
caught=no
for attempt in 1 2 3; do
  wgf "$tmp/two.yaml" apply >/dev/null 2>&1  # the victim's peer is not on the device
  has_victim && break
  offset=$(stat -c %s "$journal")
  apply_bg "$tmp/one.yaml"
  while kill -0 "$run_pid" 2>/dev/null && ! tail -c +$((offset + 1)) "$journal" | grep -q "ok + peer $victim_name "; do :; done
  kill -STOP "$run_pid" 2>/dev/null && caught=yes
  kill -9 "$run_pid" 2>/dev/null; wait "$run_pid" 2>/dev/null; run_pid=
  [[ $caught == yes ]] && break
done
check "an apply was killed after adding the victim's peer, before it finished" test $caught = yes
check "the victim's peer is on the device" has_victim
check "the revoked fleet applies" wgf "$tmp/revoked.yaml" apply
check "the revoked member's peer is gone" bash -c "! ip netns exec $ns wg show $ifname peers | grep -qF '$victim'"
check "plan --detailed-exitcode exits 0" wgf "$tmp/revoked.yaml" plan --detailed-exitcode

# A run that removes the member (among hundreds of other changes) is killed part way.
for round in 1 2 3; do
  wgf "$tmp/one.yaml" apply >/dev/null 2>&1
  check "round $round: the victim's peer is on the device" has_victim
  at=$(( RANDOM % span ))
  was=$(kill_apply_after "$tmp/revoked.yaml" "$at")
  check "round $round: removal killed at ${at} ms ($was): the next apply converges" wgf "$tmp/revoked.yaml" apply
  check "round $round: the removed member's peer is gone" bash -c "! ip netns exec $ns wg show $ifname peers | grep -qF '$victim'"
  check "round $round: plan --detailed-exitcode exits 0" wgf "$tmp/revoked.yaml" plan --detailed-exitcode
done

finish
