#!/usr/bin/env bash
# Forwards that scale (issue 13): `wg-fleet apply` on an edge node with N forwards side by side,
# in the same run, with `nft -f` reloading the same N forwards. For each N in BENCH_FORWARDS:
#
#   from nothing   wg-fleet apply onto the node without its nftables table (every forward added)
#   no-op          wg-fleet apply with nothing to change
#   add one        one forward added to the file, then wg-fleet apply (and its removal, the same)
#   watch          the same add and removal as edits under `wg-fleet watch` (tests/bench/watch_edits.py):
#                  the time from the rename of the file until the journal has the forward's op
#   nft -f (map)   nft -f of edge1's table exactly as `nft list` prints it, deleted and created
#                  again in one transaction: the reload of the same N forwards by hand
#   nft -f (rules) nft -f of the same N forwards as one DNAT rule each (the form wg-fleet used
#                  before the maps), in a table of its own
#
# `nft monitor` records what the kernel changed for one add and one removal: one map element
# each is the target. `wg-fleet -v`'s breakdown of one no-op and one add-one apply shows where the
# time goes. Figures are medians of BENCH_RUNS runs (min–max in brackets); nothing is asserted.
#
# Root only: the node lives in a network namespace this script creates (wgfbf<PID>), its
# WireGuard device (wireguard-go, interface wgbf<PID>) and its files under a temporary directory;
# everything is removed on exit, also on failure.
#
# Usage: tests/bench/bench_forwards.sh [WG_FLEET_BINARY]
# Environment: BENCH_FORWARDS (default "1000 10000"), BENCH_RUNS (default 5).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$(realpath "${1:-build/reconciler/cli/wg-fleet}")
forwards_list=${BENCH_FORWARDS:-1000 10000}
runs=${BENCH_RUNS:-5}
[[ $(id -u) -eq 0 ]] || { echo "bench_forwards: needs root (a network namespace)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench_forwards: needs GNU time (/usr/bin/time; apt-get install time)" >&2; exit 1; }

ns=wgfbf$$
ifname=wgbf$$
tmp=$(mktemp -d /tmp/wgf-bench-fwd.XXXXXX)
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }

# A fleet with an edge controller and one peer whose LAN (10.99.0.0/16) takes the forwards'
# targets; N forwards on edge1, TCP and UDP alternating, ports from 1024 up. $2 adds one more.
write_fleet() {  # N EXTRA(0|1)
  python3 - "$1" "$2" "$tmp" "$ifname" > "$tmp/fleet.yaml" <<'EOF'
import sys
n, extra, tmp, ifname = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4]
print(f"hosts_file: {tmp}/hosts\nhttp_routes_dir: {tmp}/routes\nfleets:\n  edge:\n    interface: {ifname}\n    ipv4: 10.50.0.0/24")
print("    controllers:\n      edge1: { endpoint: 10.77.31.1, ipv4: 10.50.0.1 }")
print("    peers:\n      svc: { endpoint: 10.77.31.2, ipv4: 10.50.0.12, public_key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=, routes: [10.99.0.0/16] }")
print("forwards:")
for i in range(n + (1 if extra else 0)):
    proto = "tcp" if i % 2 == 0 else "udp"
    print(f"  - {{ name: f{i}, node: edge1, proto: {proto}, port: {1024 + i}, to: 10.99.{i >> 8}.{i & 255}, to_port: 80 }}")
EOF
}
# wg-fleet as edge1, in its namespace: a script, so that run_timed.py can run it.
printf '#!/bin/sh\nexec ip netns exec %s %s -c %s/fleet.yaml --dropin-dir /nonexistent --node edge1 --state-dir %s/state "$@"\n' \
  "$ns" "$bin" "$tmp" "$tmp" > "$tmp/wgf"
chmod +x "$tmp/wgf"
wgf() { "$tmp/wgf" "$@"; }

# Runs "$@" once (tests/bench/run_timed.py: GNU time, wait4); prints "WALL_US/CPU_US", CPU being
# user + system time of the command (the kernel's work for its netlink requests included).
time_ms() {
  local rc wall cpu rss
  read -r rc wall cpu rss < <(python3 "$here/run_timed.py" --runs 1 --timeout 300 --stderr "$tmp/errors" -- "$@")
  [[ $rc == 0 ]] || { echo "bench_forwards: failed ($rc): $*" >&2; cat "$tmp/errors" >&2; exit 1; }
  python3 -c "print(f'{round($wall*1e6)}/{round($cpu*1e6)}')"
}
# Median wall time (min–max) and median CPU time of the "WALL/CPU" pairs on stdin, in ms.
summary() {
  python3 -c 'import sys,statistics as s
p=[x.split("/") for x in sys.stdin.read().split()]; w=[int(a)/1000 for a,_ in p]; c=[int(b)/1000 for _,b in p]
print(f"{s.median(w):.1f} ms ({min(w):.1f}–{max(w):.1f}) | {s.median(c):.1f} ms")'
}
median() { python3 -c 'import sys,statistics as s; print(s.median([int(x.split("/")[0]) for x in sys.stdin.read().split()]))'; }

# The kernel's changes while "$@" runs, as `nft monitor` prints them (one line each).
monitored() {
  in_ns nft monitor > "$tmp/monitor" 2>/dev/null &
  local mon=$!
  sleep 0.3
  "$@" >/dev/null 2>>"$tmp/errors"
  sleep 0.3
  kill "$mon" 2>/dev/null; wait "$mon" 2>/dev/null || true
  grep -a -cE '^(add|delete) ' "$tmp/monitor" || true
}

echo "bench_forwards: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $("$bin" --version), nft $(nft --version | cut -d' ' -f2)"
for n in $forwards_list; do
  in_ns nft delete table inet wg-fleet 2>/dev/null || true
  in_ns nft delete table inet bench-rules 2>/dev/null || true
  write_fleet "$n" 0
  full=$(time_ms "$tmp/wgf" apply)
  noop=$(for _ in $(seq "$runs"); do time_ms "$tmp/wgf" apply; done)
  noop_v=$(wgf -v apply 2>&1 | grep -iE "time|ms" | tr '\n' ' ' || true)
  add=; del=
  for _ in $(seq "$runs"); do
    write_fleet "$n" 1; add+=" $(time_ms "$tmp/wgf" apply)"
    write_fleet "$n" 0; del+=" $(time_ms "$tmp/wgf" apply)"
  done
  write_fleet "$n" 1; add_changes=$(monitored wgf apply); add_lines=$(grep -aE '^(add|delete) ' "$tmp/monitor" | tr '\n' ' ')
  write_fleet "$n" 0; del_changes=$(monitored wgf apply); del_lines=$(grep -aE '^(add|delete) ' "$tmp/monitor" | tr '\n' ' ')
  write_fleet "$n" 1; add_v=$(wgf -v apply 2>&1 | grep -iE "time|ms" | tr '\n' ' ' || true)
  write_fleet "$n" 0; wgf apply >/dev/null
  # The same add and removal under `watch` (the file replaced by rename, as editors do).
  write_fleet "$n" 1; cp "$tmp/fleet.yaml" "$tmp/with.yaml"; write_fleet "$n" 0
  watch_line=$(python3 "$here/watch_edits.py" "$tmp/wgf" "$tmp/fleet.yaml" "$tmp/state/journal.log" "$((runs * 2))" "f$n" "$tmp/with.yaml")

  # The reload by hand: the same table, deleted and created again in one transaction.
  { echo "table inet wg-fleet"; echo "delete table inet wg-fleet"; in_ns nft list table inet wg-fleet; } > "$tmp/reload.nft"
  elements=$(grep -o 'comment "dnat-f[0-9]*-v4"' "$tmp/reload.nft" | wc -l || true)
  reload=$(for _ in $(seq "$runs"); do time_ms ip netns exec "$ns" nft -f "$tmp/reload.nft"; done)
  check=$(wgf plan --detailed-exitcode >/dev/null 2>&1; echo $?)
  # The same forwards as one rule each.
  python3 - "$n" > "$tmp/rules.nft" <<'EOF'
import sys
n = int(sys.argv[1])
print("table inet bench-rules\ndelete table inet bench-rules\ntable inet bench-rules {\n chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;")
for i in range(n):
    proto = "tcp" if i % 2 == 0 else "udp"
    print(f'  meta nfproto ipv4 {proto} dport {1024 + i} dnat ip to 10.99.{i >> 8}.{i & 255}:80 comment "dnat-f{i}-v4"')
print(" }\n}")
EOF
  reload_rules=$(for _ in $(seq "$runs"); do time_ms ip netns exec "$ns" nft -f "$tmp/rules.nft"; done)
  in_ns nft delete table inet bench-rules

  r=$(median <<<"$reload")
  echo
  echo "## $n forwards ($elements of them in edge1's table; plan after the reloads exits $check)"
  echo "| measurement | wall time, median (min–max) | CPU time, median | wall ratio to the reload |"
  echo "|---|---|---|---|"
  ratio() { python3 -c "print(f'{$(median <<<"$1")/$r:.3f}×')"; }
  echo "| wg-fleet apply from nothing | $(summary <<<"$full") | $(ratio "$full") |"
  echo "| wg-fleet apply, no-op | $(summary <<<"$noop") | $(ratio "$noop") |"
  echo "| wg-fleet apply, add one forward | $(summary <<<"$add") | $(ratio "$add") |"
  echo "| wg-fleet apply, remove one forward | $(summary <<<"$del") | $(ratio "$del") |"
  echo "| nft -f of edge1's table as nft list prints it (the reload) | $(summary <<<"$reload") | 1 |"
  echo "| nft -f, one DNAT rule per forward | $(summary <<<"$reload_rules") | $(ratio "$reload_rules") |"
  echo
  echo "kernel changes (nft monitor) of one add: $add_changes: $add_lines"
  echo "kernel changes (nft monitor) of one removal: $del_changes: $del_lines"
  echo "-v, no-op: $noop_v"
  echo "-v, add one: $add_v"
  echo "watch, one forward added or removed by an edit, rename → its op in the journal: $watch_line"
done
