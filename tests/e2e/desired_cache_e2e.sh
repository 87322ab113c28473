#!/usr/bin/env bash
# The desired-state cache through the command line, in a network namespace of its own: an apply
# that generated a key keeps nothing; the next verified apply keeps the cache (0600, no private
# key in it); later runs use it (-v says so, nothing is parsed) and --no-cache bypasses it; an
# edit of the file is a miss that applies the edit; a corrupt or writable cache file is ignored
# and replaced.
# Usage: desired_cache_e2e.sh WG_FLEET_BINARY   (root: network namespaces, wireguard-go)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
ns=wgfdc$$; ifn=dc$$
tmp=$(mktemp -d /tmp/wgf-dcache.XXXXXX)
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
  sleep 0.3
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns" || { echo "cannot create a namespace"; exit 1; }
ip netns exec "$ns" ip link set lo up

key() { wg genkey | wg pubkey; }
cfg=$tmp/fleet.yaml
cat > "$cfg" <<YAML
state_dir: $tmp/state
hosts_file: $tmp/files/hosts
http_routes_dir: $tmp/files/routes
fleets:
  $ifn:
    controllers:
      c1: { endpoint: "192.0.2.1" }
    peers:
      p1: { controller: c1, public_key: "$(key)" }
      p2: { controller: c1, public_key: "$(key)" }
YAML
cache=$tmp/state/desired.cache
# The cache is looked for where the state directory is known before the file is read.
W() { ip netns exec "$ns" "$bin" -c "$cfg" --node c1 --state-dir "$tmp/state" "$@"; }
peers() { ip netns exec "$ns" wg show "$ifn" peers | wc -l; }

W -v apply > "$tmp/1" 2>&1; rc=$?
check "the first apply converges (exit 0)" test $rc = 0
check "it generated the key, so it keeps no cache" grep -q "desired state not kept: a key file or published key changed during the run" "$tmp/1"
check "no cache file after it" test ! -e "$cache"

W -v apply > "$tmp/2" 2>&1; rc=$?
check "the second apply converges" test $rc = 0
check "it keeps the cache" grep -q "desired state kept in $cache" "$tmp/2"
check "the cache is 0600" test "$(stat -c %a "$cache")" = 600
secret=$(cat "$tmp/state/$ifn.key")
check "the cache holds no private key" bash -c "! grep -qF '$secret' '$cache' && ! grep -qF '${secret:0:20}' '$cache'"

W -v apply > "$tmp/3" 2>&1; rc=$?
check "a no-op apply from the cache converges" test $rc = 0
check "-v says the cache was used" grep -q "desired state from the cache" "$tmp/3"
check "and nothing was parsed" bash -c "grep 'wg-fleet: timing:' '$tmp/3' | grep -q 'cache ' && ! grep 'wg-fleet: timing:' '$tmp/3' | grep -q 'parse '"
check "No changes" grep -q "No changes: the node matches the fleet." "$tmp/3"
W -v plan --detailed-exitcode > "$tmp/plan" 2>&1; rc=$?
check "plan from the cache: nothing to do (exit 0)" test $rc = 0
check "plan says the cache was used" grep -q "desired state from the cache" "$tmp/plan"
W -v --no-cache apply > "$tmp/nc" 2>&1; rc=$?
check "--no-cache: converges" test $rc = 0
check "--no-cache parses and does not look" bash -c "grep 'wg-fleet: timing:' '$tmp/nc' | grep -q 'parse ' && ! grep -q 'desired state.*cache' '$tmp/nc'"

printf '      p3: { controller: c1, public_key: "%s" }\n' "$(key)" >> "$cfg"
W -v apply > "$tmp/edit" 2>&1; rc=$?
check "an edited file is a miss" grep -q "desired state not from the cache: inputs changed" "$tmp/edit"
check "and the edit is applied (3 peers)" test $rc = 0 -a "$(peers)" = 3
W -v apply > "$tmp/after" 2>&1
check "the next run uses the new cache" grep -q "desired state from the cache" "$tmp/after"

printf 'wg-fleet desired cache 1\ngarbage' > "$cache"
W -v apply > "$tmp/corrupt" 2>&1; rc=$?
check "a corrupt cache is not used" grep -q "desired state not from the cache: not readable" "$tmp/corrupt"
check "the run converges and replaces it" test $rc = 0
W -v apply > "$tmp/replaced" 2>&1
check "the replaced cache is used" grep -q "desired state from the cache" "$tmp/replaced"

chmod o+w "$cache"
W -v apply > "$tmp/writable" 2>&1; rc=$?
check "a cache writable by others is not used" grep -q "desired state not from the cache: none kept" "$tmp/writable"
check "it is replaced, 0600" test $rc = 0 -a "$(stat -c %a "$cache")" = 600
check "3 peers throughout" test "$(peers)" = 3

finish
