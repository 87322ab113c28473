#!/usr/bin/env bash
# plan on real nodes (network namespaces, wireguard-go) after an edit of the fleet file: a peer
# removed from the file is named as the last apply recorded it, changed fields show old and new
# as the two files and `wg show` say, and a managed file's diff is one `patch` applies: the old
# file patched is the file apply then writes. --color=always colours, never and NO_COLOR do not,
# auto colours a terminal only.
# Usage: plan_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
command -v patch >/dev/null || { echo "patch is missing (run.sh deps)"; exit 1; }
use_sandbox pln

cat > "$tmp/fleet.yaml" <<'YAML'
fleets:
  mesh:
    keepalive: 25
    controllers:
      hub: { endpoint: 10.77.0.1 }
    peers:
      alice: { controller: hub }
      bob: { controller: hub }
YAML
# The edit: bob leaves, carol (no key yet) joins, the hub moves to another port, keepalive 15.
cat > "$tmp/fleet2.yaml" <<'YAML'
fleets:
  mesh:
    keepalive: 15
    controllers:
      hub: { endpoint: "10.77.0.1:51821" }
    peers:
      alice: { controller: hub }
      carol: { controller: hub }
YAML
check "sandbox up" "$bin" -q sandbox --name "$name" up "$tmp/fleet.yaml"
edited() { local node=$1; shift; in_node "$node" wg-fleet -q -c "$tmp/fleet2.yaml" "$@"; }

in_node alice wg show mesh endpoints > "$tmp/alice.endpoints"
edited hub plan --json > "$tmp/hub.json"
edited alice plan --json > "$tmp/alice.json"
edited hub plan > "$tmp/hub.txt"
cat "$tmp/hub.txt"
edited hub plan --color=always > "$tmp/always.txt"
edited hub plan --color=never > "$tmp/never.txt"
cp -r "/run/wg-fleet-sandbox/$name/keys" "$tmp/keys"
cat /run/wg-fleet-sandbox/"$name"/nodes/*/state/mesh.key > "$tmp/private.keys"
hosts=$(python3 -c 'import json,sys; print([o for o in json.load(open(sys.argv[1]))["ops"] if o["kind"] == "write_file"][0]["file"]["path"])' "$tmp/hub.json")
cp "$hosts" "$tmp/hosts.before"

python3 - "$tmp" <<'PY'
import json, sys, yaml
tmp = sys.argv[1]
ok = True
def check(what, cond):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
old = yaml.safe_load(open(f"{tmp}/fleet.yaml"))["fleets"]["mesh"]
new = yaml.safe_load(open(f"{tmp}/fleet2.yaml"))["fleets"]["mesh"]
pub = lambda n: open(f"{tmp}/keys/mesh/{n}.pub").read().strip()
hub, alice = json.load(open(f"{tmp}/hub.json")), json.load(open(f"{tmp}/alice.json"))
check("plan --json is version 1", hub.get("version") == 1 and alice.get("version") == 1)
check("every op has the fields of version 1", all(set(o) >= {"kind", "mark", "disrupts", "line", "resource", "interface", "changes"}
                                                 for o in hub["ops"] + alice["ops"]))
gone = sorted(set(old["peers"]) - set(new["peers"]))
removed = [o for o in hub["ops"] if o["kind"] == "remove_peer"]
check(f"the hub removes {gone}, named, with the keys published for them",
      sorted(o["peer"]["name"] for o in removed) == gone and
      all(o["peer"]["public_key"] == pub(o["peer"]["name"]) and o["resource"] == "peers" for o in removed))
check("its text line names it", all(o["line"].startswith(f"- peer {o['peer']['name']} (") for o in removed))
upd = [o for o in alice["ops"] if o["kind"] == "update_peer"]
live_ep = dict(l.split("\t") for l in open(f"{tmp}/alice.endpoints").read().split("\n") if l)
check("alice updates the hub, named, by the hub's key", len(upd) == 1 and upd[0]["peer"] == {"name": "hub", "public_key": pub("hub")})
ch = upd[0]["changes"] if upd else {}
check("its endpoint: old as `wg show` has it, new as fleet2.yaml says",
      ch.get("endpoint") == {"old": live_ep.get(pub("hub")), "new": new["controllers"]["hub"]["endpoint"]})
check("its keepalive: old and new as the two files say", ch.get("keepalive") == {"old": old["keepalive"], "new": new["keepalive"]})
files = [o for o in hub["ops"] if o["kind"] == "write_file"]
check("the hosts file: one write, not secret, with a diff", len(files) == 1 and files[0]["file"]["secret"] is False and files[0]["file"]["diff"])
open(f"{tmp}/hosts.diff", "w").write(files[0]["file"]["diff"] if files else "")
secrets = [l.strip() for l in open(f"{tmp}/private.keys") if l.strip()]
check("no node's private key in the JSON or the text", secrets and not any(k in open(f"{tmp}/{n}").read()
                                                                             for n in ("hub.json", "alice.json", "hub.txt") for k in secrets))
text = open(f"{tmp}/hub.txt").read()
check("the text groups peers and files under headings", "\npeers:\n" in "\n" + text and "\nfiles:\n" in text)
before = open(f"{tmp}/hosts.before").read().splitlines()
check("the text shows the hosts file's bob line removed, as the live file has it",
      any(f"    -{l}" in text.splitlines() for l in before if l.endswith(" bob.mesh")))
check("--color=always colours", "\x1b[" in open(f"{tmp}/always.txt").read())
check("--color=never does not", "\x1b[" not in open(f"{tmp}/never.txt").read())
check("plain (not a terminal) does not", "\x1b[" not in text)
sys.exit(0 if ok else 1)
PY
check "plan --json's checks" test $? = 0

# auto on a terminal: colour, unless NO_COLOR.
tty_plan() {
  python3 - "$@" <<'PY'
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.run(sys.argv[1:], stdout=s, stderr=subprocess.DEVNULL)
os.close(s)
out = b""
while True:
    try:
        chunk = os.read(m, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.write("colour" if b"\x1b[" in out else "plain")
PY
}
check "auto colours a terminal" test "$(tty_plan "$bin" sandbox exec --name "$name" hub wg-fleet -q -c "$tmp/fleet2.yaml" plan)" = colour
check "NO_COLOR turns it off" test "$(NO_COLOR=1 tty_plan "$bin" sandbox exec --name "$name" hub wg-fleet -q -c "$tmp/fleet2.yaml" plan)" = plain

# The diff is a patch: the live file patched is what apply writes.
check "patch applies the plan's diff" patch --quiet -o "$tmp/hosts.patched" "$tmp/hosts.before" "$tmp/hosts.diff"
check "apply with the edited file" edited hub apply
check "the patched file is the file apply wrote" cmp "$tmp/hosts.patched" "$hosts"
finish
