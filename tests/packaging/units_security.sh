#!/usr/bin/env bash
# systemd-analyze security --offline=true on each unit as shipped: its overall exposure must not
# exceed MAX (systemd's scale: 0 safest .. 10 unsafe), and README must quote the figure it has.
#
#   units_security.sh MAX README UNIT...
set -uo pipefail
. "$(dirname "$0")/../e2e/lib.sh"
max=$1 readme=$2; shift 2
for unit in "$@"; do
    name=$(basename "$unit")
    # Offline, systemd loads the unit file given (and its directory's other units).
    out=$(systemd-analyze security --offline=true "$unit" 2>&1)
    level=$(sed -n "s/.*Overall exposure level for ${name//./\\.}: \([0-9][0-9.]*\).*/\1/p" <<<"$out")
    if [[ -z $level ]]; then
        printf '%s\n' "$out"
        bad "$name: no overall exposure level in systemd-analyze's output"
        continue
    fi
    # Lines not marked passed, for the log.
    grep -E '^✗' <<<"$out" | sed 's/^/    /'
    check "$name: exposure $level <= $max" awk -v l="$level" -v m="$max" 'BEGIN { exit !(l <= m) }'
    check "README quotes $name's exposure $level" grep -qF "rates both units $level " "$readme"
done
finish
