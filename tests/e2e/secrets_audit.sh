#!/usr/bin/env bash
# Secrets audit: every command the CLI lists (`wg-fleet help-commands`, so a new command is
# covered without editing this file) runs against a sandbox fleet, plain and with -v, and with
# --json where it accepts it; `watch` runs for a few ticks with --interval 1. Then no stdout,
# stderr, log or file the fleet wrote (state.json, journal, hosts and route files, published keys)
# may hold any node's private key: base64 (also unpadded, URL-safe, cut short), hex or raw bytes.
# Then serve (secrets_audit_serve.py): clients register, and its output, store and API answers
# may hold no private key and no token, except the endpoints it lists as exempt.
# Usage: secrets_audit.sh WG_FLEET_BINARY SOURCE_DIR   (root: network namespaces)
set -u
bin=$(realpath "$1"); src=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"

# The one place for exemptions: commands documented to print the private key on stdout.
EXEMPT_STDOUT=("render wg-quick")
# Arguments for commands that need some (SANDBOX is this run's sandbox, FLEET its file); any other
# command runs bare. The sandbox's actions act on the sandbox itself, from outside the nodes;
# `down` is asked about a sandbox that does not exist, so the one audited stays.
declare -A ARGS=([sandbox up]="--name SANDBOX FLEET" [sandbox plan]="--name SANDBOX FLEET" [sandbox test]="--name SANDBOX"
                 [sandbox exec]="--name SANDBOX hub1 wg-fleet status" [sandbox down]="--name SANDBOX-absent")
HOST_LEVEL=("sandbox up" "sandbox plan" "sandbox test" "sandbox exec" "sandbox down")

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
  if [[ -n ${ARGS[$cmd]:-} ]]; then a=${ARGS[$cmd]//SANDBOX/$name}; read -r -a extra <<< "${a//FLEET/$cfg}"; fi
  [[ " $opts " == *" --interval "* ]] && extra+=(--interval 1)
  variants=("" "-v")
  # serve's --json is for its one-shot imports only (secrets_audit_serve.py and python_import run those).
  [[ " $opts " == *" --json "* && $cmd != serve ]] && variants+=("--json" "-v --json")
  # The sandbox's --format is text or json only (no CI annotations of a sandbox).
  [[ " $opts " == *" --format "* && $cmd != sandbox* ]] && variants+=("--format github" "--format gitlab")
  for v in "${variants[@]}"; do
    # -v is a global option, before the command; --json and --format are the command's own.
    read -r -a vw <<< "$v"
    gflags=() vflags=()
    for w in "${vw[@]}"; do if [[ $w == -v ]]; then gflags+=("$w"); else vflags+=("$w"); fi; done
    tag="${cmd// /_}${v// /_}"
    # watch (and anything else that runs on) is stopped after a few ticks.
    limit=60; [[ " $opts " == *" --interval "* ]] && limit=4
    if in_list "$cmd" "${HOST_LEVEL[@]}"; then
      timeout -s TERM "$limit" "$bin" "${gflags[@]}" "${words[@]}" "${vflags[@]}" "${extra[@]}" > "$tmp/out/$tag.out" 2> "$tmp/out/$tag.err"
    else
      timeout -s TERM "$limit" "$bin" sandbox exec --name "$name" hub1 wg-fleet "${gflags[@]}" "${words[@]}" "${vflags[@]}" "${extra[@]}" \
        > "$tmp/out/$tag.out" 2> "$tmp/out/$tag.err"
    fi
    rc=$?
    echo "$cmd $v -> exit $rc" >> "$tmp/out/exit-codes.log"
    in_list "$cmd" "${EXEMPT_STDOUT[@]}" && mv "$tmp/out/$tag.out" "$tmp/exempt-$tag.out"
    run=$((run+1))
  done
done
ok "ran $run command variants"
# Every variant was understood: a usage error would audit an error message, not the command.
usage=$(grep -l "The following argument was not expected\|Run with --help\|was not expected" "$tmp"/out/*.err 2>/dev/null | xargs -r -n1 basename)
[[ -z $usage ]] && ok "no variant was refused as a usage error" || bad "refused as usage errors: $usage"
grep -q "^watch .* -> exit 124" "$tmp/out/exit-codes.log" && ok "watch ran until stopped" || bad "watch did not keep running: $(grep ^watch "$tmp/out/exit-codes.log")"
grep -q "^plan  -> exit 0" "$tmp/out/exit-codes.log" && ok "plan ran" || bad "plan: $(grep '^plan ' "$tmp/out/exit-codes.log")"
grep -qi "converged\|watching" "$tmp/out/watch.err" && ok "watch logged its ticks" || bad "watch logged nothing"

# The search (secrets_search.py): every form of every key, in every output and every file the
# sandbox holds (except the key files themselves).
here=$(dirname "$0")
key_args=(); for k in "${keyfiles[@]}"; do key_args+=(--key "$k"); done
search() { python3 "$here/secrets_search.py" "${key_args[@]}" "$@"; }
if search "$tmp/out" "$sbdir"; then ok "no private key in any output, log, state.json, journal or written file"
else bad "a private key leaked (see LEAK lines above)"; fi

# The audit can fail: a planted copy of a key in hex is found.
python3 -c 'import base64,sys; print(base64.b64decode(open(sys.argv[1]).read().strip()).hex())' "${keyfiles[0]}" > "$tmp/planted.out"
if search "$tmp/planted.out" >/dev/null; then bad "the audit missed a planted key"; else ok "the audit finds a planted key"; fi
grep -q "PrivateKey = " "$tmp"/exempt-render_wg-quick.out && ok "render wg-quick (exempt) does print the key, as documented" || bad "render wg-quick printed no key"

# serve: its log, store, state files, dashboard and API answers, with the exempt endpoints listed
# there (secrets_audit_serve.py: its REQUESTS, EXEMPT, SCAN_FILES and SECRET_FILES).
if python3 "$here/secrets_audit_serve.py" "$bin"; then ok "serve leaks no private key and no token"
else bad "serve: see the FAIL lines above"; fi

finish
