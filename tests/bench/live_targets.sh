#!/usr/bin/env bash
# Issue 9's performance targets in one command: tests/bench/bench_live.sh on both fleet shapes at
# 10,000 and 50,000 peers, then one table of every target (each a ratio of two medians measured
# in the same run of bench_live.sh). The full report of each run is kept beside the table.
#
#   shapes   clan    3 controllers; the node is server1, which holds every peer (N+2 on its device)
#            single  1 controller with the N peers given inline (N on its device)
#
# Root only (as bench_live.sh). Environment: WGF_BIN or BUILD_DIR as for bench_live.sh (built
# once, reused by every run); BENCH_MATRIX (default "clan:10000 single:10000 clan:50000
# single:50000"); BENCH_NICE (as for bench_live.sh); OUT_DIR (where the reports and JSON go,
# default a new directory under /tmp, printed at the end). Runs at 50,000 peers use fewer
# repetitions (BENCH_RUNS=3 BENCH_LOAD_RUNS=1 BENCH_WATCH_EDITS=8) unless those are set.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
matrix=${BENCH_MATRIX:-"clan:10000 single:10000 clan:50000 single:50000"}
out=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/wgf-targets.XXXXXX")}
mkdir -p "$out"

if [[ -z ${WGF_BIN:-} ]]; then
    build_dir=${BUILD_DIR:-$repo/build-perf}
    if [[ ! -f $build_dir/CMakeCache.txt ]]; then
        cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DWGF_TESTS=OFF >&2
    fi
    cmake --build "$build_dir" -j"$(nproc)" --target wg-fleet >&2
    export WGF_BIN=$build_dir/reconciler/cli/wg-fleet
fi

start=$(date +%s)
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
jsons=()
for cell in $matrix; do
    shape=${cell%%:*}
    peers=${cell##*:}
    case $shape in
        clan) controllers=3 ;;
        single) controllers=1 ;;
        *) echo "live_targets: unknown shape '$shape' (clan or single)" >&2; exit 2 ;;
    esac
    big=0
    [[ $peers -ge 50000 ]] && big=1
    json=$out/$shape-$peers.json
    echo "live_targets: $shape, $peers peers ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))" >&2
    BENCH_PEERS=$peers BENCH_CONTROLLERS=$controllers BENCH_JSON=$json \
        BENCH_RUNS=${BENCH_RUNS:-$([[ $big == 1 ]] && echo 3 || echo 5)} \
        BENCH_LOAD_RUNS=${BENCH_LOAD_RUNS:-$([[ $big == 1 ]] && echo 1 || echo 3)} \
        BENCH_WATCH_EDITS=${BENCH_WATCH_EDITS:-$([[ $big == 1 ]] && echo 8 || echo 20)} \
        "$here/bench_live.sh" >"$out/$shape-$peers.md" 2>"$out/$shape-$peers.log" \
        || { echo "live_targets: $shape $peers failed; see $out/$shape-$peers.log" >&2; tail -5 "$out/$shape-$peers.log" >&2; exit 1; }
    jsons+=("$shape:$json")
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s in all"
echo
python3 "$here/live_targets.py" "${jsons[@]}"
echo
echo "full reports: $out/*.md"
