# What the end-to-end scripts share: the root check, the tally of checks, and a server and a client
# network namespace.
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

# A server and a client namespace, $nss and $nsc (set by the script, names unique to the run):
# S and C run a command in one of them.
S() { ip netns exec "$nss" "$@"; }
C() { ip netns exec "$nsc" "$@"; }

# server_client_netns ID: creates $nss and $nsc with loopback up, joined by a veth pair vsID/vcID
# (the server 192.0.2.1/24, the client 192.0.2.2/24). Fails if a namespace cannot be made.
server_client_netns() {
  ip netns add "$nss" && ip netns add "$nsc" || return 1
  S ip link set lo up; C ip link set lo up
  ip link add "vs$1" netns "$nss" type veth peer name "vc$1" netns "$nsc"
  S ip addr add 192.0.2.1/24 dev "vs$1"; S ip link set "vs$1" up
  C ip addr add 192.0.2.2/24 dev "vc$1"; C ip link set "vc$1" up
}

# remove_netns NS...: SIGTERM to every process in each namespace (wireguard-go removes its UAPI
# socket then), and the namespaces go; for the script's cleanup trap.
remove_netns() {
  local ns p
  for ns; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
}

# use_sandbox PREFIX: a sandbox named PREFIX$$ ($name) and a temporary directory ($tmp), both
# removed when the script exits, whatever happened; needs $bin. in_node NODE COMMAND... runs a
# command in a node of it.
use_sandbox() {
  name=$1$$
  tmp=$(mktemp -d "/tmp/wgf-$1.XXXXXX")
  trap '"$bin" sandbox down --name "$name" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
}
in_node() { local node=$1; shift; "$bin" sandbox exec --name "$name" "$node" "$@"; }
# in_node_bg NODE COMMAND... &: in_node for the background. The function's subshell becomes the
# command (exec; sandbox exec itself forks nothing), so $! is the command's own PID and killing
# it stops the command. A backgrounded in_node would leave its command running after `kill $!`
# (only the subshell dies): a watch left that way kept applying the test's later edits.
in_node_bg() { local node=$1; shift; exec "$bin" sandbox exec --name "$name" "$node" "$@"; }
# eventually COMMAND...: polls a condition for up to 40 s, for convergence (a first handshake, a
# daemon's start), never for timing; the last try's status.
eventually() { for _ in $(seq 1 160); do "$@" && return 0; sleep 0.25; done; "$@"; }
