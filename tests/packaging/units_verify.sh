#!/usr/bin/env bash
# systemd-analyze verify on the units as shipped (ExecStart: the built binary): any output at all
# is a failure, since verify reports unknown settings and bad values on stderr yet exits 0.
#
#   units_verify.sh UNIT...
set -uo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (Debian package systemd)"; exit 1; }

verify() { systemd-analyze verify --man=no "$@" 2>&1; }

out=$(verify "$@"); rc=$?
[[ -n $out ]] && printf '%s\n' "$out"
check "systemd-analyze verify --man=no $* prints nothing and exits 0 (exit $rc)" test -z "$out" -a $rc -eq 0

# The same check must catch a misspelt setting: a copy with one added, in a directory of its own.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgf-units-verify.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$1" "$tmp/$(basename "$1")"
sed -i 's/^\[Service\]$/[Service]\nProtectSytem=strict/' "$tmp/$(basename "$1")"
bad_out=$(verify "$tmp/$(basename "$1")")
check "a unit with a misspelt setting makes verify print (${bad_out:-nothing})" test -n "$bad_out"
finish
