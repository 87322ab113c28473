#!/usr/bin/env bash
# The system calls and socket families wg-fleet and the wireguard-go it starts really use are
# the ones the unit allows: apply, status, watch and plan on a one-controller fleet (port below
# 1024) in a network namespace of its own, under strace -f; every call any of their processes
# made must pass the unit's SystemCallFilter= lines (expanded by systemd-analyze syscall-filter),
# and every socket family they opened must be in RestrictAddressFamilies=. systemd cannot apply
# the filter here (it is not PID 1), so this is how a call the filter would refuse is found.
#
#   unit_syscalls.sh WG_FLEET_BINARY UNIT_FILE   (root)
set -u
bin=$(realpath "$1") unit=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../e2e/lib.sh"
need_root "network namespaces"
for tool in strace wg python3 systemd-analyze; do
    command -v $tool >/dev/null || { echo "needs $tool (./run.sh deps)"; exit 1; }
done
command -v wireguard-go >/dev/null || { echo "needs wireguard-go"; exit 1; }

ns=wgfsys$$ ifname=sys$$
tmp=$(mktemp -d /tmp/wgf-syscalls.XXXXXX)
cleanup() {
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns" || exit 1
ip -n "$ns" link set lo up
cat >"$tmp/fleet.yaml" <<YAML
hosts_file: $tmp/hosts
fleets:
  sys:
    interface: $ifname
    port: 853
    controllers:
      hub: { endpoint: 127.0.0.1 }
    peers:
      p1: { controller: hub, public_key: "$(wg genkey | wg pubkey)" }
YAML

# One strace over the whole sequence; deleting the link at the end ends wireguard-go, and with
# it the trace. watch runs until a SIGTERM: long enough to converge and enter its loop.
run=$(printf '%q ' "$bin" -c "$tmp/fleet.yaml" --node hub --state-dir "$tmp/state")
ip netns exec "$ns" strace -f -ff -qq -o "$tmp/trace" -- bash -c "
    $run apply && $run status && { timeout -s TERM 5 $run watch; true; } && $run plan --detailed-exitcode
    echo \"sequence exit \$?\"
    ip link del $ifname
" >"$tmp/out" 2>&1
cat "$tmp/out" | grep -v 'no public key yet\|^ *hub: \|^ *^$'
check "apply, status, watch and plan ran and ended converged" grep -qx 'sequence exit 0' "$tmp/out"

python3 - "$unit" "$tmp" <<'PY'
import glob, os, re, subprocess, sys
unit, tmp = sys.argv[1], sys.argv[2]

groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout.splitlines():
    if line.startswith("@"):
        cur = groups.setdefault(line.split()[0], set())
    elif cur is not None and line.strip() and not line.strip().startswith("#"):
        cur.add(line.strip())

def expand(word):
    if not word.startswith("@"):
        return {word}
    return set().union(*(expand(w) for w in groups[word]))

# systemd's rule: the first line decides allow (no ~) or deny list; later lines add or remove.
settings = {}
for line in open(unit, encoding="utf-8"):
    key, _, value = line.strip().partition("=")
    settings.setdefault(key, []).append(value)
allowed = None
for value in settings.get("SystemCallFilter", []):
    deny = value.startswith("~")
    names = set().union(*(expand(w) for w in value.lstrip("~").split()))
    if allowed is None:
        allowed = names if not deny else None
        if deny:
            sys.exit("a deny-list SystemCallFilter: this test expects an allow list first")
    elif deny:
        allowed -= names
    else:
        allowed |= names
families = set(" ".join(settings.get("RestrictAddressFamilies", [])).split())

# Processes of wg-fleet and wireguard-go: their trace files (one per pid), found by the programs
# they ran; a child forked without exec belongs to its parent's program (it has no execve).
fail = 0
used, opened = {}, {}
for path in sorted(glob.glob(os.path.join(tmp, "trace.*"))):
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    execs = [m.group(1) for l in lines if (m := re.match(r'execve\("([^"]+)".*= 0$', l))]
    prog = os.path.basename(execs[-1]) if execs else "forked child"
    if execs and prog not in ("wg-fleet", "wireguard-go"):
        continue
    # strace writes calls it could not finish as "name(..." and resumes them as "<... name resumed>".
    for l in lines:
        m = re.match(r"(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)", l)
        if m:
            used.setdefault(m.group(1), set()).add(prog)
        s = re.match(r"socket\((AF_[A-Z0-9]+)", l)
        if s:
            opened.setdefault(s.group(1), set()).add(prog)
for name in sorted(used):
    if name not in allowed:
        print(f"FAIL {name} (by {', '.join(sorted(used[name]))}) is not allowed by SystemCallFilter=")
        fail += 1
for fam in sorted(opened):
    if fam not in families:
        print(f"FAIL {fam} sockets (by {', '.join(sorted(opened[fam]))}) are not in RestrictAddressFamilies=")
        fail += 1
print(f"{'ok  ' if not fail else 'FAIL'} {len(used)} system calls ({', '.join(sorted(used))}) and socket families "
      f"{sorted(opened)} of wg-fleet and wireguard-go, checked against {os.path.basename(unit)}'s filters")
sys.exit(1 if fail else 0)
PY
check "every system call and socket family used passes the unit's filters" test $? -eq 0
finish
