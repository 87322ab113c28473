#!/usr/bin/env bash
# The sandbox itself, through the command line: each action's --help; `sandbox plan` of an edited
# file shows each node's change under its heading and applies nothing; `up` of the edited file
# records it as the sandbox's file and moves a node whose endpoint changed to its new underlay
# address, the fleet still reaching everything; a node dropped from the file is named, then
# removed by --prune with its namespace, processes and files; hosts_file: /etc/hosts is the
# node's, not the host's; a node's namespace deleted by hand is made again by `up`; `exec` makes
# again a missing /run/wireguard (in a mount namespace of the test's own, so the host's stays as
# it is for other runs) and says so.
# Usage: sandbox_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
name=sbx$$
tmp=$(mktemp -d /tmp/wgf-sandbox.XXXXXX)
sbdir=/run/wg-fleet-sandbox/$name
cleanup() {
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
in_node() { local node=$1; shift; "$bin" sandbox exec --name "$name" "$node" "$@"; }
recorded_file() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"])' "$sbdir/sandbox.json"; }
# The part of `sandbox plan`'s output under NODE's heading.
section() { awk -v h="== $2 " 'index($0, h) == 1 {on = 1; next} /^== / {on = 0} on' "$1"; }

# Each action's --help: its own usage line and every option help-commands lists for it.
mapfile -t actions < <("$bin" help-commands | awk -F'\t' '$1 ~ /^sandbox / {print $0}')
check "help-commands lists the sandbox's actions up, plan, test, exec, down" \
  test "$(printf '%s\n' "${actions[@]}" | cut -f1 | sort | tr '\n' ' ')" = "sandbox down sandbox exec sandbox plan sandbox test sandbox up "
for line in "${actions[@]}"; do
  path=${line%%$'\t'*}; opts=${line#*$'\t'}
  help=$("$bin" $path --help 2>&1); rc=$?
  missing=
  for o in $opts; do [[ $o == -* ]] && ! grep -qe "$o" <<< "$help" && missing+=" $o"; done
  check "$path --help: exit 0, usage of $path, its options ($opts)" \
    test $rc = 0 -a -z "$missing" -a -n "$(grep "^Usage: wg-fleet $path " <<< "$help")"
done
check "sandbox --help lists every action" bash -c "h=\$(\"$bin\" sandbox --help); for a in up plan test exec down; do grep -q \"^  \$a  \" <<< \"\$h\" || exit 1; done"

# A fleet of two hubs and one peer under each.
cat > "$tmp/a.yaml" <<'YAML'
fleets:
  sbx:
    controllers:
      hub1:
        endpoint: 10.77.0.1
      hub2:
        endpoint: 10.77.0.2
    peers:
      alice:
        controller: hub1
      bob:
        controller: hub2
YAML
check "sandbox up a.yaml" "$bin" -q sandbox up "$tmp/a.yaml" --name "$name"
check "all pairs reach each other" "$bin" -q sandbox test --name "$name"

# b.yaml: hub2 is dialled at another address.
sed 's/endpoint: 10.77.0.2$/endpoint: 10.77.0.12/' "$tmp/a.yaml" > "$tmp/b.yaml"
"$bin" sandbox plan "$tmp/b.yaml" --name "$name" --detailed-exitcode > "$tmp/plan.out" 2>&1; rc=$?
cat "$tmp/plan.out"
check "sandbox plan b.yaml --detailed-exitcode: 2 (changes)" test $rc = 2
for n in hub1 alice bob; do
  section "$tmp/plan.out" $n > "$tmp/plan.$n"
  check "sandbox plan: $n (hub2 is its peer) dials hub2 at 10.77.0.12" grep -q "10\.77\.0\.12" "$tmp/plan.$n"
  # The same plan as the node's own, asked through exec.
  in_node $n wg-fleet -c "$tmp/b.yaml" plan > "$tmp/own.$n" 2>&1
  check "sandbox plan: $n's section is its own plan of b.yaml (exec $n wg-fleet -c b.yaml plan)" \
    diff <(grep -v '^underlay address' "$tmp/plan.$n") "$tmp/own.$n"
done
section "$tmp/plan.out" hub2 > "$tmp/plan.hub2"
check "sandbox plan: hub2's WireGuard peers do not change" bash -c "! grep -q '10\.77\.0\.12:' '$tmp/plan.hub2'"
check "sandbox plan: hub2 would move to underlay 10.77.0.12" grep -q "underlay address 10.77.0.2 -> 10.77.0.12" "$tmp/plan.hub2"
check "sandbox plan applied nothing: alice still dials hub2 at 10.77.0.2" \
  bash -c "\"$bin\" sandbox exec --name $name alice wg show sbx endpoints | grep -q '10\.77\.0\.2:51820'"
check "sandbox plan applied nothing: hub2's underlay is still 10.77.0.2" \
  bash -c "ip -n wgfsb-$name-hub2 -4 -o addr show dev eth0 | grep -q ' 10\.77\.0\.2/24'"
# The same with --json: each node's plan is its own `plan --json` of b.yaml, asked through exec.
"$bin" sandbox plan "$tmp/b.yaml" --name "$name" --json > "$tmp/plan.json"; rc=$?
check "sandbox plan --json: exit 0" test $rc = 0
for n in hub1 hub2 alice bob; do in_node $n wg-fleet -c "$tmp/b.yaml" plan --json > "$tmp/own.$n.json" 2>/dev/null; done
check "sandbox plan --json: every node with its own plan --json, status and underlay" python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
doc = json.load(open(f"{tmp}/plan.json"))
assert doc["version"] == 1 and doc["file"] == f"{tmp}/b.yaml", doc
nodes = {n["node"]: n for n in doc["nodes"]}
assert sorted(nodes) == ["alice", "bob", "hub1", "hub2"], nodes
for name, n in nodes.items():
    assert n["plan"] == json.load(open(f"{tmp}/own.{name}.json")), name
    assert n["status"] == "changes", (name, n["status"])
    assert n["underlay_after"] == ("10.77.0.12" if name == "hub2" else n["underlay"]), n
assert nodes["hub2"]["underlay"] == "10.77.0.2"
assert doc["changing"] == 4 and doc["failed"] == 0 and doc["new"] == [] and doc["stale"] == [], doc
PY
check "sandbox plan kept the sandbox's file (a.yaml)" test "$(recorded_file)" = "$tmp/a.yaml"
check "sandbox plan applied nothing: hub1 plans nothing against a.yaml" in_node hub1 wg-fleet -q plan --detailed-exitcode

# up b.yaml: recorded, and hub2 moved.
check "sandbox up b.yaml" "$bin" -q sandbox up "$tmp/b.yaml" --name "$name"
check "sandbox.json records b.yaml" test "$(recorded_file)" = "$tmp/b.yaml"
for n in hub1 hub2 alice bob; do
  check "$n's wg-fleet uses b.yaml now: it plans nothing" in_node $n wg-fleet -q plan --detailed-exitcode
done
check "hub2's underlay is 10.77.0.12 (and no longer 10.77.0.2)" \
  test "$(ip -n wgfsb-$name-hub2 -4 -o addr show dev eth0 | awk '{print $4}')" = 10.77.0.12/24
check "alice dials hub2 at 10.77.0.12" bash -c "\"$bin\" sandbox exec --name $name alice wg show sbx endpoints | grep -q '10\.77\.0\.12:51820'"
check "all pairs still reach each other" "$bin" -q sandbox test --name "$name"
# test --json: every ordered pair by IPv6 address and by name, each target one of the
# destination's addresses (addresses --json) or its host name, all answered ok.
"$bin" sandbox test --name "$name" --json > "$tmp/test.json"; rc=$?
"$bin" -c "$tmp/b.yaml" addresses --json > "$tmp/addresses.json" 2>/dev/null
check "sandbox test --json: exit 0, every pair by address and name, all ok" test $rc = 0 -a -n "$(python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
doc = json.load(open(f"{tmp}/test.json"))
nodes = json.load(open(f"{tmp}/addresses.json"))["fleets"]["sbx"]["nodes"]
pairs = {(c["from"], c["to"], c["by"]): c for c in doc["checks"]}
want = {(a, b, by) for a in nodes for b in nodes if a != b for by in ("ipv6", "name")}
assert set(pairs) == want, set(pairs) ^ want
for (a, b, by), c in pairs.items():
    assert c["ok"] is True, c
    assert c["target"] == f"{b}.sbx" if by == "name" else c["target"] in [x.split("/")[0] for x in nodes[b]["addresses"]], c
assert doc["passed"] == len(want) and doc["failed"] == 0, doc
print("ok")
PY
)"

# c.yaml: bob is gone from the file.
python3 - "$tmp/b.yaml" "$tmp/c.yaml" <<'PY'
import sys; s = open(sys.argv[1]).read(); open(sys.argv[2], "w").write(s.replace("      bob:\n        controller: hub2\n", ""))
PY
"$bin" -q sandbox up "$tmp/c.yaml" --name "$name" > "$tmp/up-c.out" 2>&1; rc=$?
check "sandbox up c.yaml (no bob) without --prune" test $rc = 0
check "it names bob as stale, and --prune" grep -q "stale: bob .*--prune" "$tmp/up-c.out"
check "bob's namespace is still there" ip netns pids "wgfsb-$name-bob"
bob_pids=$(ip netns pids "wgfsb-$name-bob")
check "bob runs a process (wireguard-go)" test -n "$bob_pids"
check "sandbox up c.yaml --prune" "$bin" -q sandbox up "$tmp/c.yaml" --name "$name" --prune
check "bob's namespace is gone" bash -c "! ip netns list | grep -qw wgfsb-$name-bob"
# Gone, or a zombie the machine's init has yet to reap.
check "bob's processes are gone" bash -c "for p in $bob_pids; do [[ \$(ps -o stat= -p \$p) == [^Z]* ]] && exit 1; done; exit 0"
check "bob's directory is gone" test ! -e "$sbdir/nodes/bob"
check "bob's published key is gone" test ! -e "$sbdir/keys/sbx/bob.pub"
check "sandbox.json has no bob" bash -c "! grep -q '\"bob\"' $sbdir/sandbox.json"
check "exec bob: no such node" bash -c "! \"$bin\" sandbox exec --name $name bob true 2>/dev/null"
check "the others still reach each other" "$bin" -q sandbox test --name "$name"

# hosts_file: /etc/hosts is written in each node's directory; the host's stays as it was.
hosts_before=$(sha256sum /etc/hosts)
{ echo "hosts_file: /etc/hosts"; cat "$tmp/c.yaml"; } > "$tmp/d.yaml"
check "sandbox up d.yaml (hosts_file: /etc/hosts)" "$bin" -q sandbox up "$tmp/d.yaml" --name "$name"
check "the host's /etc/hosts is unchanged" test "$(sha256sum /etc/hosts)" = "$hosts_before"
check "alice's hosts file is in her directory" grep -q "hub1\.sbx" "$sbdir/nodes/alice/files/etc/hosts"
hub1_addr=$("$bin" -c "$tmp/d.yaml" addresses --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["fleets"]["sbx"]["nodes"]["hub1"]["addresses"][0].split("/")[0])')
check "in alice, hub1.sbx resolves to hub1's address ($hub1_addr, addresses --json)" \
  test "$(in_node alice getent hosts hub1.sbx | awk '{print $1}')" = "$hub1_addr"
check "every name resolves and reaches (sandbox test)" "$bin" -q sandbox test --name "$name"

# A node's network namespace deleted by hand: up makes it again, and the fleet reaches everything.
ip netns del "wgfsb-$name-hub1"
"$bin" -q sandbox up "$tmp/d.yaml" --name "$name" > "$tmp/up-d.out" 2>&1; rc=$?
check "hub1's namespace deleted: up (exit 0) says it made it again" bash -c "test $rc = 0 && grep -q 'hub1: its network namespace .* was gone; created again' '$tmp/up-d.out'"
check "hub1's namespace is back" ip netns pids "wgfsb-$name-hub1"
check "all pairs reach each other again" "$bin" -q sandbox test --name "$name"

# exec makes again a /run/wireguard that went missing, in a mount namespace of this test where
# /run is a fresh tmpfs holding only the namespaces and the sandboxes.
mkdir "$tmp/run"
unshare --mount --propagation private bash -c '
  mount --rbind /run "$1" && mount -t tmpfs wgf-test /run && mkdir /run/netns /run/wg-fleet-sandbox &&
  mount --rbind "$1/netns" /run/netns && mount --rbind "$1/wg-fleet-sandbox" /run/wg-fleet-sandbox || exit 99
  test ! -e /run/wireguard || exit 98
  "$2" sandbox exec --name "$3" hub1 wg show interfaces' _ "$tmp/run" "$bin" "$name" > "$tmp/exec.out" 2> "$tmp/exec.err"; rc=$?
cat "$tmp/exec.err"
check "exec without /run/wireguard: it works (exit 0, hub1's device listed)" test $rc = 0 -a "$(cat "$tmp/exec.out")" = sbx
check "exec without /run/wireguard: says it created it" grep -q "created /run/wireguard" "$tmp/exec.err"

check "sandbox down" "$bin" sandbox down --name "$name"
check "no namespace left" bash -c "! ip netns list | grep -q wgfsb-$name-"
check "no directory left" test ! -e "$sbdir"
finish
