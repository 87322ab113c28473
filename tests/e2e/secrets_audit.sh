#!/usr/bin/env bash
# Secrets audit: every command the CLI lists (`wg-fleet help-commands`, so a new command is
# covered without editing this file) runs against a sandbox fleet, plain and with -v, and with
# --json where it accepts it; `watch` runs for a few ticks with --interval 1. Then no stdout,
# stderr, log or file the fleet wrote (state.json, journal, hosts and route files, published keys)
# may hold any node's private key: base64 (also unpadded, URL-safe, cut short), hex or raw bytes.
# Usage: secrets_audit.sh WG_FLEET_BINARY SOURCE_DIR   (root: network namespaces)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"

# The one place for exemptions: commands documented to print the private key on stdout.
EXEMPT_STDOUT=("render wg-quick")
# Arguments for commands that need some; any other command runs bare. `sandbox` acts on the
# sandbox itself, from outside the nodes.
declare -A ARGS=([sandbox]="test --name SANDBOX")
HOST_LEVEL=("sandbox")

name=audit$$
tmp=$(mktemp -d /tmp/wgf-audit.XXXXXX)
cleanup() { "$bin" sandbox down --name "$name" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
in_list() { local x=$1; shift; for e in "$@"; do [[ $e == "$x" ]] && return 0; done; return 1; }

cfg=$tmp/fleet.yaml
sed 's|^keys_dir:.*||' "$src/examples/demo.yaml" > "$cfg"
cat >> "$cfg" <<'YAML'
http_routes:
  - { name: alice-web, node: hub1, host: alice.example.com, to: "http://alice:8080" }
YAML
mkdir -p "$tmp/out"
"$bin" sandbox up --name "$name" "$cfg" > "$tmp/out/sandbox-up.out" 2> "$tmp/out/sandbox-up.err" || { echo "sandbox up failed"; cat "$tmp/out/sandbox-up.err"; exit 1; }
sbdir=/run/wg-fleet-sandbox/$name
mapfile -t keyfiles < <(find "$sbdir/nodes" -name '*.key' -type f)
[[ ${#keyfiles[@]} -ge 5 ]] && ok "the sandbox holds ${#keyfiles[@]} private keys to look for" || bad "private keys found: ${#keyfiles[@]}"

mapfile -t commands < <("$bin" help-commands)
[[ ${#commands[@]} -ge 8 ]] && ok "help-commands lists ${#commands[@]} commands" || bad "help-commands lists ${#commands[@]} commands"

run=0
for line in "${commands[@]}"; do
  cmd=${line%%$'\t'*}; opts=${line#*$'\t'}
  read -r -a words <<< "$cmd"
  extra=()
  [[ -n ${ARGS[$cmd]:-} ]] && read -r -a extra <<< "${ARGS[$cmd]//SANDBOX/$name}"
  [[ " $opts " == *" --interval "* ]] && extra+=(--interval 1)
  variants=("" "-v")
  [[ " $opts " == *" --json "* ]] && variants+=("--json" "-v --json")
  [[ " $opts " == *" --format "* ]] && variants+=("--format github" "--format gitlab")
  for v in "${variants[@]}"; do
    read -r -a vflags <<< "$v"
    tag="${cmd// /_}${v// /_}"
    # watch (and anything else that runs on) is stopped after a few ticks.
    limit=60; [[ " $opts " == *" --interval "* ]] && limit=4
    if in_list "$cmd" "${HOST_LEVEL[@]}"; then
      timeout -s TERM "$limit" "$bin" "${vflags[@]}" "${words[@]}" "${extra[@]}" > "$tmp/out/$tag.out" 2> "$tmp/out/$tag.err"
    else
      timeout -s TERM "$limit" "$bin" sandbox exec --name "$name" hub1 wg-fleet "${vflags[@]}" "${words[@]}" "${extra[@]}" \
        > "$tmp/out/$tag.out" 2> "$tmp/out/$tag.err"
    fi
    rc=$?
    echo "$cmd $v -> exit $rc" >> "$tmp/out/exit-codes.log"
    in_list "$cmd" "${EXEMPT_STDOUT[@]}" && mv "$tmp/out/$tag.out" "$tmp/exempt-$tag.out"
    run=$((run+1))
  done
done
ok "ran $run command variants"
grep -q "^watch .* -> exit 124" "$tmp/out/exit-codes.log" && ok "watch ran until stopped" || bad "watch did not keep running: $(grep ^watch "$tmp/out/exit-codes.log")"
grep -q "^plan  -> exit 0" "$tmp/out/exit-codes.log" && ok "plan ran" || bad "plan: $(grep '^plan ' "$tmp/out/exit-codes.log")"
grep -qi "converged\|watching" "$tmp/out/watch.err" && ok "watch logged its ticks" || bad "watch logged nothing"

# The search: every needle of every key, in every output and every file the sandbox holds
# (except the key files themselves).
audit() {
  python3 - "$@" <<'PY'
import base64, sys, os
keys_n = int(sys.argv[1]); keyfiles = sys.argv[2:2 + keys_n]; targets = sys.argv[2 + keys_n:]
needles = []
for kf in keyfiles:
    text = open(kf).read().strip()
    raw = base64.b64decode(text)
    assert len(raw) == 32, kf
    b64 = base64.b64encode(raw).decode()
    for form, n in (("base64", b64), ("base64 cut to 32 chars", b64[:32]), ("url-safe base64", base64.urlsafe_b64encode(raw).decode()[:43]),
                    ("hex", raw.hex()), ("HEX", raw.hex().upper())):
        needles.append((kf, form, n.encode()))
    needles.append((kf, "raw bytes", raw))
found = 0
files = []
for t in targets:
    if os.path.isdir(t):
        for root, _, names in os.walk(t):
            files += [os.path.join(root, n) for n in names]
    else:
        files.append(t)
for f in files:
    if f.endswith(".key") or not os.path.isfile(f):
        continue
    data = open(f, "rb").read()
    for kf, form, n in needles:
        if n in data:
            print(f"LEAK: {f} holds the private key {kf} as {form}")
            found += 1
print(f"searched {len(files)} files for {len(keyfiles)} keys")
sys.exit(1 if found else 0)
PY
}
if audit "${#keyfiles[@]}" "${keyfiles[@]}" "$tmp/out" "$sbdir"; then ok "no private key in any output, log, state.json, journal or written file"
else bad "a private key leaked (see LEAK lines above)"; fi

# The audit can fail: a planted copy of a key in hex is found.
python3 -c 'import base64,sys; print(base64.b64decode(open(sys.argv[1]).read().strip()).hex())' "${keyfiles[0]}" > "$tmp/planted.out"
if audit "${#keyfiles[@]}" "${keyfiles[@]}" "$tmp/planted.out" >/dev/null; then bad "the audit missed a planted key"; else ok "the audit finds a planted key"; fi
grep -q "PrivateKey = " "$tmp"/exempt-render_wg-quick.out && ok "render wg-quick (exempt) does print the key, as documented" || bad "render wg-quick printed no key"

finish
