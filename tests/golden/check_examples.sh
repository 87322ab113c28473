#!/usr/bin/env bash
# Golden test of diagnostics: every examples/invalid/*.yaml must fail `check` with exit 1 and print
# exactly its .expected file on stderr; every examples/*.yaml must pass with exit 0.
# Usage: check_examples.sh WG_FLEET_BINARY SOURCE_DIR [--update]
set -u
bin=$(realpath "$1"); src=$(realpath "$2"); update=${3:-}
pass=0; fail=0
out=$(mktemp); trap 'rm -f "$out"' EXIT
cd "$src/examples/invalid" || exit 1
for f in *.yaml; do
  exp=${f%.yaml}.expected
  "$bin" -c "$f" --dropin-dir /nonexistent check >/dev/null 2>"$out"; rc=$?
  if [[ $update == --update ]]; then cp "$out" "$exp"; fi
  if [[ $rc -ne 1 ]]; then echo "FAIL $f: exit $rc, want 1"; fail=$((fail+1)); continue; fi
  if ! diff -u "$exp" "$out"; then echo "FAIL $f: diagnostics differ from $exp"; fail=$((fail+1)); continue; fi
  echo "ok   $f"; pass=$((pass+1))
done
cd "$src/examples"
for f in *.yaml; do
  if "$bin" -c "$f" --dropin-dir /nonexistent -q check >/dev/null 2>"$out"; then echo "ok   $f (valid)"; pass=$((pass+1))
  else echo "FAIL $f: a valid example failed check:"; cat "$out"; fail=$((fail+1)); fi
done
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
