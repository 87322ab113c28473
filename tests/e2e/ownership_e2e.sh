#!/usr/bin/env bash
# Ownership through the command line, in a sandbox: a managed file wg-fleet did not write is a
# conflict (plan shows it and exits 2 with --detailed-exitcode; apply leaves it byte for byte and
# exits 1); a managed path that resolves into state_dir is refused before anything is written;
# a key that will be generated is a planned change that apply performs as printed.
# Usage: ownership_e2e.sh WG_FLEET_BINARY SOURCE_DIR   (root: network namespaces)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
name=own$$
tmp=$(mktemp -d /tmp/wgf-own.XXXXXX)
cleanup() { "$bin" sandbox down --name "$name" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
node() { "$bin" sandbox exec --name "$name" hub1 wg-fleet "$@"; }

cfg=$tmp/fleet.yaml
sed 's|^keys_dir:.*||' "$src/examples/demo.yaml" > "$cfg"
"$bin" -q sandbox up --name "$name" "$cfg" >/dev/null 2>&1 || { echo "sandbox up failed"; exit 1; }
nd=/run/wg-fleet-sandbox/$name/nodes/hub1
hosts=$nd/files/run/wg_fleet_hosts
check "hub1's hosts file carries the marker" grep -qx "# Managed by wg-fleet: edits are overwritten." "$hosts"

# Files without the marker are never overwritten.
rm "$hosts"; printf '127.0.0.1 localhost\n' > "$hosts"; chmod 0640 "$hosts"; chown 4321:4321 "$hosts"
before=$(stat -c '%i %a %u %g %Y' "$hosts"; sha256sum < "$hosts")
node plan --detailed-exitcode > "$tmp/plan" 2>&1; rc=$?
check "plan --detailed-exitcode exits 2 on a conflict" test $rc = 2
check "plan shows the conflict" grep -qx "! conflict: $hosts exists and was not written by wg-fleet; left as is" "$tmp/plan"
check "plan does not claim no changes" bash -c "! grep -q 'No changes' '$tmp/plan'"
node status > "$tmp/status" 2>&1
check "status shows the conflict, and its last line says it keeps the node from matching" bash -c "grep -q '! conflict: $hosts' '$tmp/status' && tail -n1 '$tmp/status' | grep -q 'conflicts\\? keeps\\? the node from matching the fleet'"
node apply > "$tmp/apply" 2>&1; rc=$?
check "apply exits 1 on a conflict" test $rc = 1
check "apply names the path and how to resolve it" grep -q "conflict: $hosts exists and was not written by wg-fleet.*remove or move each file, or make its first line" <(tr '\n' ' ' < "$tmp/apply")
check "the file is left byte for byte (content, mode, owner, inode, mtime)" test "$before" = "$(stat -c '%i %a %u %g %Y' "$hosts"; sha256sum < "$hosts")"
rm "$hosts"
check "with the file gone, apply converges" node -q apply
check "and plans nothing" bash -c "\"$bin\" sandbox exec --name $name hub1 wg-fleet -q plan --detailed-exitcode >/dev/null"

# A managed path that lands in state_dir through a link: refused, nothing written.
ln -s "$nd/state" "$nd/files/run/st"
sed 's|^fleets:|hosts_file: /run/st/hosts\nfleets:|' "$cfg" > "$tmp/bad.yaml"
run_bad() { "$bin" sandbox exec --name "$name" hub1 wg-fleet -c "$tmp/bad.yaml" "$@"; }
run_bad apply > "$tmp/bad" 2>&1; rc=$?
check "apply refuses a managed path inside state_dir (exit 1)" test $rc = 1
check "and says why" grep -qF "managed file $nd/files/run/st/hosts lies inside state_dir" "$tmp/bad"
check "nothing was written into state_dir" test ! -e "$nd/state/hosts"
check "the old hosts file is still there" test -f "$hosts"

# A key that will be generated is a planned change.
rm "$nd/state/demo.key"
node plan --detailed-exitcode > "$tmp/keyplan" 2>&1; rc=$?
check "plan --detailed-exitcode exits 2 with the key missing" test $rc = 2
line="~ device demo: new private key, generated into $nd/state/demo.key  [disrupts every session on the device]"
check "plan shows the key generation and its disruption" grep -qxF "$line" "$tmp/keyplan"
node apply > "$tmp/keyapply" 2>&1; rc=$?
check "apply generates it (exit 0)" test $rc = 0
check "apply prints the line plan printed" grep -qxF "$line" "$tmp/keyapply"
check "the key file exists, 0600" test "$(stat -c %a "$nd/state/demo.key")" = 600

finish
