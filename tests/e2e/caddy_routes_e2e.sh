#!/usr/bin/env bash
# http_routes served by Caddy, end to end with the real Caddy: a fleet in the sandbox
# (wireguard-go tunnels), edge1 runs Caddy (its own Caddyfile, admin endpoint and state in a
# temporary directory, inside edge1's namespace) importing the snippet directory wg-fleet writes;
# svc runs an HTTP server. A route (`entrypoint: web`, a http://HOST site: nothing tries ACME)
# answers a request carrying its Host header with svc's page over the tunnel once apply wrote the
# snippet and ran the reload; a failing reload fails the apply and is retried by the next; and the
# route stops answering once it is removed from the YAML and applied.
# Usage: caddy_routes_e2e.sh WG_FLEET_BINARY   (root)
set -u
bin=$(realpath "$1")
. "$(dirname "$0")/lib.sh"
need_root "network namespaces"
command -v caddy >/dev/null || { echo "FAIL caddy is not installed (Debian package caddy)"; exit 1; }

name=cr$$
tmp=$(mktemp -d /tmp/wgf-caddy-e2e.XXXXXX)
chmod 755 "$tmp"
srv=
cleanup() {
  # The processes themselves, not only the `sandbox exec` that started them.
  for f in "$tmp/caddy.pid" "$tmp/service.pid"; do [[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null; done
  [[ -n $srv ]] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
  "$bin" sandbox down --name "$name" >/dev/null 2>&1
  # The route directory this script made in the sandbox's tree, also when `sandbox up` failed.
  rm -rf "/run/wg-fleet-sandbox/$name"
  rm -rf "$tmp"
}
trap cleanup EXIT

# The route files land under the node's file root in the sandbox: files/routes.
routes=/run/wg-fleet-sandbox/$name/nodes/edge1/files/routes
admin=127.0.0.1:2999  # edge1's own loopback: no other Caddy shares it
cfg=$tmp/fleet.yaml
write_cfg() {  # $1: the caddy_reload command, $2: the http_routes: list
  cat > "$cfg" <<EOF
fleets:
  edge:
    ipv4: 10.50.0.0/24
    controllers:
      edge1: { endpoint: 10.77.32.1, ipv4: 10.50.0.1 }
    peers:
      svc: { endpoint: 10.77.32.2, ipv4: 10.50.0.12 }
http_server: caddy
http_routes_dir: /routes
caddy_reload: $1
$2
EOF
}
reload="caddy reload --config $tmp/Caddyfile --address $admin"
route='http_routes:
  - { name: app, node: edge1, host: app.example.test, to: "http://svc:8000", entrypoint: web }'
write_cfg "$reload" ""
check "sandbox up (no route yet)" "$bin" -q sandbox --name "$name" up "$cfg"
mkdir -p "$routes"

# Caddy on edge1: its own Caddyfile importing the route directory, its state in $tmp.
cat > "$tmp/Caddyfile" <<EOF
{
	admin $admin
}
import $routes/*.caddy
EOF
in_node edge1 env HOME="$tmp" XDG_CONFIG_HOME="$tmp" XDG_DATA_HOME="$tmp" \
  caddy start --config "$tmp/Caddyfile" --pidfile "$tmp/caddy.pid" >"$tmp/caddy.log" 2>&1
check "caddy runs in edge1's namespace" eventually in_node edge1 curl -sf "http://$admin/config/" -o /dev/null

# svc's page, served on every address of svc.
mkdir "$tmp/www"
token=served-by-svc-$$
echo "$token" > "$tmp/www/index.html"
cat > "$tmp/service.py" <<EOF
import functools, http.server, os, socket
open("$tmp/service.pid", "w").write(str(os.getpid()))
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="$tmp/www")
Server(("::", 8000), handler).serve_forever()
EOF
in_node_bg svc python3 "$tmp/service.py" 2>/dev/null &
srv=$!
eventually bash -c "\"$bin\" sandbox exec --name $name svc ss -ltnH | grep -q ':8000'"

# A request to Caddy on edge1 carrying the route's Host header: prints the answer's body.
ask() { in_node edge1 curl -s --max-time 5 -H "Host: app.example.test" http://127.0.0.1/; }
answers() { [[ $(ask) == "$token" ]]; }
silent() { ! answers; }

# The route, with a reload that cannot reach Caddy: the file is written, the apply fails and
# says so, and the reload is owed.
write_cfg "caddy reload --config $tmp/Caddyfile --address 127.0.0.1:1" "$route"
planned=$(in_node edge1 wg-fleet plan 2>&1)
check "plan shows the snippet and the reload after it" \
  grep -qx "~ reload: caddy reload --config $tmp/Caddyfile --address 127.0.0.1:1 (the files in $routes changed)" <<<"$planned"
out=$(in_node edge1 wg-fleet apply 2>&1); rc=$?
check "apply with a failing reload exits 1" test "$rc" = 1
check "and names the reload that failed" grep -q "run \`caddy reload --config $tmp/Caddyfile --address 127.0.0.1:1\`: exited with status 1" <<<"$out"
check "the snippet is written, marked" grep -qx "# Managed by wg-fleet: edits are overwritten." "$routes/app.caddy"
check "caddy adapts the Caddyfile with the snippet" \
  bash -c "HOME=$tmp caddy adapt --config $tmp/Caddyfile 2>/dev/null | grep -q '\"host\":\\[\"app.example.test\"\\]'"
validates() { env HOME="$tmp" XDG_CONFIG_HOME="$tmp" XDG_DATA_HOME="$tmp" caddy validate --config "$tmp/Caddyfile" >/dev/null 2>&1; }
check "caddy validates it" validates
check "Caddy was not reloaded: the route does not answer yet" silent

# With a reload that works, the next apply reloads though the file is already written.
write_cfg "$reload" "$route"
planned=$(in_node edge1 wg-fleet plan 2>&1)
check "the owed reload is planned" grep -qx "~ reload: $reload (the files in $routes changed)" <<<"$planned"
check "apply reloads" in_node edge1 wg-fleet -q apply
check "the route answers with svc's page over the tunnel" eventually answers
check "edge1: a second plan is empty" in_node edge1 wg-fleet -q plan --detailed-exitcode

# The route removed from the YAML: its file goes, Caddy is reloaded, the host no longer answers.
write_cfg "$reload" ""
check "apply without the route" in_node edge1 wg-fleet -q apply
check "the snippet is removed" test ! -e "$routes/app.caddy"
check "the route no longer answers" silent
check "edge1: nothing left to do" in_node edge1 wg-fleet -q plan --detailed-exitcode

check "sandbox down" "$bin" sandbox down --name "$name"
finish
