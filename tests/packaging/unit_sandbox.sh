#!/usr/bin/env bash
# wg-fleet watch inside the unit's sandbox, as far as it can be rebuilt without systemd as PID 1:
# the capability bounding set, NoNewPrivileges, ProtectSystem=strict with ReadWritePaths= and
# ReadOnlyPaths=, ProtectHome and PrivateTmp, all read from the unit file, in a private mount
# namespace (unshare, mount) and with setpriv. Not rebuilt: the system call filter, the address
# families, the device list, MemoryDenyWriteExecute, ProtectProc and the other namespaces
# (units_facts checks that they are set; only systemd applies them).
#
# In a network namespace of its own, watch converges a one-controller fleet whose WireGuard
# port is below 1024 (CAP_NET_BIND_SERVICE under wireguard-go): it must send READY=1 (to a
# socket on a read-only mount, as /run/systemd/notify is under ReadOnlyPaths=), and a
# plan run from outside the sandbox must find nothing left to do (device, peer, port,
# addresses, routes, sysctls, the nftables table, the hosts file). Then watch is stopped and
# started again in the sandbox: the same wireguard-go daemon serves the device throughout.
#
#   unit_sandbox.sh WG_FLEET_BINARY UNIT_FILE   (root)
set -u
bin=$(realpath "$1") unit=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../e2e/lib.sh"
need_root "network and mount namespaces"
for tool in setpriv unshare nsenter wg python3; do
    command -v $tool >/dev/null || { echo "needs $tool"; exit 1; }
done

# ---- inside the private mount namespace: build the sandbox, then exec the command ----
if [[ ${3:-} == --inside ]]; then
    ns=$4; shift 4
    # Read before anything is mounted over the unit file's directory.
    declare -A set
    for key in ReadWritePaths ReadOnlyPaths ProtectHome PrivateTmp CapabilityBoundingSet NoNewPrivileges UMask; do
        set[$key]=$(sed -n "s/^$key=//p" "$unit")
    done
    setting() { printf '%s\n' "${set[$1]}"; }
    # What is mounted now, before any change; API file systems stay as they are.
    mapfile -t mounts < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) != "nsfs") print $5; break } }' \
        /proc/self/mountinfo | grep -vE '^/(proc|sys|dev)(/|$)' | sort -u)
    mount --make-rprivate / || exit 1
    # ProtectSystem=strict: everything read-only ...
    for m in "${mounts[@]}"; do
        mount -o remount,bind,ro "$m" 2>/dev/null || { [[ $m == / ]] && { echo "remount / ro failed"; exit 1; }; }
    done
    # ... but ReadWritePaths= ('-': skipped when missing), then ReadOnlyPaths= inside them.
    for p in $(setting ReadWritePaths); do
        [[ $p == -* ]] && { p=${p#-}; [[ -e $p ]] || continue; }
        mount --rbind "$p" "$p" && mount -o remount,bind,rw "$p" || { echo "ReadWritePaths $p failed"; exit 1; }
    done
    for p in $(setting ReadOnlyPaths); do
        [[ $p == -* ]] && { p=${p#-}; [[ -e $p ]] || continue; }
        mount --rbind "$p" "$p" && mount -o remount,bind,ro "$p" || { echo "ReadOnlyPaths $p failed"; exit 1; }
    done
    if [[ $(setting ProtectHome) == yes ]]; then
        for d in /home /root /run/user; do
            [[ -d $d ]] && mount -t tmpfs -o ro,mode=000 protecthome "$d"
        done
    fi
    if [[ $(setting PrivateTmp) == yes ]]; then
        mount -t tmpfs -o mode=1777 privatetmp /tmp && mount -t tmpfs -o mode=1777 privatetmp /var/tmp || exit 1
    fi
    caps=-all
    for c in $(setting CapabilityBoundingSet); do
        c=${c#CAP_}
        caps+=",+${c,,}"
    done
    nnp=()
    [[ $(setting NoNewPrivileges) == yes ]] && nnp=(--no-new-privs)
    umask "$(setting UMask)"
    exec nsenter --net="/run/netns/$ns" setpriv --bounding-set="$caps" --inh-caps=-all "${nnp[@]}" -- "$@"
fi

command -v wireguard-go >/dev/null || ip link add wgfprobe$$ type wireguard 2>/dev/null ||
    { echo "needs wireguard-go or the WireGuard module"; exit 1; }
ip link del wgfprobe$$ 2>/dev/null
ns=wgfsbx$$ ifname=sbx$$
tmp=$(mktemp -d /run/wgf-sandbox.XXXXXX)  # in /run: writable in the sandbox, as the unit makes it
# The binary the sandbox runs, where the unit's runs from (/usr/sbin) would be visible: a build
# tree under /root or /home is hidden by ProtectHome=.
cp "$bin" "$tmp/wg-fleet" || exit 1
bin=$tmp/wg-fleet
# sd_notify's socket where the sandbox makes it read-only, as /run/systemd/notify is: under
# /var/cache, which ProtectSystem=strict makes read-only and neither ProtectHome= nor
# PrivateTmp= hides.
notify_dir=$(mktemp -d /var/cache/wgf-notify.XXXXXX) || exit 1
watch_pid= notify_pid=
cleanup() {
    [[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
    [[ -n $notify_pid ]] && kill "$notify_pid" 2>/dev/null && wait "$notify_pid" 2>/dev/null
    # wireguard-go exits when its tun goes away with the namespace.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$tmp" "$notify_dir"
}
trap cleanup EXIT
eventually() { for _ in $(seq 1 120); do "$@" && return 0; sleep 0.5; done; "$@"; }
sandboxed() { unshare -m -- "$here/unit_sandbox.sh" "$bin" "$unit" --inside "$ns" "$@"; }

ip netns add "$ns" || exit 1
ip -n "$ns" link set lo up
cat >"$tmp/fleet.yaml" <<YAML
hosts_file: $tmp/hosts
fleets:
  sbx:
    interface: $ifname
    port: 853
    controllers:
      hub: { endpoint: 127.0.0.1 }
    peers:
      p1: { controller: hub, public_key: "$(wg genkey | wg pubkey)" }
YAML
args=(-c "$tmp/fleet.yaml" --node hub --state-dir "$tmp/state")

# The sandbox itself: the bounding set, a read-only /etc, a writable /run.
bnd=$(sandboxed grep CapBnd /proc/self/status | awk '{ print $2 }')
have=$(capsh --decode="$bnd" | cut -d= -f2 | tr ',' '\n' | sort | paste -sd' ')
want=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | tr 'A-Z' 'a-z' | sort | paste -sd' ')
check "the sandbox's bounding set is the unit's ($have)" test "$have" = "$want"
sandboxed touch "/etc/wgf-sandbox-probe-$$" 2>/dev/null
rc=$?
rm -f "/etc/wgf-sandbox-probe-$$"
check "the sandbox cannot write /etc" test $rc -ne 0
check "the sandbox can write /run" sandboxed touch "$tmp/probe"
sandboxed touch "$notify_dir/probe" 2>/dev/null
rc=$?
rm -f "$notify_dir/probe"
check "the notify socket's directory ($notify_dir) is read-only in the sandbox" test $rc -ne 0

# sd_notify's socket: every message on its own line.
python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().replace("\n", " "))
' "$notify_dir/notify" >"$tmp/notify.log" &
notify_pid=$!
eventually test -S "$notify_dir/notify"

start_watch() {
    : >"$tmp/notify.log"
    # exec all the way down (subshell, unshare, this script, nsenter, setpriv): $! is watch itself.
    (
        export NOTIFY_SOCKET=$notify_dir/notify
        exec unshare -m -- "$here/unit_sandbox.sh" "$bin" "$unit" --inside "$ns" "$bin" "${args[@]}" watch
    ) >>"$tmp/watch.log" 2>&1 &
    watch_pid=$!
}
converged() { ip netns exec "$ns" "$bin" -q "${args[@]}" plan --detailed-exitcode >/dev/null 2>&1; }
daemon_pid() {
    local p
    for p in $(ip netns pids "$ns"); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == wireguard-go ]] && echo "$p"
    done
}

start_watch
check "watch in the sandbox sends READY=1" eventually grep -q 'READY=1' "$tmp/notify.log"
check "a plan from outside the sandbox finds nothing to do" converged
check "the device listens on port 853" test "$(ip netns exec "$ns" wg show "$ifname" listen-port 2>/dev/null)" = 853
check "the device has the peer" test "$(ip netns exec "$ns" wg show "$ifname" peers 2>/dev/null | wc -l)" = 1
check "the hosts file is written (replaced by rename in /run)" grep -q '^# Managed by wg-fleet' "$tmp/hosts"
check "the nftables table inet wg-fleet exists" eval "ip netns exec $ns nft list table inet wg-fleet >/dev/null"
daemon=$(daemon_pid)

kill "$watch_pid"
wait "$watch_pid"
rc=$?
check "watch stops on SIGTERM (exit $rc)" test $rc -eq 0
watch_pid=
check "the device still answers with watch stopped" eval "ip netns exec $ns wg show $ifname listen-port >/dev/null"
start_watch
check "watch started again in the sandbox sends READY=1" eventually grep -q 'READY=1' "$tmp/notify.log"
check "nothing to do after the restart" converged
check "the same userspace daemon serves the device (${daemon:-kernel} = $(daemon_pid))" test "$(daemon_pid)" = "$daemon"
((fail)) && tail -20 "$tmp/watch.log"
finish
