#!/usr/bin/env bash
# clang-format over every C++ file of reconciler/ and tests/ with the repository's .clang-format.
#
#   tests/style/format.sh          check: lists the files that differ from their formatted form
#                                  and exits 1 if any does (the ctest test style_clang_format)
#   tests/style/format.sh --fix    formats them in place
#
# Every file is checked, not a diff against a base: a clean clone has no base. The result depends
# on clang-format's version; the one of Debian 12 (14, `./run.sh deps`) is the reference.
# CLANG_FORMAT names another binary. Without clang-format the check is skipped (exit 77), or fails
# under CI (CI=true).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
clang_format=${CLANG_FORMAT:-clang-format}

if ! command -v "$clang_format" >/dev/null; then
    echo "format.sh: $clang_format is not installed (Debian package clang-format; ./run.sh deps)" >&2
    [[ ${CI:-} && ${CI:-} != false ]] && exit 1
    exit 77
fi

mapfile -d '' files < <(find reconciler tests -type f \( -name '*.cpp' -o -name '*.hpp' \) -print0 | sort -z)

case "${1:-}" in
    --fix)
        "$clang_format" -i --style=file "${files[@]}"
        echo "format.sh: formatted ${#files[@]} files with $("$clang_format" --version)"
        ;;
    "")
        rc=0
        out=$("$clang_format" --dry-run --Werror --style=file "${files[@]}" 2>&1) || rc=$?
        mapfile -t bad < <(sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' <<<"$out" | sort -u)
        if ((rc != 0)); then
            ((${#bad[@]})) || { echo "$out" >&2; exit 1; }
            printf '%s\n' "${bad[@]}"
            echo "format.sh: ${#bad[@]} of ${#files[@]} files are not formatted as .clang-format says;" \
                 "see the changes with: $clang_format --dry-run FILE; fix them all with: tests/style/format.sh --fix" >&2
            exit 1
        fi
        echo "format.sh: ${#files[@]} files formatted as .clang-format says ($("$clang_format" --version))"
        ;;
    *)
        sed -n '2,7p' "$0" >&2
        exit 2
        ;;
esac
