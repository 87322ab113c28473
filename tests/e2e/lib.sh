# What the end-to-end scripts share: the root check and the tally of checks.
# Sourced: `. "$(dirname "$0")/lib.sh"`.

in_ci() { [[ ${CI:-} && ${CI:-} != false ]]; }

# need_root WHY: without root the script is skipped (exit 77, which ctest reports as skipped);
# under CI, which runs as root, that is a failure instead.
need_root() {
  [[ $(id -u) == 0 ]] && return 0
  echo "needs root ($1)"
  in_ci && exit 1
  exit 77
}

pass=0 fail=0
ok() { echo "ok   $*"; pass=$((pass+1)); }
bad() { echo "FAIL $*"; fail=$((fail+1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# The closing line ctest's log shows, and the verdict as the exit status.
finish() {
  echo "$pass passed, $fail failed"
  [[ $fail -eq 0 ]]
}
