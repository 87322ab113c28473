#!/usr/bin/env python3
"""The edge agent API of `wg-fleet serve` over real HTTP on loopback, in a namespace of its own
(root; wireguard-go device), with serve_e2e.py's harness.

serve is the gateway of a fleet with one peer. Routes and forwards round-trip (POST, GET lists
it, the drop-in holds it, DELETE removes it), and each accepted change reaches what the one
reconcile loop makes: the DNAT rule in the `inet wg-fleet` table of serve's namespace (read with
`nft -j`) and the Traefik file in http_routes_dir (parsed as YAML), both gone again after the
DELETE. A forward to an address outside every prefix the gateway reaches is refused with the
diagnostic and changes nothing. Access: without a token only loopback peers are answered, and a
listener off loopback is warned about; with serve: agent_token_file: every endpoint needs
X-Agent-Token, and the token is in no log line. Expected values come from the requests sent and
the YAML, never from serve's own answers.

Usage: agent_e2e.py WG_FLEET_BINARY
"""
import json
import os
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import serve_e2e as h  # noqa: E402  (reads the binary from sys.argv[1])

check, request, wait_for, run = h.check, h.request, h.wait_for, h.run
# An address of the namespace's own that is not loopback: requests from it are not local.
OFF_LOOPBACK = "192.0.2.50"
TOKEN = "agent-token-not-in-any-log"

ROUTE = {"route_id": "vm-123", "hostname": "vm-123.service.com", "target_url": "http://10.50.0.123:8080",
         "entrypoint": "websecure", "certresolver": "dnsresolver"}
FORWARD = {"forward_id": "vm-123-ssh", "public_port": 22015, "target_ip": "10.50.0.123", "target_port": 32215, "proto": "tcp"}


def write_config(tmp, token_file=None):
    peer_key = subprocess.run(["wg", "pubkey"], input=subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout,
                              capture_output=True, text=True, check=True).stdout.strip()
    serve = f"  agent_token_file: {token_file}\n" if token_file else ""
    path = f"{tmp}/fleet.yaml"
    with open(path + ".new", "w") as f:
        f.write(f"""state_dir: {tmp}/state
hosts_file: {tmp}/hosts
http_routes_dir: {tmp}/traefik
serve:
  listen: ["127.0.0.1:8000", "{OFF_LOOPBACK}:8000"]
{serve}fleets:
  edge:
    ipv4: 10.50.0.0/24
    port: 51831
    interface: {h.IFNAME}
    controllers:
      server: {{ endpoint: 192.0.2.1, ipv4: 10.50.0.1 }}
    peers:
      vm-123: {{ public_key: {peer_key}, ipv4: 10.50.0.123 }}
""")
    os.rename(path + ".new", path)
    return path


def post(path, body, token=None, host="127.0.0.1", source=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Agent-Token"] = token
    return request("POST", path, json.dumps(body) if isinstance(body, dict) else body, source=source, host=host, headers=headers)


def call(method, path, token=None, host="127.0.0.1", source=None):
    return request(method, path, source=source, host=host, headers={"X-Agent-Token": token} if token is not None else None)


def dnat_rules():
    """(dport, address, port) of every forward in serve's `inet wg-fleet` table (the elements of
    its DNAT maps), from nft's JSON."""
    r = run("nft", "-j", "list", "table", "inet", "wg-fleet", check_rc=False)
    if r.returncode != 0:
        return set()
    out = set()
    for item in json.loads(r.stdout)["nftables"]:
        m = item.get("map")
        if not m or m.get("name") not in ("fwd4", "fwd6"):
            continue
        for key, value in m.get("elem", []):
            key = key.get("elem", {}).get("val", key)
            _proto, dport = key["concat"]
            addr, port = value["concat"]
            out.add((dport, addr, port))
    return out


def nudged_loads(tmp):
    """How many loads serve's loop made on a nudge of its API."""
    with open(f"{tmp}/serve.log") as f:
        return f.read().count(" (store changed)")


def dropin(tmp):
    try:
        with open(f"{tmp}/fleet.d/50-agent.yaml") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_traefik(tmp):
    path = f"{tmp}/traefik/{ROUTE['route_id']}.yml"
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return yaml.safe_load(f)


def without_token(tmp):
    cfg = write_config(tmp)
    run("ip", "address", "add", f"{OFF_LOOPBACK}/32", "dev", "lo")
    serve = h.Serve(cfg, tmp)
    log = open(f"{tmp}/serve.log").read()
    check("a listener off loopback without an agent token is warned about",
          f"listening on {OFF_LOOPBACK}:8000 without an agent token" in log, log[-2000:])
    status, _, body = call("GET", "/health")
    check("GET /health: 200", status == 200, body)

    # A route: POST, GET, the drop-in, the Traefik file the loop writes.
    status, _, body = post("/http/routes", ROUTE)
    check("POST /http/routes: 200 ok with the route_id", status == 200 and json.loads(body).get("ok") is True
          and json.loads(body).get("route_id") == ROUTE["route_id"], body)
    status, _, body = call("GET", "/http/routes")
    check("GET /http/routes lists the route as posted", status == 200 and json.loads(body)["routes"] == {ROUTE["route_id"]: ROUTE}, body)
    d = yaml.safe_load(dropin(tmp) or "") or {}
    check("the drop-in holds the route on this node",
          [(r["name"], r["node"], r["host"], r["to"]) for r in d.get("http_routes", [])]
          == [(ROUTE["route_id"], "server", ROUTE["hostname"], ROUTE["target_url"])], d)
    check("the loop writes the route's Traefik file", wait_for("the Traefik file", lambda: read_traefik(tmp) is not None))
    t = read_traefik(tmp) or {}
    routers = t.get("http", {}).get("routers", {})
    services = t.get("http", {}).get("services", {})
    urls = [s["url"] for svc in services.values() for s in svc.get("loadBalancer", {}).get("servers", [])]
    check("the Traefik file routes the host name to the target URL",
          any(f"Host(`{ROUTE['hostname']}`)" in r.get("rule", "") for r in routers.values()) and urls == [ROUTE["target_url"]], t)

    # A forward: POST, GET, the drop-in, the DNAT rule in the kernel.
    want = (FORWARD["public_port"], FORWARD["target_ip"], FORWARD["target_port"])
    check("no DNAT rule before the forward", want not in dnat_rules(), dnat_rules())
    nudged = nudged_loads(tmp)
    status, _, body = post("/tcp/forwards", FORWARD)
    check("POST /tcp/forwards: 200 ok with the forward_id", status == 200 and json.loads(body).get("forward_id") == FORWARD["forward_id"], body)
    status, _, body = call("GET", "/tcp/forwards")
    check("GET /tcp/forwards lists the forward as posted",
          status == 200 and json.loads(body)["forwards"] == {FORWARD["forward_id"]: FORWARD}, body)
    d = yaml.safe_load(dropin(tmp) or "") or {}
    check("the drop-in holds the forward",
          [(f["name"], f["port"], f["to"], f["to_port"]) for f in d.get("forwards", [])]
          == [(FORWARD["forward_id"], FORWARD["public_port"], FORWARD["target_ip"], FORWARD["target_port"])], d)
    check("the loop puts the DNAT rule into the inet wg-fleet table",
          wait_for("the DNAT rule", lambda: want in dnat_rules()), dnat_rules())
    # The drop-in's directory is watched too, but the API does not leave it to that: it nudges.
    check("the accepted change nudged the loop (a load for the API's change in serve's log)",
          wait_for("the nudged load", lambda: nudged_loads(tmp) > nudged))

    # Refused: a target outside every prefix the gateway reaches; nothing changes.
    before, rules_before = dropin(tmp), dnat_rules()
    status, _, body = post("/tcp/forwards", dict(FORWARD, forward_id="elsewhere", public_port=22016, target_ip="10.60.0.12"))
    detail = json.loads(body).get("detail", "")
    check("a forward to 10.60.0.12 (outside every reachable prefix): 400 with the diagnostic",
          status == 400 and "'10.60.0.12' — not reachable from 'server' over its fleets (reachable: 10.50.0.0/24" in detail, body)
    for what, method, path, body, code in [
        ("malformed JSON: 422", "POST", "/tcp/forwards", "{nope", 422),
        ("a body without public_port: 422", "POST", "/tcp/forwards", '{"forward_id": "x", "target_ip": "10.50.0.123"}', 422),
        ("DELETE of an unknown forward: 404", "DELETE", "/tcp/forwards/nosuch", None, 404),
        ("DELETE of an unknown route: 404", "DELETE", "/http/routes/nosuch", None, 404),
    ]:
        status, _, text = request(method, path, body)
        check(what, status == code, f"got {status}: {text[:200]}")
    status, headers, _ = call("PUT", "/tcp/forwards")
    check("PUT /tcp/forwards: 405 with Allow", status == 405 and headers.get("Allow") == "GET, HEAD, POST", headers)
    status, headers, _ = call("GET", "/http/routes/vm-123")
    check("GET /http/routes/ID: 405 with Allow: DELETE", status == 405 and headers.get("Allow") == "DELETE", headers)
    # Off loopback, without a token: refused, even for reading.
    status, _, _ = post("/tcp/forwards", dict(FORWARD, forward_id="remote", public_port=22017), host=OFF_LOOPBACK, source=OFF_LOOPBACK)
    check("a POST from a peer off loopback without a token configured: 403", status == 403)
    check("a GET from a peer off loopback without a token configured: 403",
          call("GET", "/tcp/forwards", host=OFF_LOOPBACK, source=OFF_LOOPBACK)[0] == 403)
    check("the refused requests left the drop-in as it was", dropin(tmp) == before)
    check("the table is as it was", dnat_rules() == rules_before, dnat_rules())

    # DELETE: gone from the list, the drop-in, the table and Traefik's directory.
    status, _, body = call("DELETE", f"/tcp/forwards/{FORWARD['forward_id']}")
    check("DELETE /tcp/forwards/ID: 200", status == 200 and json.loads(body).get("deleted") is True, body)
    check("GET no longer lists it", json.loads(call("GET", "/tcp/forwards")[2])["forwards"] == {})
    check("the loop removes the DNAT rule", wait_for("the DNAT rule to go", lambda: want not in dnat_rules()), dnat_rules())
    # The loop has run since the refused requests: none of them reached the table.
    check("no refused forward is in the table", not any(r[1] == "10.60.0.12" or r[0] in (22016, 22017) for r in dnat_rules()),
          dnat_rules())
    status, _, body = call("DELETE", f"/http/routes/{ROUTE['route_id']}")
    check("DELETE /http/routes/ID: 200", status == 200, body)
    d = yaml.safe_load(dropin(tmp) or "") or {}
    check("the drop-in holds neither", not d.get("http_routes") and not d.get("forwards"), d)
    check("the loop removes the Traefik file", wait_for("the Traefik file to go", lambda: read_traefik(tmp) is None))
    serve.stop()


def with_token(tmp):
    token_file = f"{tmp}/agent.token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)
    os.chmod(token_file, 0o644)
    cfg = write_config(tmp, token_file)
    r = run(h.BIN, "-c", cfg, "--node", "server", "serve", check_rc=False)
    out = r.stdout + r.stderr
    check("an agent token file of mode 0644 is refused (exit 1, naming it and its mode)",
          r.returncode == 1 and f"{token_file}: the token file is mode 0644" in out, out)
    check("the refusal does not show the token", TOKEN not in out)
    os.chmod(token_file, 0o600)
    serve = h.Serve(cfg, tmp)
    for what, token in [("no X-Agent-Token", None), ("a wrong X-Agent-Token", TOKEN[:-1] + "X"), ("a prefix of it", TOKEN[:-1])]:
        status, _, _ = post("/tcp/forwards", FORWARD, token=token)
        check(f"with a token configured, a POST with {what}: 401", status == 401)
        check(f"with a token configured, a GET with {what}: 401", call("GET", "/tcp/forwards", token=token)[0] == 401)
    check("nothing was written", not (yaml.safe_load(dropin(tmp) or "") or {}).get("forwards"))
    status, _, body = post("/tcp/forwards", FORWARD, token=TOKEN, host=OFF_LOOPBACK, source=OFF_LOOPBACK)
    check("with the right token, from off loopback too: 200", status == 200, body)
    want = (FORWARD["public_port"], FORWARD["target_ip"], FORWARD["target_port"])
    check("and the DNAT rule comes", wait_for("the DNAT rule", lambda: want in dnat_rules()), dnat_rules())
    status, _, _ = call("DELETE", f"/tcp/forwards/{FORWARD['forward_id']}", token=TOKEN)
    check("DELETE with the token: 200", status == 200)
    check("and the DNAT rule goes", wait_for("the DNAT rule to go", lambda: want not in dnat_rules()), dnat_rules())
    serve.stop()
    check("the token is in no line of serve's log", TOKEN not in open(f"{tmp}/serve.log").read())


def main():
    def body(tmp):
        without_token(tmp)
        with_token(tmp)

    h.in_namespace(body)


if __name__ == "__main__":
    main()
