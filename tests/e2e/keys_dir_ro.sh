#!/usr/bin/env bash
# keys_dir is read safely, and links to read-only stores keep working: a published key that is a
# link into a read-only bind mount (as NixOS links into /nix/store) is used, keygen's own
# published key is read back, and a link to the node's private key is refused without echoing it.
# Usage: keys_dir_ro.sh WG_FLEET_BINARY   (root: a private mount namespace)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "mount namespace"
tmp=$(mktemp -d /tmp/wgf-keysro.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/store" "$tmp/keys/mesh" "$tmp/state"
erin=$(wg genkey | wg pubkey)
echo "$erin" > "$tmp/store/erin.pub"
ln -s "$tmp/store/erin.pub" "$tmp/keys/mesh/erin.pub"
cat > "$tmp/fleet.yaml" <<YAML
state_dir: $tmp/state
keys_dir: $tmp/keys
hosts_file: $tmp/hosts
fleets:
  mesh:
    controllers:
      hub: { endpoint: 192.0.2.1 }
    peers:
      erin: { controller: hub }
YAML

# Everything that needs the read-only mount runs in a private mount namespace: the mount goes
# away with it, whatever happens.
unshare -m --propagation private bash -s "$bin" "$tmp" > "$tmp/out" 2>&1 <<'INNER'
bin=$1; tmp=$2
mount --bind -o ro "$tmp/store" "$tmp/store" || { echo "MOUNT FAILED"; exit 1; }
touch "$tmp/store/probe" 2>/dev/null && echo "STORE WRITABLE"
echo "--- keygen"
"$bin" -c "$tmp/fleet.yaml" --node hub keygen
echo "rc=$?"
echo "--- render"
"$bin" -c "$tmp/fleet.yaml" --node hub render wg-quick
echo "rc=$?"
INNER
out=$(cat "$tmp/out")
check "the store is a read-only bind mount" bash -c "! grep -q 'MOUNT FAILED\|STORE WRITABLE' '$tmp/out'"
check "keygen publishes the node's own key and reads keys_dir without error" grep -q "^mesh " "$tmp/out"
check "keygen exits 0" bash -c "sed -n '/--- keygen/,/--- render/p' '$tmp/out' | grep -qx 'rc=0'"
check "hub's own published key is in keys_dir" test -s "$tmp/keys/mesh/hub.pub"
check "erin's key, a link into the read-only store, is used" grep -qF "PublicKey = $erin" "$tmp/out"
check "render exits 0" bash -c "sed -n '/--- render/,\$p' '$tmp/out' | grep -qx 'rc=0'"

# A link to the node's private key is refused, and the key never printed.
rm "$tmp/keys/mesh/erin.pub"
ln -s "$tmp/state/mesh.key" "$tmp/keys/mesh/erin.pub"
"$bin" -c "$tmp/fleet.yaml" --node hub check > "$tmp/out2" 2>&1
rc=$?
check "check refuses a link to the private key (exit 1)" test $rc = 1
check "the refusal names the file" grep -q "keys/mesh/erin.pub: refused as the public key of fleets.mesh.peers.erin" "$tmp/out2"
check "the refusal does not echo the key" bash -c "! grep -qF -f '$tmp/state/mesh.key' '$tmp/out2'"
finish
