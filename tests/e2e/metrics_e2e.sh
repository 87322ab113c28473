#!/usr/bin/env bash
# `status --format prometheus` on a real node: a small hub fleet in network namespaces with real
# WireGuard (wireguard-go here), handshakes made by `sandbox test`. The metrics pass
# `promtool check metrics` (Prometheus' own linter) and say what independent sources say: the
# peers' public keys as the sandbox's keys directory publishes them, handshake times and byte
# counters as `wg show dump` reads them, the drift as `plan --json` counts it, the last apply
# from the node's journal; --output replaces its file whole, readable by node_exporter. Then,
# with drift made by hand, plan, status and apply in the CI formats agree with plan --json.
# Usage: metrics_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
command -v promtool >/dev/null || { echo "promtool is missing (Debian package prometheus; run.sh deps)"; exit 1; }
use_sandbox met

cat > "$tmp/fleet.yaml" <<'YAML'
fleets:
  mon:
    keepalive: 25
    controllers:
      hub: { endpoint: 10.77.0.1 }
    peers:
      alice: { controller: hub }
      bob: { controller: hub }
YAML
start=$(date +%s)
check "sandbox up" "$bin" -q sandbox --name "$name" up "$tmp/fleet.yaml"
check "sandbox test (every pair talks: handshakes)" "$bin" -q sandbox test --name "$name"

in_node hub wg show mon dump > "$tmp/dump.before"
check "status --format prometheus --output exits 0" in_node hub wg-fleet status --format prometheus --output "$tmp/metrics.prom"
in_node hub wg show mon dump > "$tmp/dump.after"
in_node hub wg-fleet status --format prometheus > "$tmp/stdout.prom"
in_node hub wg-fleet status --json > "$tmp/status.json"
in_node hub wg show mon allowed-ips > "$tmp/allowed-ips"
in_node hub wg show mon persistent-keepalive > "$tmp/keepalive"
in_node hub wg-fleet status --check > "$tmp/status.txt"
check "status --check exits 0: every peer healthy, no drift" test $? = 0
cat "$tmp/status.txt"
check "status's last line says so" test "$(tail -n1 "$tmp/status.txt")" = "2 of 2 peers healthy; drift: none"
in_node hub wg-fleet plan --json > "$tmp/plan.json"
cp -r "/run/wg-fleet-sandbox/$name/keys" "$tmp/keys"

promtool check metrics < "$tmp/metrics.prom" > "$tmp/promtool.out" 2>&1; rc=$?
cat "$tmp/promtool.out"
check "promtool check metrics passes the --output file, with nothing to say" bash -c "[[ $rc == 0 && ! -s '$tmp/promtool.out' ]]"
promtool check metrics < "$tmp/stdout.prom" > "$tmp/promtool2.out" 2>&1; rc=$?
check "promtool check metrics passes the metrics on stdout" bash -c "[[ $rc == 0 && ! -s '$tmp/promtool2.out' ]]"
check "--output's file is 0644 (node_exporter does not run as root)" test "$(stat -c %a "$tmp/metrics.prom")" = 644
check "--output leaves no temporary file beside it" test "$(ls "$tmp" | grep -c metrics)" = 1

python3 - "$tmp" "$start" <<'PY'
import json, os, re, sys, time
tmp, start = sys.argv[1], int(sys.argv[2])
fails = 0
def check(what, cond):
    global fails
    print(("ok   " if cond else "FAIL ") + what)
    fails += not cond

# Prometheus' text format: NAME{LABELS} VALUE; label values escaped \\ \" \n.
samples = {}
for line in open(f"{tmp}/metrics.prom"):
    if line.startswith("#") or not line.strip():
        continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)\n', line)
    labels = dict((k, v.encode().decode("unicode_escape")) for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
    samples.setdefault(m.group(1), []).append((labels, float(m.group(3))))

def dump(path):
    rows = [l.split("\t") for l in open(path).read().splitlines()[1:]]  # the first line is the device
    return {r[0]: {"handshake": int(r[4]), "rx": int(r[5]), "tx": int(r[6])} for r in rows}
before, after = dump(f"{tmp}/dump.before"), dump(f"{tmp}/dump.after")
published = {f[:-4]: open(f"{tmp}/keys/mon/{f}").read().strip() for f in os.listdir(f"{tmp}/keys/mon") if f.endswith(".pub")}
want = {n: published[n] for n in ("alice", "bob")}
check("the sandbox published alice's and bob's keys", len(want) == 2)

hs = {l["peer"]: (l, v) for l, v in samples.get("wgfleet_peer_last_handshake_timestamp_seconds", [])}
check("one handshake sample per peer of hub, named as in the fleet file", sorted(hs) == ["alice", "bob"])
for peer, key in want.items():
    labels, value = hs[peer]
    check(f"{peer}: labels fleet, interface, peer, public_key as published",
          labels == {"fleet": "mon", "interface": "mon", "peer": peer, "public_key": key})
    check(f"{peer}: latest handshake as wg show dump reads it", value in (before[key]["handshake"], after[key]["handshake"]) and value > 0)
    for metric, field in (("wgfleet_peer_receive_bytes_total", "rx"), ("wgfleet_peer_transmit_bytes_total", "tx")):
        v = [v for l, v in samples[metric] if l["peer"] == peer][0]
        check(f"{peer}: {metric} between two reads of wg show dump", before[key][field] <= v <= after[key][field] and v > 0)
    states = {l["state"]: v for l, v in samples["wgfleet_peer_health"] if l["peer"] == peer}
    check(f"{peer}: health is one-hot over ok, stale, idle, never, pending",
          sorted(states) == ["idle", "never", "ok", "pending", "stale"] and sum(states.values()) == 1)
    fresh = time.time() - before[key]["handshake"] <= 180
    check(f"{peer}: health ok, as a handshake {int(time.time()) - before[key]['handshake']} s old makes it", fresh and states["ok"] == 1)
status = json.load(open(f"{tmp}/status.json"))
health = {p["name"]: p["health"] for i in status["interfaces"] for p in i["peers"]}
check("status --json gives each peer the same verdict", all(health[p] == "ok" for p in want))
check("status --json: version 1, and a summary of 2 healthy peers, no drift", status.get("version") == 1 and status.get("summary") ==
      {"peers": 2, "healthy": 2, "pending": 0, "drift": 0, "conflicts": 0, "ok": True})
wg_ips = {l.split("\t")[0]: sorted(l.split("\t")[1].split()) for l in open(f"{tmp}/allowed-ips").read().splitlines()}
wg_ka = {l.split("\t")[0]: l.split("\t")[1] for l in open(f"{tmp}/keepalive").read().splitlines()}
by_key = {p["public_key"]: p for i in status["interfaces"] for p in i["peers"]}
check("status --json: each peer's allowed IPs and keepalive as wg show reads them",
      sorted(by_key) == sorted(wg_ips) and all(sorted(p["allowed_ips"]) == wg_ips[k] and str(p["keepalive"]) == wg_ka[k]
                                              for k, p in by_key.items()))
text = open(f"{tmp}/status.txt").read()
check("status's text names each peer with its health, allowed IPs and keepalive",
      all(re.search(rf"^  {n} +ok +{re.escape(by_key[published[n]]['allowed_ips'][0])}.* 25 s +\d+ s ago +rx ", text, re.M) for n in want))
plan = json.load(open(f"{tmp}/plan.json"))
drift = samples["wgfleet_drift_operations"]
check("drift operations as plan --json counts them", drift == [({"node": "hub"}, float(len(plan["ops"])))])
check("the interface is up", samples["wgfleet_interface_up"] == [({"node": "hub", "fleet": "mon", "interface": "mon"}, 1.0)])
at = samples.get("wgfleet_last_apply_timestamp_seconds", [])
check("the last apply's time from the journal, since the test began",
      len(at) == 1 and at[0][0] == {"node": "hub"} and start - 1 <= at[0][1] <= time.time())
check("the last apply succeeded", samples.get("wgfleet_last_apply_success") == [({"node": "hub"}, 1.0)])
sys.exit(1 if fails else 0)
PY
check "the metrics agree with wg show, the keys directory, plan and the journal" test $? = 0

# Drift in the CI formats: the hub's link taken down by hand. plan's and status's findings are
# the operations plan --json lists, as warnings; apply --format json reports them done.
in_node hub ip link set mon down
in_node hub wg-fleet plan --json > "$tmp/drift.json"
in_node hub wg-fleet plan --format github > "$tmp/drift.github" 2>/dev/null
in_node hub wg-fleet status --format gitlab > "$tmp/drift.gitlab" 2>/dev/null
in_node hub wg-fleet status --format prometheus > "$tmp/drift.prom"
in_node hub wg-fleet status --check > "$tmp/drift.txt"
check "status --check exits 2 on drift" test $? = 2
check "status's last line counts the drift" grep -qE '^[0-9] of 2 peers healthy; drift: [0-9]+ operations?$' "$tmp/drift.txt"
in_node hub wg-fleet apply --format json > "$tmp/apply.json" 2>/dev/null
python3 - "$tmp" <<'PY'
import json, re, sys
tmp = sys.argv[1]
ops = [o["line"] for o in json.load(open(f"{tmp}/drift.json"))["ops"]]
def unescape(s):
    for a, b in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        s = s.replace(a, b)
    return s
gh = [re.fullmatch(r"::(\w+) title=([^:]*)::(.*)", l) for l in open(f"{tmp}/drift.github").read().splitlines()]
gl = json.load(open(f"{tmp}/drift.gitlab"))
applied = json.load(open(f"{tmp}/apply.json"))
prom = open(f"{tmp}/drift.prom").read()
checks = [
    ("the link down is drift", any("link mon: up" in o for o in ops)),
    ("plan --format github: one warning per operation, titled with the node",
     all(gh) and [m.group(1) for m in gh] == ["warning"] * len(ops) and all(unescape(m.group(2)) == "wg-fleet: hub" for m in gh)
     and [unescape(m.group(3)) for m in gh] == ["pending change: " + o for o in ops]),
    ("status --format gitlab: one minor issue per operation",
     [i["description"] for i in gl] == ["pending change: " + o for o in ops] and all(i["severity"] == "minor" for i in gl)
     and all(i["location"]["lines"]["begin"] == 1 and i["location"]["path"] for i in gl)),
    ("status --format prometheus counts the operations", f'wgfleet_drift_operations{{node="hub"}} {len(ops)}\n' in prom),
    ("apply --format json: ok, and done are plan's operations", applied["ok"] is True and applied["done"] == ops),
]
for what, ok in checks:
    print(("ok   " if ok else "FAIL ") + what)
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
check "plan, status and apply in the CI formats agree with plan --json on drift" test $? = 0

# An apply with nothing to do writes no journal record but is a run: the last apply's time is
# that run's, later than the journal's last record.
sleep 2
noop_start=$(date +%s)
in_node hub wg-fleet -q apply
check "the no-op apply exits 0" test $? = 0
in_node hub wg-fleet status --format prometheus > "$tmp/noop.prom"
at=$(sed -n 's/^wgfleet_last_apply_timestamp_seconds{node="hub"} //p' "$tmp/noop.prom")
check "the last apply is the no-op run ($at >= $noop_start)" test -n "$at" -a "${at%.*}" -ge "$noop_start"
check "and it succeeded" grep -qx 'wgfleet_last_apply_success{node="hub"} 1' "$tmp/noop.prom"
finish
