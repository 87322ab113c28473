#!/usr/bin/env bash
# Golden test of `render networkd`: for each EXAMPLE NODE below, the printed files must equal
# tests/golden/networkd/EXAMPLE.NODE.out byte for byte, and `--dir` must write the same files
# (same names and contents, mode 0644) and nothing else.
# Regenerate after an intended change of the output, then review the diff:
#   tests/golden/check_networkd.sh build/reconciler/cli/wg-fleet . --update
# Only fully keyed examples: a published key from keys_dir on this machine cannot change them.
# Usage: check_networkd.sh WG_FLEET_BINARY SOURCE_DIR [--update]
set -u
bin=$(realpath "$1"); src=$(realpath "$2"); update=${3:-}
cases=("clan-fleet server1" "clan-fleet laptop1" "clan-fleet build-box" "edge-gateway edge1" "edge-gateway vm-123")
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for c in "${cases[@]}"; do
  read -r ex node <<< "$c"
  exp=$src/tests/golden/networkd/$ex.$node.out
  args=(-c "$src/examples/$ex.yaml" --dropin-dir /nonexistent --node "$node" render networkd)
  if ! "$bin" "${args[@]}" > "$tmp/out" 2> "$tmp/err"; then echo "FAIL $c: exit $?"; cat "$tmp/err"; fail=$((fail+1)); continue; fi
  [[ $update == --update ]] && cp "$tmp/out" "$exp"
  if ! diff -u "$exp" "$tmp/out"; then echo "FAIL $c: output differs from $exp"; fail=$((fail+1)); continue; fi
  # --dir: split the printed files at their headers and compare with what was written.
  rm -rf "$tmp/dir" "$tmp/split"; mkdir -p "$tmp/split"
  "$bin" "${args[@]}" --dir "$tmp/dir" || { echo "FAIL $c: --dir exit $?"; fail=$((fail+1)); continue; }
  awk -v d="$tmp/split" '/^# ==> .* <==$/ { f = d "/" $3; next } { print > f }' "$tmp/out"
  # The blank line before each header separates files on stdout; no file ends with one.
  for f in "$tmp/split"/*; do sed -i -e '${/^$/d}' "$f"; done
  if ! diff -r "$tmp/split" "$tmp/dir" > "$tmp/diff"; then echo "FAIL $c: --dir differs from stdout:"; cat "$tmp/diff"; fail=$((fail+1)); continue; fi
  modes=$(stat -c '%a' "$tmp/dir"/* | sort -u)
  if [[ $modes != 644 ]]; then echo "FAIL $c: --dir modes $modes, want 644"; fail=$((fail+1)); continue; fi
  echo "ok   $c ($(ls "$tmp/dir" | tr '\n' ' '))"; pass=$((pass+1))
done
echo "$pass passed, $fail failed"
[[ $fail -eq 0 && $pass -gt 0 ]]
