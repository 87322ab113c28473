#!/usr/bin/env bash
# Benchmarks `wg-fleet check` on generated clan-style fleets of 3 controllers and 1k, 10k and
# 100k peers, and `wg-fleet addresses --json` at 10k peers. Prints a Markdown table of wall
# time (median and max of the runs after the first, which warms the page cache), median CPU
# time (user + system) and peak RSS,
# then a verdict against the scale targets (reported, not asserted):
#   10k peers: check < 0.5 s wall and < 100 MB peak RSS;  100k peers: check < 5 s wall.
# Exit status: 0 every check passed, 1 check rejected a generated fleet (or a run failed),
# 2 a run was killed after BENCH_TIMEOUT seconds (no failure seen otherwise).
#
# Environment: WGF_BIN (binary to use; default: build the work tree Release in BUILD_DIR),
# BUILD_DIR (default <repo>/build-bench), BENCH_REF (build this commit instead, exported with
# git archive into $TMPDIR/wgf-bench-ref-SHA, kept between runs), BENCH_SIZES (default
# "1000 10000 100000"), BENCH_RUNS (default 5), BENCH_TIMEOUT (seconds per run, default 300),
# BENCH_SEED (default 0).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build_dir=${BUILD_DIR:-$repo/build-bench}
sizes=${BENCH_SIZES:-1000 10000 100000}
runs=${BENCH_RUNS:-5}
timeout=${BENCH_TIMEOUT:-300}
seed=${BENCH_SEED:-0}
controllers=3
addresses_size=10000

build() {  # build SRC_DIR BUILD_DIR: configure once, then cmake's incremental build
    if [[ ! -f $2/CMakeCache.txt ]]; then
        cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DWGF_TESTS=OFF >&2 || return 1
    fi
    cmake --build "$2" -j"$(nproc)" --target wg-fleet >&2
}
if [[ -n ${WGF_BIN:-} ]]; then
    bin=$WGF_BIN
    source_desc="given as WGF_BIN"
elif [[ -n ${BENCH_REF:-} ]]; then
    # A committed tree, exported (not checked out) so edits in progress do not change the figures.
    sha=$(git -C "$repo" rev-parse --short "$BENCH_REF^{commit}")
    ref_dir=${TMPDIR:-/tmp}/wgf-bench-ref-$sha
    if [[ ! -f $ref_dir/src/CMakeLists.txt ]]; then
        mkdir -p "$ref_dir/src"
        git -C "$repo" archive "$sha" | tar -x -C "$ref_dir/src"
    fi
    build "$ref_dir/src" "$ref_dir/build" || { echo "bench_check: the build of $BENCH_REF ($sha) failed" >&2; exit 1; }
    build_dir=$ref_dir/build
    bin=$build_dir/reconciler/cli/wg-fleet
    source_desc="commit $sha"
else
    build "$repo" "$build_dir" || { echo "bench_check: the build in $build_dir failed" >&2; exit 1; }
    bin=$build_dir/reconciler/cli/wg-fleet
    source_desc="work tree at $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l) files modified"
fi
[[ -x $bin ]] || { echo "bench_check: no wg-fleet binary at $bin" >&2; exit 1; }
build_type=
[[ -n ${WGF_BIN:-} ]] || build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)

# run_timed.py measures through GNU time (Debian package "time").
if [[ ! -x /usr/bin/time ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y time >&2 || { apt-get update >&2 && apt-get install -y time >&2; }
    fi
    [[ -x /usr/bin/time ]] || { echo "bench_check: /usr/bin/time is missing: apt-get install time" >&2; exit 1; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgf-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (wall times are only meaningful on an idle machine; CPU time is steadier)"
echo "binary: $bin (${build_type:+$build_type, }$source_desc); $runs runs per case, the first one warms the cache; timeout ${timeout}s per run"
echo

# bench NAME PEERS FILE -- CMD...: appends "NAME PEERS BYTES RC:WALL:CPU:RSS..." to $tmp/results.
bench() {
    local name=$1 peers=$2 file=$3
    shift 4
    local out=$tmp/$name-$peers.runs
    python3 "$here/run_timed.py" --runs "$runs" --timeout "$timeout" --stderr "$tmp/$name-$peers.err" -- "$@" > "$out"
    echo "$name $peers $(stat -c %s "$file") $(awk '{printf "%s:%s:%s:%s ", $1, $2, $3, $4}' "$out")" >> "$tmp/results"
    if grep -qv '^0 ' "$out"; then
        echo "bench_check: $name on $peers peers: $(awk '{print $1}' "$out" | sort | uniq -c | tr -s ' \n' ' ')(exit codes); stderr:" >&2
        head -20 "$tmp/$name-$peers.err" >&2
    fi
}

: > "$tmp/results"
for n in $sizes; do
    f=$tmp/fleet-$n.yaml
    python3 "$here/gen_fleet.py" --controllers "$controllers" --peers "$n" --seed "$seed" --out "$f"
    echo "running check on $n peers ..." >&2
    bench check "$n" "$f" -- "$bin" -c "$f" check -q
    if [[ $n == "$addresses_size" ]]; then
        echo "running addresses --json on $n peers ..." >&2
        bench "addresses--json" "$n" "$f" -- "$bin" -c "$f" addresses --json
    fi
done
echo

python3 - "$tmp/results" <<'EOF'
import statistics, sys

human = lambda b: f"{b / 1024:.0f} KiB" if b < 1 << 20 else f"{b / (1 << 20):.1f} MiB"
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
status = 0
print("| command | peers | file size | first run | median wall | max wall | median CPU | peak RSS | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
res = {}
for name, peers, size, *runs in rows:
    runs = [r.split(":") for r in runs]
    rcs = [r[0] for r in runs]
    walls = [float(r[1]) for r in runs]
    cpus = [float(r[2]) for r in runs]
    rss_mb = max(int(r[3]) for r in runs) / 1024
    ok = [i for i, r in enumerate(runs) if i > 0 and r[0] == "0"]  # after the warm-up
    timed = [walls[i] for i in ok]
    bad = [rc for rc in rcs if rc not in ("0", "timeout")]
    if bad: status = 1
    elif "timeout" in rcs and status == 0: status = 2
    med = statistics.median(timed) if timed else None
    mx = max(timed) if timed else None
    cpu = statistics.median([cpus[i] for i in ok]) if ok else None
    res[(name, int(peers))] = (med, mx, rss_mb, rcs, cpu)
    fmt = lambda s: "—" if s is None else f"{s:.3f} s"
    note = "ok" if set(rcs) == {"0"} else ", ".join(f"{rcs.count(r)}× {'exit ' + r if r != 'timeout' else 'timed out'}" for r in sorted(set(rcs)))
    first = "timed out" if rcs[0] == "timeout" else f"{walls[0]:.3f} s"
    print(f"| {name.replace('--', ' --')} | {int(peers):,} | {human(int(size))} | {first} | {fmt(med)} | {fmt(mx)} | {fmt(cpu)} | {rss_mb:.1f} MiB | {note} |")

print()
def verdict(peers, limit_s, limit_mb=None):
    r = res.get(("check", peers))
    if r is None:
        return f"- {peers:,} peers: not run"
    med, mx, rss, rcs, cpu = r
    if med is None:
        why = "a run was killed at the timeout" if "timeout" in rcs else "no run after the warm-up succeeded"
        return f"- {peers:,} peers, check < {limit_s} s: MISSED ({why})"
    parts = [f"check < {limit_s} s: {'met' if med is not None and med < limit_s else 'MISSED'} (median {med:.3f} s wall, {cpu:.3f} s CPU)"]
    if limit_mb is not None:
        mb = rss * (1 << 20) / 1e6  # the target is in MB, the table in MiB
        parts.append(f"peak RSS < {limit_mb} MB: {'met' if mb < limit_mb else 'MISSED'} ({mb:.1f} MB)")
    return f"- {peers:,} peers: " + "; ".join(parts)
print("targets (reported, not asserted):")
print(verdict(10000, 0.5, 100))
print(verdict(100000, 5))
sys.exit(status)
EOF
