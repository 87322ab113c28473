#!/usr/bin/env python3
"""The Headscale source against a stand-in server (standin.py) over real HTTP on loopback.

usage: check_standin.py HEADSCALE_POLL STANDIN_PY

Polls through the test driver headscale_poll: recorded node lists in both spellings, then every
failure a poll meets (401, 403, a wrong key, a key file others may read, a timeout, malformed
JSON, a wrong shape, HTTP 500, a refused connection, a TLS server whose certificate is not
trusted), each of which must leave the mapping and the
key files byte for byte as they were; the grace period; a restart; a node's config checked with
`wg pubkey`; and seed 000's state file imported. Public keys are checked against `wg pubkey` of
the key files, addresses against the pool counted by hand.
"""

import json
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.request

POLL, STANDIN = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def wg(*args, stdin):
    return subprocess.run(["wg", *args], input=stdin, capture_output=True, text=True, check=True).stdout.strip()


def node(id_, given=None, name=None, snake=False):
    n = {"id": id_, "name": name or f"host{id_}", "user": {"id": "1", "name": "alice"}, "online": True, "machineKey": "mkey:00",
         "nodeKey": "nodekey:00", "forcedTags": [], "registerMethod": "REGISTER_METHOD_AUTH_KEY"}
    ips = ["100.64.0.%s" % id_, "fd7a:115c:a1e0::%s" % id_]
    if snake:
        n.update({"ip_addresses": ips, "last_seen": "2024-05-01T10:00:00Z"})
        if given:
            n["given_name"] = given
    else:
        n.update({"ipAddresses": ips, "lastSeen": "2024-05-01T10:00:00Z"})
        if given:
            n["givenName"] = given
    return n


RESPONSES = {
    "three": {"status": 200, "body": json.dumps({"nodes": [node("1", "laptop"), node("2", "phone"), node("3", name="nas")]})},
    "snake": {"status": 200, "body": json.dumps({"nodes": [node(1, "laptop", snake=True), node(2, "phone", snake=True),
                                                           node(4, "tablet", snake=True)]})},
    "unauthorized": {"status": 401, "body": '{"code":16,"message":"Unauthenticated","details":[]}'},
    "forbidden": {"status": 403, "body": '{"code":7,"message":"PermissionDenied","details":[]}'},
    "slow": {"sleep": 4},
    "malformed": {"status": 200, "body": '{"nodes": [{"id": "1", "givenName": '},
    "wrong_shape": {"status": 200, "body": '{"code":2,"message":"internal error"}'},
    "server_error": {"status": 500, "body": "oops"},
    "legacy": {"status": 200, "body": json.dumps({"nodes": [node("1", "old-laptop"), node("2", "old-phone"), node("3", "new-pc")]})},
}

tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"wgf-headscale-{os.getpid()}-"))
standin = tls_standin = None
try:
    api_key = "hskey-" + os.urandom(12).hex()
    key_file = tmp / "api.key"
    key_file.write_text(api_key + "\n")
    key_file.chmod(0o600)
    (tmp / "responses.json").write_text(json.dumps(RESPONSES))
    standin = subprocess.Popen([sys.executable, STANDIN, api_key, str(tmp / "responses.json")], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    port = int(standin.stdout.readline())
    base = f"http://127.0.0.1:{port}"
    # The same over TLS with a self-signed certificate, which no system trusts.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp / "tls.key"), "-out", str(tmp / "tls.crt")],
                   check=True, capture_output=True)
    tls_standin = subprocess.Popen([sys.executable, STANDIN, api_key, str(tmp / "responses.json"), str(tmp / "tls.crt"),
                                    str(tmp / "tls.key")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    tls_base = f"https://127.0.0.1:{int(tls_standin.stdout.readline())}"

    def scenario(name):
        urllib.request.urlopen(urllib.request.Request(f"{base}/_scenario/{name}", method="POST", data=b""), timeout=5).read()

    def requests():
        return json.loads(urllib.request.urlopen(f"{base}/_requests", timeout=5).read())["requests"]

    server_pub = wg("pubkey", stdin=wg("genkey", stdin=""))
    state = tmp / "state"
    config = tmp / "fleet.yaml"
    config.write_text(f"""state_dir: {state}
fleets:
  hs:
    ip6: fd00:13::1
    subnet: fd00:13::/64
    external_ip: vpn.example.com
    public_key: {server_pub}
    headscale:
      url: {base}
      api_key_file: {key_file}
      timeout: 1s
      grace: 10m
  legacy:
    port: 51821
    external_ip: vpn.example.com
    ip6: fd00:14::1
    subnet: fd00:14::/64
    ipv4: 10.13.0.0/16
    public_key: {server_pub}
    headscale:
      url: {base}/
      api_key_file: {key_file}
      pool: 10.13.13.0/24
  tls:
    port: 51822
    external_ip: vpn.example.com
    ip6: fd00:15::1
    subnet: fd00:15::/64
    public_key: {server_pub}
    headscale:
      url: {tls_base}
      api_key_file: {key_file}
""")
    hsdir = state / "headscale"
    mapping = hsdir / "hs.json"

    def run(*args, fleet="hs"):
        p = subprocess.run([POLL, str(config), fleet, *args], capture_output=True, text=True, timeout=60)
        check(api_key not in p.stdout + p.stderr, f"{' '.join(args)}: the API key is in no output")
        return p

    def private_keys(fleet="hs"):
        return {f.stem: f.read_text().strip() for f in sorted((hsdir / fleet).glob("*.key"))}

    def snapshot(fleet="hs"):
        return (hsdir / f"{fleet}.json").read_bytes(), private_keys(fleet)

    def check_members(out, expected, fleet="hs"):
        """expected: node id -> (name, address); keys checked against wg pubkey of the key files."""
        members = json.loads(out)
        got = {m["node_id"]: (m["name"], m["address"]) for m in members}
        check(got == expected, f"members {got} == {expected}")
        keys = private_keys(fleet)
        for m in members:
            priv = keys.get(m["node_id"])
            check(priv is not None and wg("pubkey", stdin=priv) == m["public_key"],
                  f"node {m['node_id']}: public key is wg pubkey of {fleet}/{m['node_id']}.key")
            f = hsdir / fleet / f"{m['node_id']}.key"
            check(f.exists() and (f.stat().st_mode & 0o777) == 0o600, f"node {m['node_id']}: key file is 0600")
        for priv in keys.values():
            check(priv not in out and priv not in (hsdir / f"{fleet}.json").read_text(), "no private key in the members or the mapping")
        return members

    # 1. Three nodes, camelCase.
    scenario("three")
    p = run("poll", "1000")
    check(p.returncode == 0, f"poll of three nodes succeeds: {p.stderr.strip()}")
    three = {"1": ("laptop", "fd00:13::2"), "2": ("phone", "fd00:13::3"), "3": ("nas", "fd00:13::4")}
    check_members(p.stdout, three)
    check((mapping.stat().st_mode & 0o777) == 0o600, "the mapping file is 0600")
    check("Headscale node 2 added as phone with fd00:13::3" in p.stderr, "additions are logged")
    before = snapshot()

    # 2. Every failure: exit 1, a clear message, nothing changed. NOW is far past the grace
    # period, so a poll that took any failure for an empty list would remove every node.
    def failing(name, message, expect_request=True):
        n0 = requests()
        p = run("poll", "999999")
        check(p.returncode == 1, f"{name}: the poll fails")
        check(message in p.stderr, f"{name}: stderr says {message!r}: {p.stderr.strip()!r}")
        check("nothing changed" in p.stderr, f"{name}: stderr says nothing changed")
        check(snapshot() == before, f"{name}: mapping and key files unchanged")
        check({m["node_id"]: (m["name"], m["address"]) for m in json.loads(p.stdout)} == three, f"{name}: members unchanged")
        check((requests() > n0) == expect_request, f"{name}: the server was {'asked' if expect_request else 'not asked'}")

    for name, message in [
        ("unauthorized", f"Headscale at {base} rejected the API key (HTTP 401)"),
        ("forbidden", f"Headscale at {base} rejected the API key (HTTP 403)"),
        ("slow", f"no complete answer from Headscale at {base} within the timeout of 1s"),
        ("malformed", "Headscale response: not valid JSON"),
        ("wrong_shape", 'Headscale response: expected an object with a "nodes" list'),
        ("server_error", f"Headscale at {base} answered HTTP 500"),
    ]:
        scenario(name)
        failing(name, message)

    scenario("three")
    key_file.write_text("hskey-wrong\n")
    failing("wrong key", f"Headscale at {base} rejected the API key (HTTP 401)")
    key_file.write_text(api_key + "\n")
    key_file.chmod(0o644)
    failing("key file mode 0644", f"headscale api_key_file {key_file} is readable by group or others (mode 0644): chmod 600",
            expect_request=False)
    key_file.chmod(0o600)

    # 3. snake_case and numeric ids: node 3 missing (kept within grace), node 4 new.
    scenario("snake")
    p = run("poll", "2000")
    check(p.returncode == 0, "snake_case poll succeeds")
    four = dict(three, **{"4": ("tablet", "fd00:13::5")})
    check_members(p.stdout, four)
    p = run("poll", "2599")
    check_members(p.stdout, four)
    p = run("poll", "2600")
    del four["3"]
    check_members(p.stdout, four)
    check("Headscale node 3 removed: missing for 10m" in p.stderr, "the removal is logged")
    check(not (hsdir / "hs" / "3.key").exists(), "the removed node's key file is gone")

    # 4. A restart polled with the same list: the same members, the mapping byte for byte.
    after = snapshot()
    p = run("poll", "2700")
    check_members(p.stdout, four)
    check(snapshot() == after, "a restart changes nothing")

    # 5. /peers and /peer/ID/config.
    p = run("peers")
    check(json.loads(p.stdout) == {"processed_nodes": {k: v[1] for k, v in four.items()}, "last_ip": "fd00:13::5"},
          f"peers: {p.stdout.strip()}")
    p = run("config", "2")
    check(p.returncode == 0, "config of node 2")
    conf = {}
    for line in p.stdout.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            conf[k] = v
    check(wg("pubkey", stdin=conf.get("PrivateKey", "")) == json.loads(run("poll", "2700").stdout)[1]["public_key"],
          "the config's PrivateKey is node 2's key")
    check(conf.get("Address") == "fd00:13::3/128" and conf.get("PublicKey") == server_pub and
          conf.get("Endpoint") == "vpn.example.com:51820" and conf.get("AllowedIPs") == "fd00:13::/64", f"config: {conf}")
    strip = tmp / "wgfhs0.conf"
    strip.write_text(p.stdout)
    s = subprocess.run(["wg-quick", "strip", str(strip)], capture_output=True, text=True)
    check(s.returncode == 0 and "PrivateKey" in s.stdout, f"wg-quick strip reads the config: {s.stderr.strip()}")
    p = run("config", "99")
    check(p.returncode == 3, "config of an unknown node: not found")

    # 6. Seed 000's state imported into fleet legacy, then polled: every address kept; the new
    # node follows last_ip.
    (tmp / "sync-service-state.json").write_text(json.dumps(
        {"processed_nodes": {"node_1": "10.13.13.2", "2": "10.13.13.3"}, "last_ip": "10.13.13.3"}))
    p = run("import", str(tmp / "sync-service-state.json"), fleet="legacy")
    check(p.returncode == 0, f"import succeeds: {p.stderr.strip()}")
    check_members(p.stdout, {"1": ("node-1", "10.13.13.2"), "2": ("node-2", "10.13.13.3")}, fleet="legacy")
    scenario("legacy")
    p = run("poll", "3000", fleet="legacy")
    check_members(p.stdout, {"1": ("old-laptop", "10.13.13.2"), "2": ("old-phone", "10.13.13.3"), "3": ("new-pc", "10.13.13.4")},
                  fleet="legacy")
    bad = tmp / "bad-state.json"
    bad.write_text('{"processed_nodes": {"1": "10.13.14.2"}}')
    legacy_before = snapshot("legacy")
    p = run("import", str(bad), fleet="legacy")
    check(p.returncode == 1 and "outside the pool 10.13.13.0/24" in p.stderr, f"an address outside the pool: {p.stderr.strip()}")
    check(snapshot("legacy") == legacy_before, "a refused import changes nothing")

    # 7. TLS with a certificate no one trusts: refused before the request (and the key) goes out.
    p = run("poll", "1000", fleet="tls")
    check(p.returncode == 1 and f"TLS with Headscale at {tls_base} failed" in p.stderr, f"untrusted certificate: {p.stderr.strip()}")
    check(not (hsdir / "tls.json").exists(), "untrusted certificate: no mapping written")
    tls_requests = json.loads(urllib.request.urlopen(f"{tls_base}/_requests", timeout=5, context=ssl._create_unverified_context()).read())
    check(tls_requests.get("requests") == 0, f"untrusted certificate: the server got no request: {tls_requests}")

    # 8. Connection refused: the stand-in is gone.
    standin.kill()
    standin.wait()
    standin = None
    p = run("poll", "999999")
    check(p.returncode == 1 and f"cannot connect to Headscale at {base}" in p.stderr, f"connection refused: {p.stderr.strip()}")
    check(snapshot() == after, "connection refused: mapping and key files unchanged")
finally:
    for proc in (standin, tls_standin):
        if proc:
            proc.kill()
            proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)

print(f"check_standin: {len(failures)} failed" if failures else "check_standin: all passed")
sys.exit(1 if failures else 0)
