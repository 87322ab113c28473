#!/usr/bin/env bash
# apply --try of changes that take a device's private key away (issue 14), on real nodes
# (network namespaces, wireguard-go):
#  f) the hub's key file replaced by the operator: the try sets the new key, which no peer
#     knows, and publishes it. The rollback sets the old key again (read from the device when
#     the try started, kept 0600 in state_dir, never in the record), publishes the old public key
#     again, and every session returns; wg show (keys, port, peers), addresses, routes and the nft
#     table are as before, byte for byte. The key file keeps the operator's key; the try is held
#     until the file or the key changes, and the kept key goes with the hold.
#  g) a try that deletes the hub's device (its interface renamed): the rollback makes the device
#     again, with its key, port, peers, endpoints, addresses and routes, and the sessions return.
# Usage: try_keys_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
use_sandbox trykey
trap '"$bin" sandbox down --name "$name" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# keepalive 1: the peers send to the hub every second, so a working session shows received
# bytes within the short windows of this test, and a broken one shows none.
cat > "$tmp/fleet.yaml" <<'YAML'
fleets:
  home:
    keepalive: 1
    controllers:
      hub: { endpoint: 10.77.0.1 }
    peers:
      alice: { controller: hub }
      bob: { controller: hub }
YAML
# The hub's device under another name: the try deletes `home` and makes `home2`.
sed 's|^    keepalive: 1$|    keepalive: 1\n    interface: home2|' "$tmp/fleet.yaml" > "$tmp/renamed.yaml"

check "sandbox up" "$bin" -q sandbox --name "$name" up "$tmp/fleet.yaml"
sb=/run/wg-fleet-sandbox/$name
state=$sb/nodes/hub/state
keyfile=$state/home.key
published=$sb/keys/home/hub.pub
hub() { in_node hub wg-fleet -c "$1" "${@:2}"; }
hub6=$(in_node hub ip -6 -o addr show dev home scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
check "the hub has a fleet address" test -n "$hub6"
check "the hub's key file is there" test -s "$keyfile"
check "the hub's public key is published" test -s "$published"
reach() { in_node "$1" ping -6 -c1 -W1 "$hub6" >/dev/null 2>&1; }
check "alice reaches the hub" eventually reach alice
check "bob reaches the hub" eventually reach bob

# What the rollback must give back: the device's keys (the private key as a digest), port and
# peers without the moving counters, sorted by key (wireguard-go lists them in Go map order),
# the addresses, the routes, the firewall table.
snapshot() {
  echo "private key $(in_node hub wg show home private-key | sha256sum | cut -c1-16)"
  in_node hub wg show home dump | awk -F'\t' 'NR == 1 {print $2, $3, $4; next} {print $1, $3, $4, $8}' | { IFS= read -r device; echo "$device"; sort; }
  in_node hub ip -o addr show dev home scope global | awk '{print $3, $4}'
  in_node hub ip -6 route show
  in_node hub ip -4 route show
  in_node hub nft list table inet wg-fleet
}
snapshot > "$tmp/before"
old_pub=$(in_node hub wg show home public-key)
old_key_text=$(cat "$keyfile")

## f) a replaced private key is rolled back
wg genkey > "$tmp/new.key"
new_pub=$(wg pubkey < "$tmp/new.key")
install -m 0600 "$tmp/new.key" "$keyfile.new" && mv "$keyfile.new" "$keyfile"
hub "$tmp/fleet.yaml" apply --try 4 > "$tmp/f.out" 2>&1 &
trying=$!
check "f) the try sets the new key" eventually bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home public-key) == $new_pub ]]"
check "f) ... and publishes it" eventually grep -qx "$new_pub" "$published"
check "f) the old key is kept for the rollback, 0600" bash -c "[[ \$(stat -c %a $state/try-keys/home.key) == 600 ]]"
check "f) ... and is the device's old key" bash -c "[[ \$(wg pubkey < $state/try-keys/home.key) == $old_pub ]]"
check "f) the try's record does not hold the old private key" bash -c "! grep -qF -- '$old_key_text' $state/try.json"
wait $trying; rc=$?
cat "$tmp/f.out"
check "f) apply --try of the new key exits 1 (rolled back: no peer knows the key)" test $rc = 1
check "f) it says why: the peers did not come back" grep -q "not back: " "$tmp/f.out"
check "f) the output never shows a private key" bash -c "! grep -qF -e '$old_key_text' -e '$(cat "$tmp/new.key")' $tmp/f.out"
check "f) the device has its old key again" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home public-key) == $old_pub ]]"
check "f) the old public key is published again" grep -qx "$old_pub" "$published"
snapshot > "$tmp/after"
check "f) keys, port, peers, addresses, routes and the nft table as before, byte for byte" cmp "$tmp/before" "$tmp/after"
diff "$tmp/before" "$tmp/after"
check "f) the key file keeps the operator's new key" cmp "$tmp/new.key" "$keyfile"
check "f) no pending try left" test ! -e "$state/try.json"
check "f) alice's session returns" eventually reach alice
check "f) bob's session returns" eventually reach bob
check "f) the journal has the try and its rollback" \
  bash -c "grep -q 'ok try .* rolled back (deadline passed; not back:' $state/journal.log"
check "f) the journal never holds a private key" bash -c "! grep -qF -e '$old_key_text' -e '$(cat "$tmp/new.key")' $state/journal.log"
# Held: the same file and the same new key are what was rolled back.
hub "$tmp/fleet.yaml" apply > "$tmp/held.out" 2>&1; rc=$?
check "f) a plain apply with the rolled-back key exits 1 (held)" test $rc = 1
check "f) ... and changes nothing" bash -c "[[ \$(\"$bin\" sandbox exec --name $name hub wg show home public-key) == $old_pub ]]"
check "f) the kept key stays while held" test -e "$state/try-keys/home.key"
# The operator puts the old key back: the hold ends with it, and the kept key goes.
printf '%s\n' "$old_key_text" > "$keyfile.new" && chmod 600 "$keyfile.new" && mv "$keyfile.new" "$keyfile"
hub "$tmp/fleet.yaml" apply > "$tmp/f2.out" 2>&1; rc=$?
cat "$tmp/f2.out"
check "f) with the old key back, apply goes on (exit 0)" test $rc = 0
check "f) ... and the kept key is gone" test ! -e "$state/try-keys"

## g) a deleted device is made again
hub "$tmp/renamed.yaml" apply --try 3 --probe false > "$tmp/g.out" 2>&1; rc=$?
cat "$tmp/g.out"
check "g) the try deleted the device" grep -q -- "- device home" "$tmp/g.out"
check "g) apply --try of the rename exits 1 (rolled back: the probe failed)" test $rc = 1
check "g) the renamed device is gone" bash -c "! \"$bin\" sandbox exec --name $name hub ip link show home2 >/dev/null 2>&1"
snapshot > "$tmp/after-g"
check "g) the device is back: keys, port, peers, addresses, routes, nft table, byte for byte" cmp "$tmp/before" "$tmp/after-g"
diff "$tmp/before" "$tmp/after-g"
check "g) alice's session returns" eventually reach alice
check "g) bob's session returns" eventually reach bob
check "g) a plain apply of the original file goes on (exit 0)" hub "$tmp/fleet.yaml" apply
check "g) no kept key left" test ! -e "$state/try-keys"

check "sandbox down" "$bin" sandbox down --name "$name"
finish
