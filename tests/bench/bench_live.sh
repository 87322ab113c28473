#!/usr/bin/env bash
# Live benchmark of wg-fleet on a controller with 10,000 peers over wireguard-go, side by side
# with `wg` (wireguard-tools) on the same kind of device in the same run: the Performance
# sections of issue 3 (the UAPI backend) and issue 4 (the reconciler).
#
#   read      `wg show IF dump` vs `wg-fleet plan` (parse+render+read+diff, an upper bound) and
#             the UAPI get=1 exchange alone in both (from an strace stopping on connect/close/sendto)
#   load      `wg setconf` of `wg showconf`'s config onto a fresh wireguard-go device vs
#             `wg-fleet apply` onto a fresh empty device, and `wg-fleet apply` from nothing
#   no-op     `wg-fleet apply` vs `wg syncconf IF FILE` (FILE from `wg showconf`)
#   one peer  one peer's route moved: `wg-fleet apply` vs `wg syncconf` of a file with that one
#             change vs `wg set IF peer KEY allowed-ips ...`; the journal's peer ops and the peer
#             sections of the UAPI set request are counted
#   watch     `wg-fleet watch --interval 3600`; 20 times one peer's route is edited (temp file +
#             rename, as editors do): time from the rename until journal.log has that peer's op
#   RSS       peak RSS (GNU time %M) of every wg-fleet command, VmHWM of the watch process
# and prints a Markdown table with one verdict per target. Times are reported, never asserted.
#
# Root only: every device lives in a network namespace this script creates (named
# wgfl<PID>-*); the interfaces are wgfl<PID> and wgfl<PID>s (the UAPI socket directory
# /var/run/wireguard is shared by every namespace, so the names are unique to this run). Files
# wg-fleet writes (hosts file, state, keys, journal) go under a temporary directory
# (--state-dir; hosts_file and http_routes_dir in the fleet file). Everything is removed on exit, also on failure or Ctrl-C.
#
# Exit status: 0 every command succeeded (whatever the figures), 1 a command failed, 130
# interrupted.
#
# Environment: WGF_BIN (binary to use; default: build the work tree Release in BUILD_DIR),
# BUILD_DIR (default <repo>/build-perf), BENCH_PEERS (default 10000), BENCH_CONTROLLERS
# (default 3; the node is the first controller, which has every peer), BENCH_RUNS (default 5),
# BENCH_LOAD_RUNS (default 3), BENCH_WATCH_EDITS (default 20), BENCH_SEED (default 0),
# BENCH_SETTLE (seconds of pause before every timed command, default 0.3: wireguard-go collects
# the garbage of the previous 10,000-peer exchange, which otherwise lands on the next command),
# BENCH_JSON (also write every figure to this file), KEEP_TMP=1 (keep the temporary directory),
# BENCH_NICE (run every measured process, wireguard-go included, at this nice level, e.g. -10 on
# a machine shared with builds: wg and wg-fleet get the same priority, the figures less noise).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build_dir=${BUILD_DIR:-$repo/build-perf}

if [[ $(id -u) -ne 0 ]]; then
    echo "bench_live: needs root (network namespaces, wireguard-go)" >&2
    exit 1
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "bench_live: installing GNU time (/usr/bin/time) for peak RSS" >&2
    apt-get install -y time >&2
fi
for tool in ip wg wireguard-go strace python3; do
    command -v "$tool" >/dev/null || { echo "bench_live: $tool is not installed" >&2; exit 1; }
done

if [[ -n ${WGF_BIN:-} ]]; then
    bin=$WGF_BIN
    source_desc="given as WGF_BIN"
else
    if [[ ! -f $build_dir/CMakeCache.txt ]]; then
        cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DWGF_TESTS=OFF >&2
    fi
    cmake --build "$build_dir" -j"$(nproc)" --target wg-fleet >&2 || { echo "bench_live: the build in $build_dir failed" >&2; exit 1; }
    bin=$build_dir/reconciler/cli/wg-fleet
    source_desc="work tree at $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l) files modified"
fi
[[ -x $bin ]] || { echo "bench_live: no wg-fleet binary at $bin" >&2; exit 1; }
bin=$(readlink -f "$bin")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgf-live.XXXXXX")
chmod 700 "$tmp"
ifname=wgfl$$
ns_prefix=wgfl$$-
: >"$tmp/netns.list"

cleanup() {
    local rc=$? ns pid pids left
    set +e
    trap - EXIT INT TERM
    # Every namespace this run created: end the processes in it (wireguard-go, watch) by PID,
    # deleting the links first so wireguard-go exits on its own, then the namespace.
    while read -r ns; do
        [[ -n $ns ]] || continue
        ip netns list 2>/dev/null | grep -qw -- "$ns" || continue
        ip -n "$ns" link del "$ifname" 2>/dev/null
        ip -n "$ns" link del "${ifname}s" 2>/dev/null
        for sig in TERM KILL; do
            pids=$(ip netns pids "$ns" 2>/dev/null)
            [[ -n $pids ]] || break
            for pid in $pids; do kill -"$sig" "$pid" 2>/dev/null; done
            for _ in $(seq 30); do
                left=$(ip netns pids "$ns" 2>/dev/null)
                [[ -z $left ]] && break
                sleep 0.1
            done
        done
        ip netns del "$ns" 2>/dev/null
    done <"$tmp/netns.list"
    rm -f "/var/run/wireguard/$ifname.sock" "/var/run/wireguard/${ifname}s.sock"
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "bench_live: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
py=
on_signal() {
    # The driver cleans up after itself on SIGTERM; the EXIT trap catches whatever it left.
    [[ -n $py ]] && kill -TERM "$py" 2>/dev/null && wait "$py" 2>/dev/null
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, kernel $(uname -r), $(awk '/MemTotal/ {printf "%.1f GB RAM", $2/1048576}' /proc/meminfo)"
echo "tools: $(wg --version 2>&1 | head -1); wireguard-go $(wireguard-go --version 2>&1 | sed -n 's/.*wireguard-go v*\([^ ]*\).*/\1/p' | head -1); $("$bin" --version 2>&1 | head -1) ($source_desc)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (wall times are only meaningful on an idle machine)"
echo

json_arg=()
[[ -n ${BENCH_JSON:-} ]] && json_arg=(--json "$BENCH_JSON")
nice_cmd=()
if [[ -n ${BENCH_NICE:-} ]]; then
    nice_cmd=(nice -n "$BENCH_NICE")
    echo "nice level of every measured process: $BENCH_NICE"
    echo
fi
"${nice_cmd[@]}" python3 "$here/live_bench.py" --bin "$bin" --tmp "$tmp" --ifname "$ifname" --ns-prefix "$ns_prefix" \
    --peers "${BENCH_PEERS:-10000}" --controllers "${BENCH_CONTROLLERS:-3}" --seed "${BENCH_SEED:-0}" \
    --settle "${BENCH_SETTLE:-0.3}" --runs "${BENCH_RUNS:-5}" --load-runs "${BENCH_LOAD_RUNS:-3}" --watch-edits "${BENCH_WATCH_EDITS:-20}" \
    "${json_arg[@]}" &
py=$!
wait "$py"  # in the background so that a signal to this script is handled at once
py=
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
