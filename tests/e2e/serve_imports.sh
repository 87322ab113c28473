#!/usr/bin/env bash
# `wg-fleet serve --import-edge-state` and `--import-sync-state` through the command line, no root:
# the edge agent's state.json becomes the agent's drop-in (and `check` accepts the fleet with it);
# a state whose forward no node reaches is refused and writes nothing; the sync service's state
# gives every node its old address in the Headscale mapping, and importing it again changes
# nothing.
#
#   serve_imports.sh WG_FLEET
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bin=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgf-imports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- the edge agent ----
cat >"$tmp/edge.yaml" <<EOF
state_dir: $tmp/edge-state
fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 198.51.100.10, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg=, ipv4: 10.50.0.1 }
    peers:
      vm-123: { public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY=, ipv4: 10.50.0.123 }
EOF
cat >"$tmp/state.json" <<'EOF'
{"routes": [{"route_id": "vm-123", "hostname": "vm-123.service.com", "target_url": "http://10.50.0.123:8080",
             "entrypoint": "websecure", "certresolver": "dnsresolver"}],
 "forwards": {"vm-123-ssh": {"public_port": 22015, "target_ip": "10.50.0.123", "target_port": 32215, "proto": "tcp"}}}
EOF
dropin=$tmp/edge.d/50-agent.yaml
out=$("$bin" -c "$tmp/edge.yaml" --node edge1 serve --import-edge-state "$tmp/state.json" 2>&1)
rc=$?
echo "$out"
check "import-edge-state exits 0" test $rc -eq 0
check "the drop-in exists, marked as wg-fleet's" grep -q '^# Managed by wg-fleet' "$dropin"
check "it holds the route and the forward by their ids" grep -q '"vm-123-ssh"' "$dropin"
check "the fleet with the drop-in passes check" "$bin" -q -c "$tmp/edge.yaml" check
check "edge1's rendered firewall has the imported forward's port 22015" \
    eval "'$bin' -c '$tmp/edge.yaml' render nixos --node edge1 | grep -q 'dport 22015'"
before=$(sha256sum <"$dropin")
cat >"$tmp/bad.json" <<'EOF'
{"forwards": [{"forward_id": "far", "public_port": 2000, "target_ip": "10.60.0.12", "target_port": 22, "proto": "tcp"}]}
EOF
out=$("$bin" -c "$tmp/edge.yaml" --node edge1 serve --import-edge-state "$tmp/bad.json" 2>&1)
rc=$?
echo "$out"
check "a state whose forward edge1 cannot reach is refused (exit 1)" test $rc -eq 1
check "the refusal says why (not reachable)" grep -q "not reachable" <<<"$out"
check "the drop-in is unchanged" test "$(sha256sum <"$dropin")" = "$before"
# --json: the drop-in named is the file written; a refusal is check's diagnostics shape.
json=$("$bin" -q -c "$tmp/edge.yaml" --node edge1 serve --import-edge-state "$tmp/state.json" --json)
check "import-edge-state --json: version 1, the source, the drop-in that exists" \
    python3 -c 'import json,sys,os; j=json.loads(sys.argv[1]); sys.exit(not (j["version"]==1 and j["source"]==sys.argv[2] and os.path.samefile(j["dropin"], sys.argv[3])))' "$json" "$tmp/state.json" "$dropin"
json=$("$bin" -q -c "$tmp/edge.yaml" --node edge1 serve --import-edge-state "$tmp/bad.json" --json 2>/dev/null)
rc=$?
check "a refusal with --json: exit 1, the reason as check's last error" eval "test $rc -eq 1 && python3 -c '
import json,sys; d=json.loads(sys.argv[1])[\"diagnostics\"][-1]; sys.exit(not (d[\"severity\"]==\"error\" and \"not reachable\" in d[\"message\"]))' \"\$json\""

# ---- the Headscale sync service ----
cat >"$tmp/hs.yaml" <<EOF
state_dir: $tmp/hs-state
fleets:
  tailnet:
    ip6: fd00:13::1
    subnet: fd00:13::/64
    ipv4: 10.13.13.0/24
    public_key: Xf1gzK0t48S9GZdq6HTyxznTHlc3WhEFlwiHL6TJrAs=
    headscale:
      url: http://127.0.0.1:9
      api_key_file: $tmp/hs.key
      pool: 10.13.13.0/24
EOF
cat >"$tmp/sync.json" <<'EOF'
{"processed_nodes": {"1": "10.13.13.2", "node_7": "10.13.13.9"}, "last_ip": "10.13.13.9"}
EOF
out=$("$bin" -c "$tmp/hs.yaml" --node server serve --import-sync-state "$tmp/sync.json" 2>&1)
rc=$?
echo "$out"
check "import-sync-state exits 0" test $rc -eq 0
mapping=$tmp/hs-state/headscale/tailnet.json
check "the mapping file exists, mode 0600" test "$(stat -c %a "$mapping" 2>/dev/null)" = 600
check "node 1 keeps 10.13.13.2 and node 7 keeps 10.13.13.9" \
    python3 -c 'import json,sys; t=json.dumps(json.load(open(sys.argv[1]))); sys.exit(not ("10.13.13.2" in t and "10.13.13.9" in t))' "$mapping"
first=$(sha256sum <"$mapping")
"$bin" -c "$tmp/hs.yaml" --node server serve --import-sync-state "$tmp/sync.json" >/dev/null 2>&1
check "importing the same state again changes nothing" test "$(sha256sum <"$mapping")" = "$first"
json=$("$bin" -q -c "$tmp/hs.yaml" --node server serve --import-sync-state "$tmp/sync.json" --json)
check "import-sync-state --json: version 1, fleet tailnet, as many nodes as the state file's, the mapping's directory" \
    python3 -c 'import json,sys,os; j=json.loads(sys.argv[1]); s=json.load(open(sys.argv[2]));
sys.exit(not (j["version"]==1 and j["fleet"]=="tailnet" and j["nodes"]==len(s["processed_nodes"]) and os.path.samefile(j["mapping_dir"], os.path.dirname(sys.argv[3]))))' "$json" "$tmp/sync.json" "$mapping"
check "serve --json without an import is a usage error" eval "! '$bin' -c '$tmp/hs.yaml' serve --json >/dev/null 2>&1"
out=$("$bin" -c "$tmp/edge.yaml" --node edge1 serve --import-sync-state "$tmp/sync.json" 2>&1)
rc=$?
check "a fleet file without headscale: is refused with a reason (exit 1: $out)" eval "test $rc -eq 1 && grep -q 'headscale' <<<\"\$out\""
finish
