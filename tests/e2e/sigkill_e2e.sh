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
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)"; [[ ${CI:-} && ${CI:-} != false ]] && exit 1 || exit 0; }
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
pass=0; fail=0
ok() { echo "ok   $*"; pass=$((pass+1)); }
bad() { echo "FAIL $*"; fail=$((fail+1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

ip netns add "$ns" || exit 1
ip netns exec "$ns" ip link set lo up
gen() {  # gen SEED OUT [extra gen_fleet options]
  python3 "$src/tests/bench/gen_fleet.py" --controllers 1 --peers 2000 --fleet "$ifname" --seed "$1" --out "$2" "${@:3}" 2>/dev/null
  sed -i "s|^prune_timeout:.*|hosts_file: $tmp/hosts|" "$2"
}
gen one "$tmp/one.yaml"
gen two "$tmp/two.yaml"
wgf() { ip netns exec "$ns" "$bin" -q -c "$1" --node server1 --state-dir "$tmp/state" "${@:2}"; }

# Starts an apply of $1 in the background and SIGKILLs it after $2 milliseconds; says whether
# it was still running when killed.
kill_apply_after() {
  wgf "$1" apply >/dev/null 2>&1 &
  run_pid=$!
  sleep "$(( $2 / 1000 )).$(printf '%03d' $(( $2 % 1000 )))"
  local was=finished
  if kill -0 "$run_pid" 2>/dev/null; then was=killed; fi
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

killed=0
for i in $(seq 1 "$iterations"); do
  cfg=$tmp/one.yaml; (( i % 2 == 0 )) && cfg=$tmp/two.yaml  # the node is at `two` before the first
  at=$(( RANDOM % span ))
  was=$(kill_apply_after "$cfg" "$at")
  [[ $was == killed ]] && killed=$((killed+1))
  wgf "$cfg" apply >"$tmp/next.out" 2>&1; rc=$?
  [[ $rc == 0 ]] || cat "$tmp/next.out" | tail -5
  check "kill $i at ${at} ms ($was): the next apply converges" test $rc = 0
  wgf "$cfg" plan --detailed-exitcode >/dev/null 2>&1; rc=$?
  check "kill $i: plan --detailed-exitcode exits 0" test $rc = 0
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
caught=no
for attempt in 1 2 3; do
  wgf "$tmp/two.yaml" apply >/dev/null 2>&1  # the victim's peer is not on the device
  has_victim && break
  wgf "$tmp/one.yaml" apply >/dev/null 2>&1 &
  run_pid=$!
  while kill -0 "$run_pid" 2>/dev/null && ! has_victim; do :; done
  if kill -0 "$run_pid" 2>/dev/null; then caught=yes; fi
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

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
