#!/bin/bash
# The desired-state cache at N peers, interleaved on one converged node (root; wireguard-go):
# each round times a no-op `wg-fleet apply` (cache hit), `wg-fleet apply --no-cache` and `wg
# syncconf` of `wg showconf`, wall clock; prints the medians, then three `-v` lines of each.
# usage: noop_cache_ab.sh WG_FLEET_BIN [PEERS=10000] [ROUNDS=11]
set -u
bin=$1; n=${2:-10000}; rounds=${3:-11}
ns=wgfab$$; ifn=wgab$$
tmp=$(mktemp -d /tmp/wgfab.XXXXXX)
cleanup() { ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null; sleep 0.3; ip netns del $ns 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add $ns; ip netns exec $ns ip link set lo up
python3 "$(dirname "$0")/gen_fleet.py" --controllers 1 --peers $n --out $tmp/src.yaml --fleet $ifn >/dev/null 2>&1
{ echo "hosts_file: $tmp/files/hosts"; echo "http_routes_dir: $tmp/files/routes"; cat $tmp/src.yaml; } > $tmp/fleet.yaml
node=$(grep -A1 "controllers:" $tmp/fleet.yaml | tail -1 | sed 's/^ *\([^:]*\):.*/\1/')
W() { ip netns exec $ns "$bin" "$@" -c $tmp/fleet.yaml --node $node --state-dir $tmp/state; }
W -q apply; W -q apply   # the first generates the key (not kept), the second keeps the cache
ip netns exec $ns wg showconf $ifn > $tmp/sync.conf
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>&1; echo $(( ($(date +%s%N) - s) / 1000000 )); }
for i in $(seq $rounds); do
  a=$(ms W -q apply); b=$(ms W -q --no-cache apply); c=$(ms ip netns exec $ns wg syncconf $ifn $tmp/sync.conf)
  echo "$a $b $c"
done > $tmp/r
python3 - $tmp/r <<'PY'
import sys, statistics as st
rows=[list(map(int,l.split())) for l in open(sys.argv[1])]
for i,name in enumerate(["apply (cache hit)","apply --no-cache","wg syncconf"]):
    v=[r[i] for r in rows]; print(f"{name}: median {st.median(v):.0f} ms ({min(v)}-{max(v)})")
m=[st.median([r[i] for r in rows]) for i in range(3)]
print(f"ratios: hit/syncconf {m[0]/m[2]:.2f}x, no-cache/syncconf {m[1]/m[2]:.2f}x")
PY
for i in 1 2 3; do W -v apply 2>&1 | grep "timing:"; W -v --no-cache apply 2>&1 | grep "timing:"; done
