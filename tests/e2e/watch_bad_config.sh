#!/usr/bin/env bash
# `watch` never dies on a bad configuration: in a network namespace of its own, watch converges a
# one-node fleet (wireguard-go), then the config file is replaced in turn by a directory, a file
# over the size limit, a link to /dev/zero, a FIFO, invalid YAML, and a valid file whose load
# runs out of memory (watch's address space capped for that step). After each, watch must still
# run, must have logged why the file was refused, and the device must keep the last good peers;
# a good edit is then applied. Watch runs with its address space capped after its first converge,
# so a load that reads without bound ends it (the failure this guards against) instead of the
# machine's memory.
# Usage: watch_bad_config.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
command -v wireguard-go >/dev/null || { echo "needs wireguard-go"; [[ ${CI:-} && ${CI:-} != false ]] && exit 1 || exit 77; }
ns=wgfw$$
tmp=$(mktemp -d /tmp/wgf-watch.XXXXXX)
watch_pid=
cleanup() {
  [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  # wireguard-go exits when its tun goes away with the namespace.
  for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
# Waits (up to a minute: a bound, not a measurement) until the command succeeds.
eventually() { for _ in $(seq 1 120); do "$@" && return 0; sleep 0.5; done; "$@"; }
peers() { ip netns exec "$ns" wg show wt peers 2>/dev/null | wc -l; }
log_has() { grep -qF -- "$1" "$tmp/watch.log"; }
has_peers() { test "$(peers)" = "$1"; }
log_from=1
# The log since the current step began holds the reason and that the last good config stays.
refused_for() {
  tail -c +"$log_from" "$tmp/watch.log" | grep -qF -- "$1" &&
    tail -c +"$log_from" "$tmp/watch.log" | grep -qF "last good configuration stays in force"
}

ip netns add "$ns" || exit 1
ip -n "$ns" link set lo up
k1=$(wg genkey | wg pubkey); k2=$(wg genkey | wg pubkey)
cfg=$tmp/fleet.yaml
write_fleet() {
  { printf 'hosts_file: %s/root/hosts\nhttp_routes_dir: %s/root/routes\n' "$tmp" "$tmp"
    printf 'fleets:\n  wt:\n    port: 51820\n    controllers:\n      n1: { endpoint: 127.0.0.1 }\n    peers:\n'
    printf '      p1: { controller: n1, public_key: "%s" }\n' "$k1"
    [[ $1 == 2 ]] && printf '      p2: { controller: n1, public_key: "%s" }\n' "$k2"
  } > "$cfg.new"
  mv -T "$cfg.new" "$cfg"
}
write_fleet 1
cp "$cfg" "$tmp/good.yaml"

ip netns exec "$ns" "$bin" -v -c "$cfg" --node n1 --state-dir "$tmp/state" \
  watch --interval 1 >"$tmp/watch.log" 2>&1 &
watch_pid=$!
check "watch applies the first configuration (1 peer)" eventually has_peers 1
prlimit --pid "$watch_pid" --as=$((1024 * 1024 * 1024)) || bad "cap watch's address space"

# Replaces the config file by what "$@" creates at $cfg, then waits until watch has logged that
# it refused it and why (removing the old file may first be refused as a missing file).
replace_and_refuse() {
  local what=$1 reason=$2; shift 2
  log_from=$(( $(stat -c %s "$tmp/watch.log") + 1 ))
  rm -rf "$cfg"
  "$@"
  check "$what: watch refused it and logged why ($reason)" eventually refused_for "$reason"
  check "$what: watch is still running" kill -0 "$watch_pid"
  check "$what: the last good configuration is in force (1 peer)" has_peers 1
}
replace_and_refuse "a directory" "not a regular file but a directory" mkdir "$cfg"
replace_and_refuse "a 65 MiB file" "larger than 64 MiB" truncate -s 65M "$cfg"
replace_and_refuse "a link to /dev/zero" "a symbolic link to a character device (/dev/zero)" ln -s /dev/zero "$cfg"
replace_and_refuse "a FIFO" "not a regular file but a FIFO" mkfifo "$cfg"
replace_and_refuse "invalid YAML" "YAML syntax error" bash -c "printf 'fleets:\n  wt: [oops\n' > '$cfg'"

# A load that runs out of memory: cap watch's address space just above what it uses, then give
# it a valid file that needs more (a 30 MB comment is still read and kept for diagnostics). The file
# is written beside and moved into place: written in place, its writes would go on past watch's
# settle period, and a later write could make watch load it again after the cap is lifted (it
# loads, and the good edit below is then an edit of it, not of the configuration before).
vm_kb=$(awk '/^VmSize:/ {print $2}' "/proc/$watch_pid/status")
prlimit --pid "$watch_pid" --as=$(( (vm_kb + 16384) * 1024 )): || bad "cap watch's address space tighter"
replace_and_refuse "a load out of memory" "out of memory while loading it" \
  bash -c "{ head -c 30000000 /dev/zero | tr '\\0' '#'; printf '\n'; cat '$tmp/good.yaml'; } > '$cfg.new' && mv -T '$cfg.new' '$cfg'"
prlimit --pid "$watch_pid" --as=$((1024 * 1024 * 1024)): || bad "lift the tighter cap"

rm -rf "$cfg"
write_fleet 2
check "a good edit afterwards is applied (2 peers)" eventually has_peers 2
check "watch logged the reload" log_has "loaded $cfg (file changed)"
# The good edit adds a peer to the configuration in force: only its lines are parsed again
# (config/reparse.hpp; -v logs the phase).
check "the good edit was parsed by its edited part" log_has "parse (edited part)"
check "watch is still running at the end" kill -0 "$watch_pid"
kill "$watch_pid"; wait "$watch_pid" 2>/dev/null; watch_pid=
check "watch exited cleanly on SIGTERM" log_has "exiting on"
[[ $fail -eq 0 ]] || { echo "--- watch log"; head -c 20000 "$tmp/watch.log"; }
finish
