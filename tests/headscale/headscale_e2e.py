#!/usr/bin/env python3
"""`wg-fleet serve` with a Headscale source, end to end, in a network namespace of its own (root).

A stand-in Headscale server (standin.py, recorded responses) runs in the namespace; serve polls
it, its nodes become peers of a wireguard-go device, /peers and /peer/ID/config answer (the
config only to loopback or the token), /health reports the polls. Failed polls (401, 403, a
timeout, malformed JSON) remove nothing and log one clear line without the API key; a node gone
from Headscale goes only after the grace period; a restart keeps every address and key, and a
one-shot apply with serve stopped changes nothing. Values are checked against independent
sources: `wg show`, `wg pubkey` of the key files, the sequential rule of the sync service.

Usage: headscale_e2e.py WG_FLEET_BINARY STANDIN
"""
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
import serve_e2e as se  # noqa: E402  (its helpers: namespace, requests, checks, wait_for, Serve)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import wgf_netns  # noqa: E402
from serve_e2e import check, request, run, wait_for  # noqa: E402

STANDIN = os.path.realpath(sys.argv[2])
BIN, NS, IFNAME = se.BIN, se.NS, se.IFNAME
FLEET, SUBNET, SERVER_IP, IPV4, POOL, PORT = "hs", "fd00:a0a8:34e:2a00::/64", "fd00:a0a8:34e:2a00::1", "10.13.0.0/16", "10.13.13.0/24", 51831
API_KEY = "hs-api-key-never-in-a-log-7f3a"
TOKEN = "serve-token-for-peer-configs-91c2"
GRACE = 6


def node(id_, name):
    return {"id": id_, "name": name, "givenName": name, "ipAddresses": [f"100.64.0.{id_}", f"fd7a:115c:a1e0::{id_}"],
            "user": {"id": "1", "name": "alice"}, "online": True, "lastSeen": "2026-01-01T00:00:00Z",
            "machineKey": "mkey:00", "nodeKey": "nodekey:00", "forcedTags": [], "registerMethod": "REGISTER_METHOD_CLI"}


RESPONSES = {
    "three": {"status": 200, "body": json.dumps({"nodes": [node("1", "laptop"), node("2", "phone"), node("3", "tablet")]})},
    "unauthorized": {"status": 401, "body": "Unauthorized"},
    "forbidden": {"status": 403, "body": '{"code":7,"message":"permission denied"}'},
    "timeout": {"sleep": 3},
    "malformed": {"status": 200, "body": '{"nodes": [{"id": "1", "name": '},
    "two": {"status": 200, "body": json.dumps({"nodes": [node("1", "laptop"), node("2", "phone")]})},
}


class Standin:
    """standin.py in the namespace (this process entered it): serve reaches it on loopback."""

    def __init__(self, tmp):
        with open(f"{tmp}/responses.json", "w") as f:
            json.dump(RESPONSES, f)
        self.p = subprocess.Popen([sys.executable, STANDIN, API_KEY, f"{tmp}/responses.json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.base = f"http://127.0.0.1:{int(self.p.stdout.readline())}"

    def scenario(self, name):
        urllib.request.urlopen(urllib.request.Request(f"{self.base}/_scenario/{name}", method="POST", data=b""), timeout=5).read()

    def requests(self):
        return json.loads(urllib.request.urlopen(f"{self.base}/_requests", timeout=5).read())["requests"]

    def stop(self):
        self.p.kill()
        self.p.wait()


def write_config(tmp, standin):
    key_file, token_file = f"{tmp}/api-key", f"{tmp}/token"
    for path, text in ((key_file, API_KEY), (token_file, TOKEN)):
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
    path = f"{tmp}/fleet.yaml"
    with open(path + ".new", "w") as f:
        f.write(f"""state_dir: {tmp}/state
hosts_file: {tmp}/hosts
serve:
  token_file: {token_file}
fleets:
  {FLEET}:
    ip6: {SERVER_IP}
    subnet: {SUBNET}
    ipv4: {IPV4}
    external_ip: 192.0.2.1
    port: {PORT}
    interface: {IFNAME}
    headscale:
      url: {standin.base}
      api_key_file: {key_file}
      poll_interval: 1s
      timeout: 1s
      grace: {GRACE}s
      pool: {POOL}
""")
    os.rename(path + ".new", path)
    return path


def get_json(path):
    status, _, body = request("GET", path)
    return status, json.loads(body) if body.strip().startswith("{") else body


def allowed_ips():
    """The device's peers and their allowed IPs, as `wg show` reads them."""
    out = {}
    for line in run("wg", "show", IFNAME, "allowed-ips").stdout.splitlines():
        key, *ips = line.split()
        out[key] = set(ips)
    return out


def node_keys(tmp):
    """Each node's public key, from its private key file (`wg pubkey`)."""
    d = f"{tmp}/state/headscale/{FLEET}"
    out = {}
    for name in sorted(os.listdir(d)):
        with open(f"{d}/{name}") as f:
            out[name.removesuffix(".key")] = se.pubkey(f.read().strip())
    return out


def log_text(tmp):
    with open(f"{tmp}/serve.log") as f:
        return f.read()


def main():
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="wgf-headscale-")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    serve = standin = None
    ok = False
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        wgf_netns.enter(NS)
        standin = Standin(tmp)
        cfg = write_config(tmp, standin)
        serve = se.Serve(cfg, tmp)
        serve = tests(cfg, tmp, serve, standin)
        ok = True
    finally:
        if serve:
            serve.p.kill()
            serve.p.wait()
        if standin:
            standin.stop()
        wgf_netns.remove(NS, [IFNAME])
        if se.failed or not ok:
            try:
                print(log_text(tmp)[-6000:])
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{se.passed} passed, {se.failed} failed")
    sys.exit(1 if se.failed else 0)


def failed_poll(tmp, standin, scenario, cause, before):
    """A failing poll: one clear log line naming the cause, nothing removed, /health says so."""
    standin.scenario(scenario)
    seen = standin.requests()
    check(f"{scenario}: serve polled again", wait_for("a poll", lambda: standin.requests() >= seen + 2))
    lines = [line for line in log_text(tmp).splitlines() if "Headscale poll failed, nothing changed" in line and cause in line]
    check(f"{scenario}: logged as one clear line ({cause!r}), once for the polls that failed the same way", len(lines) == 1,
          log_text(tmp)[-2000:])
    status, health = get_json("/health")
    check(f"{scenario}: /health reports the failure", status == 200 and cause in (health["headscale"][FLEET]["last_error"] or ""),
          health)
    check(f"{scenario}: every peer stays on the device", allowed_ips() == before["device"])
    check(f"{scenario}: /peers unchanged", get_json("/peers") == before["peers"])


def tests(cfg, tmp, serve, standin):
    pool = ipaddress.ip_network(POOL)
    # The sync service's rule: addresses in order from the pool's second one.
    expected = {"1": str(pool[2]), "2": str(pool[3]), "3": str(pool[4])}
    check("the three nodes become peers of the device",
          wait_for("three peers", lambda: len(se.device_peers()) == 3, timeout=15), se.device_peers())
    keys = node_keys(tmp)
    device = allowed_ips()
    check("the device's peers are the nodes' keys (wg pubkey of their key files)", set(device) == set(keys.values()), (device, keys))
    for id_, addr in expected.items():
        check(f"node {id_} is routed at {addr}", f"{addr}/32" in device.get(keys.get(id_), set()), device)
    # Each node has a hosts entry by its name, as a file member has, at its fleet (IPv6) address:
    # the /128 the device routes to it.
    names = {"1": "laptop", "2": "phone", "3": "tablet"}

    def hosts_entries():
        try:
            return {tuple(line.split()[:2]) for line in open(f"{tmp}/hosts") if line.strip() and not line.startswith("#")}
        except FileNotFoundError:
            return set()
    for id_ in expected:
        v6 = [a.split("/")[0] for a in device.get(keys.get(id_), set()) if ":" in a and a.endswith("/128")]
        check(f"node {id_} has the hosts entry {v6} {names[id_]}.{FLEET}",
              len(v6) == 1 and wait_for("its hosts entry", lambda: (v6[0], f"{names[id_]}.{FLEET}") in hosts_entries()),
              sorted(hosts_entries()))

    status, peers = get_json("/peers")
    check("/peers has the sync service's shape", status == 200 and set(peers) == {"processed_nodes", "last_ip"}, peers)
    check("/peers lists every node with its address", peers["processed_nodes"] == expected, peers)
    check("/peers: last_ip is the last address given out", peers["last_ip"] == expected["3"], peers)
    status, health = get_json("/health")
    hs = health.get("headscale", {}).get(FLEET, {}) if isinstance(health, dict) else {}
    check("/health: status ok, the poll state beside it", status == 200 and health["status"] == "ok" and hs.get("nodes") == 3
          and hs.get("last_success") and hs.get("last_error") is None, health)
    status, headers, _ = request("POST", "/peers")
    check("POST /peers: 405 with Allow", status == 405 and headers.get("Allow") == "GET, HEAD", (status, headers))

    # The config carries the node's private key.
    status, _, text = request("GET", "/peer/1/config")
    private = next((line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("PrivateKey")), "")
    check("/peer/1/config from loopback: 200 with the node's private key", status == 200 and se.pubkey(private) == keys["1"], text)
    check("/peer/1/config: the node's address", f"Address = {expected['1']}/32" in text, text)
    server_key = run("wg", "show", IFNAME, "public-key").stdout.strip()
    check("/peer/1/config: the server as its peer", f"PublicKey = {server_key}" in text and f"Endpoint = 192.0.2.1:{PORT}" in text,
          text)
    status, _, body = request("GET", "/peer/1/config", host=SERVER_IP, source=SERVER_IP)
    check("/peer/1/config from a non-loopback address without the token: 403", status == 403 and "PrivateKey" not in body, body)
    status, _, body = request("GET", "/peer/1/config", host=SERVER_IP, source=SERVER_IP, headers={"Authorization": "Bearer wrong"})
    check("/peer/1/config with a wrong token: 403", status == 403, body)
    status, _, body = request("GET", "/peer/1/config", host=SERVER_IP, source=SERVER_IP,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    check("/peer/1/config with the token: 200", status == 200 and f"PrivateKey = {private}" in body, body)
    status, _, body = request("GET", "/peer/999/config")
    check("/peer/999/config (unknown node): 404", status == 404, body)
    status, headers, _ = request("DELETE", "/peer/1/config")
    check("DELETE /peer/1/config: 405 with Allow", status == 405 and headers.get("Allow") == "GET, HEAD", (status, headers))

    # Failed polls change nothing.
    before = {"device": allowed_ips(), "peers": get_json("/peers")}
    mapping_file = f"{tmp}/state/headscale/{FLEET}.json"
    with open(mapping_file) as f:
        mapping_before = f.read()
    failed_poll(tmp, standin, "unauthorized", "rejected the API key (HTTP 401)", before)
    failed_poll(tmp, standin, "forbidden", "rejected the API key (HTTP 403)", before)
    failed_poll(tmp, standin, "timeout", "within the timeout", before)
    failed_poll(tmp, standin, "malformed", "Headscale response", before)
    with open(mapping_file) as f:
        check("failed polls leave the mapping file as it was", f.read() == mapping_before)
    check("the API key is in no log line", API_KEY not in log_text(tmp))
    standin.scenario("three")
    check("a good poll clears the error", wait_for("the error to clear", lambda: get_json("/health")[1]["headscale"][FLEET]
                                                   ["last_error"] is None, timeout=15))
    check("the log says the polls succeed again", wait_for("the recovery line", lambda: "the Headscale poll succeeds again" in log_text(tmp)))

    # Restart: stop serve, a one-shot apply and plan change nothing (the mapping is desired state
    # for every command), serve comes back with every address and key.
    serve.stop()
    r = run(BIN, "-c", cfg, "--node", "server", "apply", check_rc=False)
    check("apply with serve stopped: no operations", r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr)
    r = run(BIN, "-c", cfg, "--node", "server", "plan", "--detailed-exitcode", check_rc=False)
    check("plan --detailed-exitcode with serve stopped: 0", r.returncode == 0, r.stdout + r.stderr)
    check("the device kept every node", allowed_ips() == before["device"])
    serve = se.Serve(cfg, tmp)
    seen = standin.requests()
    check("serve polls again after the restart", wait_for("a poll", lambda: standin.requests() >= seen + 2))
    check("after the restart: the same addresses", get_json("/peers") == before["peers"])
    check("after the restart: the same keys", node_keys(tmp) == keys)
    check("after the restart: the same peers on the device", allowed_ips() == before["device"])

    # A node gone from Headscale stays for the grace period, then goes.
    standin.scenario("two")
    seen = standin.requests()
    check("serve polled without node 3", wait_for("two polls", lambda: standin.requests() >= seen + 2))
    check("node 3 is still a peer within the grace period", keys["3"] in allowed_ips() and "3" in get_json("/peers")[1]
          ["processed_nodes"])
    check("node 3 goes after the grace period", wait_for("node 3 to go", lambda: keys["3"] not in allowed_ips(), timeout=GRACE + 30))
    check("/peers no longer lists node 3", set(get_json("/peers")[1]["processed_nodes"]) == {"1", "2"})
    check("its key file is gone", set(node_keys(tmp)) == {"1", "2"})
    check("the removal is logged", f"Headscale node 3 removed: missing for {GRACE}s" in log_text(tmp), log_text(tmp)[-2000:])
    serve.stop()
    r = run(BIN, "-c", cfg, "--node", "server", "apply", check_rc=False)
    check("apply after the removal: no operations", r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr)
    text = log_text(tmp)
    check("no node's private key is in the log", not any(p in text for p in [private]))
    return None


if __name__ == "__main__":
    main()
