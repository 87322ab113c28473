#!/usr/bin/env bash
# clang-tidy with the repository's .clang-tidy over every source of reconciler/ (and the headers
# they include from it), each compiled as the build in BUILD_DIR compiles it: its
# compile_commands.json, which CMakeLists.txt always writes. The ctest test style_clang_tidy.
#
#   tests/style/clang_tidy.sh [BUILD_DIR [FILE...]]     BUILD_DIR defaults to build/
#
# Exit status 1 on any finding (.clang-tidy makes every check an error). The checks depend on
# clang-tidy's version; Debian 12's (14, `./run.sh deps`) is the reference. CLANG_TIDY names
# another binary. Without clang-tidy the check is skipped (exit 77), or fails under CI (CI=true).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(realpath "${1:-$repo/build}")
shift || true
clang_tidy=${CLANG_TIDY:-clang-tidy}
cd "$repo"

if ! command -v "$clang_tidy" >/dev/null; then
    echo "clang_tidy.sh: $clang_tidy is not installed (Debian package clang-tidy; ./run.sh deps)" >&2
    [[ ${CI:-} && ${CI:-} != false ]] && exit 1
    exit 77
fi
if [[ ! -f $build/compile_commands.json ]]; then
    echo "clang_tidy.sh: no $build/compile_commands.json; configure first: cmake -S . -B $build" >&2
    exit 1
fi

# clang-tidy warns about a malformed .clang-tidy and carries on with other checks.
config_errors=$("$clang_tidy" --list-checks 2>&1 >/dev/null || true)
if [[ -n $config_errors ]]; then
    echo "clang_tidy.sh: .clang-tidy: $config_errors" >&2
    exit 1
fi

jobs=$(nproc 2>/dev/null || echo 2)
tidy=("$clang_tidy" --quiet --extra-arg=-Wno-error)
if (($#)); then
    # The files named, each on its own, as the build compiles it.
    files=("$@")
    targets=("${files[@]}")
    tidy+=(-p "$build")
else
    # Every source, in batches of sources with the same flags (tidy_batches.py says why); the
    # batches sit outside the tree, so the repository's .clang-tidy is named.
    mapfile -d '' files < <(find reconciler -type f -name '*.cpp' -print0 | sort -z)
    batch_dir=$(mktemp -d "${TMPDIR:-/tmp}/wgf-tidy.XXXXXX")
    trap 'rm -rf "$batch_dir"' EXIT
    mapfile -t targets < <(python3 tests/style/tidy_batches.py "$build" "$batch_dir" 8 "${files[@]}")
    ((${#targets[@]})) || exit 1
    tidy+=(-p "$batch_dir" --config-file="$repo/.clang-tidy")
fi
rc=0
# -Wno-error: the build's own warnings are gcc's to judge (clang's -Wconversion also means
# -Wsign-conversion); only .clang-tidy's checks count here.
out=$(printf '%s\0' "${targets[@]}" | xargs -0 -n 1 -P "$jobs" "${tidy[@]}" 2>&1) || rc=$?
# Without the count of (suppressed) warnings in system headers that each file prints.
grep -Ev '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' <<<"$out" || true
if ((rc)); then
    echo "clang_tidy.sh: findings above (the checks and why each excluded one is off: .clang-tidy)" >&2
    exit 1
fi
echo "clang_tidy.sh: ${#files[@]} files, no findings ($("$clang_tidy" --version | sed -n 's/.*LLVM version //p'))"
