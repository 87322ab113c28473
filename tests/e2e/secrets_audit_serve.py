#!/usr/bin/env python3
"""The secrets audit's part for `wg-fleet serve` (run by secrets_audit.sh; root).

serve runs with -v in a namespace of its own, with a bearer token file; clients register with key
pairs serve generates (their private keys, the server device's private key and the token are the
secrets), ping with host names, and every endpoint of REQUESTS is called, good requests and bad.
Then none of these may hold a secret: serve's stdout and stderr (what the journal gets), every
API answer (status line, headers, body) except the EXEMPT ones, every file under state_dir (the
store serve.db included) and SCAN_FILES, and the output of the commands that read the store.
serve.db and the token file must be 0600. Two controls show the search can fail: the exempt
register answers do hold the generated keys, and a planted copy of the token is found.

To cover a new endpoint, add it to REQUESTS (and to EXEMPT only if it is documented to carry a
private key); a new secret file goes into SECRET_FILES, a new state file into SCAN_FILES.

Usage: secrets_audit_serve.py WG_FLEET_BINARY
"""
import http.client
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import wgf_netns  # noqa: E402

BIN = os.path.realpath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
PID = os.getpid()
NS, IFNAME = f"wgfaud{PID}", f"wgau{PID}"
FLEET, SUBNET, SERVER_IP = "au", "fd00:a0d1:7e57:1100::/64", "fd00:a0d1:7e57:1100::1"
GENERATED = 4  # registrations whose key pair serve generates

# Endpoints whose answers may carry a private key, by design; each is checked to do so where it
# exists (so the exemption is not hiding a broken search). (method, path pattern, why)
EXEMPT = [
    ("POST", r"/fleet/[^/]+/register", "a client's config with the private key serve generated for it (register response)"),
    ("GET", r"/peer/[^/]+/config", "a Headscale node's wg-quick config (answers on loopback or with the token only)"),
]

# Every request the audit makes, in order: (name, method, path, body, headers, source address).
# "{token}" in a header is the real token; AUTH is the header every mutating request carries.
AUTH = {"Authorization": "Bearer {token}"}
AGENT = {"X-Agent-Token": "{agent_token}"}
AGENT_ROUTE = {"route_id": "audit", "hostname": "audit.example.com", "target_url": "http://10.0.0.5:8080"}
AGENT_FORWARD = {"forward_id": "audit-ssh", "public_port": 22015, "target_ip": "fd00:a0d1:7e57:1100::99", "target_port": 22, "proto": "tcp"}
CLIENT = "{client}"  # a source address: the next registered client's address
REQUESTS = (
    [(f"register-generated-{i}", "POST", f"/fleet/{FLEET}/register", None, AUTH, None) for i in range(GENERATED)]
    + [
        ("register-own-key", "POST", f"/fleet/{FLEET}/register", "{own_key}", AUTH, None),
        ("register-without-token", "POST", f"/fleet/{FLEET}/register", None, {}, None),
        ("register-wrong-token", "POST", f"/fleet/{FLEET}/register", None, {"Authorization": "Bearer not-the-token-at-all"}, None),
        ("register-bad-json", "POST", f"/fleet/{FLEET}/register", "{nope", AUTH, None),
        ("register-bad-key", "POST", f"/fleet/{FLEET}/register", '{"public_key": "xyz"}', AUTH, None),
        ("register-too-large", "POST", f"/fleet/{FLEET}/register", "x" * (128 * 1024), AUTH, None),
        ("register-unknown-fleet", "POST", "/fleet/nosuch/register", None, AUTH, None),
        ("register-get", "GET", f"/fleet/{FLEET}/register", None, AUTH, None),
    ]
    + [(f"ping-{i}", "POST", f"/fleet/{FLEET}/ping", json.dumps({"hostname": "excavator"}), AUTH, CLIENT) for i in range(GENERATED)]
    + [
        ("ping-bad-name", "POST", f"/fleet/{FLEET}/ping", json.dumps({"hostname": "Bad.Name"}), AUTH, CLIENT),
        ("ping-outside", "POST", f"/fleet/{FLEET}/ping", "{}", AUTH, None),
        ("ping-without-token", "POST", f"/fleet/{FLEET}/ping", "{}", {}, CLIENT),
        ("index", "GET", "/", None, {}, None),
        ("index-json", "GET", "/?format=json", None, {}, None),
        ("fleet", "GET", f"/fleet/{FLEET}", None, {}, None),
        ("fleet-json", "GET", f"/fleet/{FLEET}?format=json", None, {}, None),
        ("fleet-unknown", "GET", "/fleet/nosuch", None, {}, None),
        ("health", "GET", "/health", None, {}, None),
        ("delete-index", "DELETE", "/", None, AUTH, None),
        ("unknown-path", "GET", "/nothing/here", None, {}, None),
        # The Headscale source's read side and the edge agent's API, where serve answers them.
        ("headscale-peers", "GET", "/peers", None, {}, None),
        ("headscale-peer-config", "GET", "/peer/1/config", None, AUTH, None),
        ("agent-route-add", "POST", "/http/routes", json.dumps(AGENT_ROUTE), AGENT, None),
        ("agent-forward-add", "POST", "/tcp/forwards", json.dumps(AGENT_FORWARD), AGENT, None),
        ("agent-forward-unreachable", "POST", "/tcp/forwards", json.dumps({**AGENT_FORWARD, "target_ip": "203.0.113.9"}), AGENT, None),
        ("agent-without-token", "POST", "/http/routes", json.dumps(AGENT_ROUTE), {}, None),
        ("agent-wrong-token", "GET", "/http/routes", None, {"X-Agent-Token": "{token}"}, None),
        ("agent-routes", "GET", "/http/routes", None, AGENT, None),
        ("agent-forwards", "GET", "/tcp/forwards", None, AGENT, None),
        ("agent-forward-delete", "DELETE", f"/tcp/forwards/{AGENT_FORWARD['forward_id']}", None, AGENT, None),
    ]
)

# Files, besides every file under state_dir and the captured outputs, that must hold no secret.
SCAN_FILES = ["{tmp}/hosts", "{tmp}/fleet.d", "{tmp}/traefik"]
# Secret files (other than private keys) whose content must appear nowhere; all must be 0600.
SECRET_FILES = ["{tmp}/token", "{tmp}/agent.token", "{tmp}/headscale.key"]
# Commands that read the store, run once serve has clients (their stdout and stderr are searched).
COMMANDS = [["status", "-v"], ["status", "--json"], ["plan", "-v", "--json"], ["addresses", "--json"], ["render", "hosts"],
            ["check", "-v"]]

passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   serve: {what}")
    else:
        failed += 1
        print(f"FAIL serve: {what} {detail}")


def exempt(method, path):
    return next((why for m, pattern, why in EXEMPT if m == method and re.fullmatch(pattern, path.split("?")[0])), None)


def request(method, path, body, headers, source):
    host = SERVER_IP if source else "127.0.0.1"
    conn = http.client.HTTPConnection(host, 8000, timeout=30, source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        head = f"HTTP {r.status} {r.reason}\n" + "".join(f"{k}: {v}\n" for k, v in r.getheaders())
        return r.status, head, r.read()
    except (OSError, http.client.HTTPException) as e:  # a connection the server closed early (413)
        return 0, f"error {e!r}\n", b""
    finally:
        conn.close()


def wait_for(pred, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def main():
    tmp = tempfile.mkdtemp(prefix="wgf-audit-serve-")
    out, keys, exempt_dir = f"{tmp}/out", f"{tmp}/keys", f"{tmp}/exempt"
    for d in (out, keys, exempt_dir):
        os.mkdir(d, 0o700)
    token_path = f"{tmp}/token"
    secrets = {}
    for name in ("token", "agent.token", "headscale.key"):
        fd = os.open(f"{tmp}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        secrets[name] = os.urandom(24).hex()
        os.write(fd, (secrets[name] + "\n").encode())
        os.close(fd)
    token = secrets["token"]
    cfg = f"{tmp}/fleet.yaml"
    with open(cfg, "w") as f:
        # The Headscale server is a loopback port nothing listens on: every poll sends the API key
        # and fails, and its log lines are searched too.
        f.write(f"state_dir: {tmp}/state\nhosts_file: {tmp}/hosts\ndomain: audit.internal\nhttp_routes_dir: {tmp}/traefik\n"
                f"serve:\n  token_file: {token_path}\n  agent_token_file: {tmp}/agent.token\n"
                f"fleets:\n  {FLEET}:\n    ip6: {SERVER_IP}\n    subnet: {SUBNET}\n    external_ip: 192.0.2.1\n    port: 51832\n"
                f"    interface: {IFNAME}\n"
                f"    headscale:\n      url: http://127.0.0.1:9\n      api_key_file: {tmp}/headscale.key\n"
                f"      poll_interval: 1s\n      timeout: 1s\n")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    serve = None
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        wgf_netns.enter(NS)
        with open(f"{out}/serve.stdout", "w") as so, open(f"{out}/serve.stderr", "w") as se:
            serve = subprocess.Popen([BIN, "-v", "-c", cfg, "--node", "server", "serve", "--interval", "1"], stdout=so, stderr=se)
            check("serve answers", wait_for(lambda: request("GET", "/?format=json", None, {}, None)[0] == 200))
            audit(tmp, out, keys, exempt_dir, secrets)
            # A reload and a few ticks, so the loop's own log lines are in too.
            serve.send_signal(signal.SIGHUP)
            time.sleep(2.5)
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
            serve = None
        for i, args in enumerate(COMMANDS):
            r = subprocess.run([BIN, "-c", cfg, "--node", "server", *args], capture_output=True)
            open(f"{out}/command-{i}.out", "wb").write(r.stdout + b"\n" + r.stderr)
        log = open(f"{out}/serve.stderr").read()
        check("serve's log (-v) has the registrations and the loop's runs to search",
              log.count("registered ") >= GENERATED and "timing:" in log and "SIGHUP" in log)
        check("serve's log has the failed Headscale polls (each sent the API key)", "headscale" in log.lower() and "127.0.0.1:9" in log)
        modes(tmp, token_path)
        search(tmp, out, keys, exempt_dir, token_path)
    finally:
        if serve:
            serve.kill()
            serve.wait()
        wgf_netns.remove(NS, [IFNAME])
        if failed:
            print(open(f"{out}/serve.stderr").read()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"serve part: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def audit(tmp, out, keys, exempt_dir, secrets):
    own_priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    own_pub = subprocess.run(["wg", "pubkey"], input=own_priv + "\n", capture_output=True, text=True, check=True).stdout.strip()
    open(f"{keys}/own-client.key", "w").write(own_priv + "\n")
    addresses, generated, exempt_seen, pings, statuses = [], 0, [], 0, {}
    for name, method, path, body, headers, source in REQUESTS:
        if source == CLIENT:
            if not addresses:
                check(f"{name}: a registered client to ping from", False)
                continue
            source = addresses[pings % len(addresses)]
            pings += 1
        if body == "{own_key}":
            body = json.dumps({"public_key": own_pub})
        headers = {k: v.replace("{token}", secrets["token"]).replace("{agent_token}", secrets["agent.token"]) for k, v in headers.items()}
        status, head, data = request(method, path, body, headers, source)
        statuses[name] = status
        # Only a successful answer is exempt: an error answer of the same endpoint is searched.
        why = exempt(method, path) if status == 200 else None
        target = f"{exempt_dir if why else out}/{name}.answer"
        open(target, "wb").write(head.encode() + b"\n" + data)
        if why:
            exempt_seen.append((name, status))
        if method == "POST" and path.endswith("/register") and status == 200:
            config = json.loads(data)["config"]
            addr = re.search(r"^Address = ([^/]+)/", config, re.M).group(1)
            subprocess.run(["ip", "address", "add", f"{addr}/128", "dev", "lo", "nodad"], check=True)
            addresses.append(addr)
            m = re.search(r"^PrivateKey = ([A-Za-z0-9+/]{43}=)$", config, re.M)
            if m:
                generated += 1
                open(f"{keys}/generated-{generated}.key", "w").write(m.group(1) + "\n")
    agent = {n: statuses.get(n) for n in ("agent-route-add", "agent-forward-add", "agent-without-token", "agent-forward-unreachable")}
    check("the agent's changes were taken (200), refused without its token (401) and when invalid (400/422)",
          agent["agent-route-add"] == 200 and agent["agent-forward-add"] == 200 and agent["agent-without-token"] == 401
          and agent["agent-forward-unreachable"] in (400, 422), agent)
    check(f"{GENERATED} registrations with a generated key pair, their private keys in the (exempt) answers",
          generated == GENERATED, f"got {generated}")
    check("exempt (not searched): " + ", ".join(n for n, _ in exempt_seen), bool(exempt_seen))
    # The hosts file and the dashboard get the names once the loop ran.
    wait_for(lambda: os.path.exists(f"{tmp}/hosts") and "excavator" in open(f"{tmp}/hosts").read())
    private = subprocess.run(["wg", "show", IFNAME, "private-key"], capture_output=True, text=True).stdout.strip()
    check("the server device's private key (wg show) is one of the secrets", len(private) == 44)
    open(f"{keys}/server-device.key", "w").write(private + "\n")


def modes(tmp, token_path):
    db = f"{tmp}/state/serve.db"
    check("serve.db exists and is 0600", os.path.exists(db) and stat.S_IMODE(os.stat(db).st_mode) == 0o600)
    for s in SECRET_FILES:
        path = s.format(tmp=tmp)
        check(f"{os.path.basename(path)} is 0600", stat.S_IMODE(os.stat(path).st_mode) == 0o600)
    loose = [os.path.join(r, n) for r, _, names in os.walk(f"{tmp}/state") for n in names
             if n.startswith("serve") and mode_of(os.path.join(r, n)) & 0o077]
    check("no file of serve's store is readable by others", not loose, loose)


def mode_of(path):
    """A file's permission bits, or 0 when it was renamed away after the listing."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0


def search(tmp, out, keys, exempt_dir, token_path):
    key_files = sorted(f"{keys}/{n}" for n in os.listdir(keys))
    secrets = [s.format(tmp=tmp) for s in SECRET_FILES]
    args = [sys.executable, f"{HERE}/secrets_search.py"] + [x for k in key_files for x in ("--key", k)] + \
        [x for s in secrets for x in ("--secret", s)]
    targets = [out, f"{tmp}/state"] + [f.format(tmp=tmp) for f in SCAN_FILES]
    r = subprocess.run(args + targets, capture_output=True, text=True)
    print("     " + r.stdout.strip().replace("\n", "\n     "))
    check("no private key and no token in serve's output, the store, the state files, the dashboard or any non-exempt answer",
          r.returncode == 0 and "searched" in r.stdout)
    # Controls: the exempt register answers hold the generated keys; a planted token is found.
    r = subprocess.run(args + [exempt_dir], capture_output=True, text=True)
    check("control: the search finds the generated keys in the exempt register answers",
          r.returncode == 1 and r.stdout.count("LEAK") >= GENERATED, r.stdout)
    planted = f"{tmp}/planted"
    open(planted, "w").write("Authorization: Bearer " + open(token_path).read().strip() + "\n")
    r = subprocess.run(args + [planted], capture_output=True, text=True)
    check("control: the search finds a planted copy of the token", r.returncode == 1, r.stdout)


if __name__ == "__main__":
    main()
