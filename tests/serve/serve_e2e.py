#!/usr/bin/env python3
"""`wg-fleet serve` over real HTTP on loopback, in a network namespace of its own (root).

Registration (a generated key, and a client's own public key), pings from inside and outside the
subnet, host name numbering, bad input and the error codes, the dashboard (parsed strictly as
HTML5 by html5lib), a restart that keeps every client and address with a one-shot apply that
changes nothing in between, 200 registrations from 8 parallel clients, and pruning. Every value
is checked against an independent source: the YAML, `wg show`, `wg pubkey`, the hosts file.

Usage: serve_e2e.py WG_FLEET_BINARY
"""
import concurrent.futures
import http.client
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import shutil

import html5lib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import wgf_netns  # noqa: E402

BIN = os.path.realpath(sys.argv[1])
NS = f"wgfserve{os.getpid()}"
FLEET, SUBNET, SERVER_IP, PORT = "se", "fd00:a0a8:34d:2a00::/64", "fd00:a0a8:34d:2a00::1", 51830
DOMAIN = "example.internal"
# wireguard-go's UAPI sockets (/var/run/wireguard) are shared by every namespace: a name per run.
IFNAME = f"wgsv{os.getpid()}"

passed = failed = 0
# Every serve started, stopped at the end even when a check raised.
started = []


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what} {detail}")


def run(*args, check_rc=True):
    r = subprocess.run(["ip", "netns", "exec", NS, *args], capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{args}: rc {r.returncode}: {r.stderr}")
    return r


def request(method, path, body=None, source=None, host="127.0.0.1", headers=None):
    """One request from inside the namespace (this process entered it), from `source` if given."""
    conn = http.client.HTTPConnection(host, 8000, timeout=30, source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def clients():
    status, _, body = request("GET", f"/fleet/{FLEET}?format=json")
    assert status == 200, body
    return json.loads(body)["clients"]


def device_peers():
    out = run("wg", "show", IFNAME, "peers", check_rc=False).stdout.split()
    return set(out)


def wait_for(what, pred, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    print(f"     (gave up waiting for {what})")
    return False


def pubkey(private):
    return subprocess.run(["wg", "pubkey"], input=private + "\n", capture_output=True, text=True, check=True).stdout.strip()


def write_config(tmp, prune="1h"):
    # Written to a temporary name and renamed into place: serve loads a renamed file at once.
    path = f"{tmp}/fleet.yaml"
    with open(path + ".new", "w") as f:
        f.write(f"""state_dir: {tmp}/state
hosts_file: {tmp}/hosts
domain: {DOMAIN}
prune_timeout: {prune}
fleets:
  {FLEET}:
    ip6: {SERVER_IP}
    subnet: {SUBNET}
    external_ip: 192.0.2.1
    port: {PORT}
    interface: {IFNAME}
""")
    os.rename(path + ".new", path)
    return path


class Serve:
    def __init__(self, cfg, tmp):
        self.log = open(f"{tmp}/serve.log", "a")
        self.p = subprocess.Popen(["ip", "netns", "exec", NS, BIN, "-c", cfg, "--node", "server", "serve", "--interval", "1"],
                                  stdout=self.log, stderr=self.log)
        started.append(self)
        ok = wait_for("serve to answer", lambda: self.ready())
        if not ok:
            raise RuntimeError("serve did not start")

    def ready(self):
        try:
            return request("GET", "/?format=json")[0] == 200
        except OSError:
            return False

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=60)
        self.log.close()


def token_mode(tmp):
    # A token file others may read is refused before anything starts, naming the file only.
    token = f"{tmp}/token"
    with open(token, "w") as f:
        f.write("not-shown-anywhere\n")
    os.chmod(token, 0o644)
    cfg = f"{tmp}/token.yaml"
    with open(cfg, "w") as f:
        f.write(f"state_dir: {tmp}/state-token\nserve:\n  token_file: {token}\nfleets:\n  {FLEET}:\n    ip6: {SERVER_IP}\n"
                f"    subnet: {SUBNET}\n    interface: {IFNAME}\n")
    r = run(BIN, "-c", cfg, "--node", "server", "serve", check_rc=False)
    out = r.stdout + r.stderr
    check("a token file of mode 0644 is refused (exit 1, naming it and its mode)", r.returncode == 1 and f"{token}: the token file is mode 0644" in out, out)
    check("the refusal does not show the token", "not-shown-anywhere" not in out)


def in_namespace(body):
    """Runs body(tmp) in a namespace of its own (this process enters it), with a temporary
    directory; removes both and every process in the namespace, then exits with the checks' verdict."""
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="wgf-serve-")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    ok = False
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        # This process's sockets open in the namespace from here on.
        wgf_netns.enter(NS)
        body(tmp)
        ok = True
    finally:
        for serve in started:
            if serve.p.poll() is None:
                serve.p.kill()
                serve.p.wait()
        wgf_netns.remove(NS, [IFNAME])
        if (failed or not ok) and os.path.exists(f"{tmp}/serve.log"):
            with open(f"{tmp}/serve.log") as f:
                print(f.read()[-6000:])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def read_if_there(path):
    """A file's bytes, or none when it went away after the listing: serve's loop writes its
    records atomically (a temporary name, then rename), so a name listed a moment ago may be gone."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def main():
    def body(tmp):
        token_mode(tmp)
        cfg = write_config(tmp)
        tests(cfg, tmp, Serve(cfg, tmp))

    in_namespace(body)


def tests(cfg, tmp, serve):
    subnet = ipaddress.ip_network(SUBNET)
    server_key = run("wg", "show", IFNAME, "public-key").stdout.strip()

    # Registration with a key pair serve generates.
    status, _, body = request("POST", f"/fleet/{FLEET}/register")
    check("register without a body: 200", status == 200, body)
    r = json.loads(body)
    conf = dict(line.split(" = ", 1) for line in r["config"].splitlines() if " = " in line)
    check("register: status success, the fleet's port and server address (the YAML's)",
          r["status"] == "success" and r["port"] == PORT and r["server_ip"] == SERVER_IP, body)
    a_addr = conf["Address"].split("/")[0]
    check("register: an address in the subnet, not the server's", ipaddress.ip_address(a_addr) in subnet and a_addr != SERVER_IP)
    check("register: the config's peer is the server's device key (wg show)", conf.get("PublicKey") == server_key)
    check("register: endpoint and allowed IPs", conf.get("Endpoint") == f"192.0.2.1:{PORT}" and conf.get("AllowedIPs") == SUBNET)
    a_key = pubkey(conf["PrivateKey"])
    check("register: the client is a peer on the device", wait_for("the peer", lambda: a_key in device_peers()))
    # The generated private key is in the response only: not in any file of state_dir (the
    # store included), not in serve's log.
    leaked = [name for name in os.listdir(f"{tmp}/state") if conf["PrivateKey"].encode() in read_if_there(f"{tmp}/state/{name}")]
    check("the generated private key is in no file of state_dir and not in the log",
          not leaked and conf["PrivateKey"] not in open(f"{tmp}/serve.log").read(), leaked)

    # Registration with the client's own public key: no private key in the answer.
    b_priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout.strip()
    b_key = pubkey(b_priv)
    status, _, body = request("POST", f"/fleet/{FLEET}/register", json.dumps({"public_key": b_key}))
    r = json.loads(body)
    conf_b = dict(line.split(" = ", 1) for line in r["config"].splitlines() if " = " in line)
    b_addr = conf_b["Address"].split("/")[0]
    check("register with public_key: 200, a placeholder for the private key",
          status == 200 and conf_b["PrivateKey"].startswith("<") and b_priv not in body, body)
    check("register with public_key: a different address", b_addr != a_addr)
    check("register with public_key: a peer on the device", wait_for("the peer", lambda: b_key in device_peers()))
    status, _, body = request("POST", f"/fleet/{FLEET}/register", json.dumps({"public_key": b_key}))
    check("registering a key again keeps its address", status == 200 and f"Address = {b_addr}/" in json.loads(body)["config"])

    # Pings: from outside the subnet, from inside by an unregistered address, from the clients.
    status, _, _ = request("POST", f"/fleet/{FLEET}/ping", "{}")
    check("ping from 127.0.0.1 (outside the subnet): 403", status == 403)
    status, _, _ = request("POST", f"/fleet/{FLEET}/ping", "{}", source=SERVER_IP, host=SERVER_IP)
    check("ping from inside the subnet by an unregistered address: 404", status == 404)
    for addr in (a_addr, b_addr):
        run("ip", "address", "add", f"{addr}/128", "dev", "lo", "nodad")
    ping = lambda src, name: request("POST", f"/fleet/{FLEET}/ping", json.dumps({"hostname": name}), source=src, host=SERVER_IP)
    check("ping from a client with a host name: 200 ok", ping(a_addr, "excavator")[:3:2] == (200, '{"status":"ok"}'))
    check("a second client asking for the same name: 200", ping(b_addr, "excavator")[0] == 200)
    names = {c["address"]: c["hostname"] for c in clients()}
    check("the second one is numbered excavator--2", names.get(a_addr) == "excavator" and names.get(b_addr) == "excavator--2", names)
    ping(a_addr, "excavator")
    ping(b_addr, "excavator")
    names = {c["address"]: c["hostname"] for c in clients()}
    check("repeated pings keep each client's name", names.get(a_addr) == "excavator" and names.get(b_addr) == "excavator--2", names)
    hosts_ok = lambda: (f"{a_addr} excavator.{FLEET}.{DOMAIN}" in open(f"{tmp}/hosts").read()
                        and f"{b_addr} excavator--2.{FLEET}.{DOMAIN}" in open(f"{tmp}/hosts").read())
    check("the hosts file lists both by host name", wait_for("the hosts file", hosts_ok))

    # Bad input: the right code, and nothing stored.
    before = clients()
    cases = [
        ("malformed JSON to register: 422", "POST", f"/fleet/{FLEET}/register", "{nope", None, 422),
        ("a public_key that is no key: 422", "POST", f"/fleet/{FLEET}/register", '{"public_key": "xyz"}', None, 422),
        ("malformed JSON to ping: 422", "POST", f"/fleet/{FLEET}/ping", "[", a_addr, 422),
        ("a host name with capitals and a dot: 400", "POST", f"/fleet/{FLEET}/ping", '{"hostname": "Bad.Name"}', a_addr, 400),
        ("a host name of 64 characters: 400", "POST", f"/fleet/{FLEET}/ping", json.dumps({"hostname": "a" * 64}), a_addr, 400),
        ("an unknown fleet: 404", "POST", "/fleet/nosuch/register", "", None, 404),
        ("an unknown fleet's page: 404", "GET", "/fleet/nosuch", None, None, 404),
        ("an unknown path: 404", "GET", "/nothing/here", None, None, 404),
        ("a body over the limit: 413", "POST", f"/fleet/{FLEET}/register", "x" * (256 * 1024), None, 413),
    ]
    for what, method, path, body, src, code in cases:
        status, _, text = request(method, path, body, source=src, host=SERVER_IP if src else "127.0.0.1")
        check(what, status == code, f"got {status}: {text[:200]}")
    status, headers, _ = request("GET", f"/fleet/{FLEET}/register")
    check("GET on register: 405 with Allow: POST", status == 405 and headers.get("Allow") == "POST", headers)
    status, headers, _ = request("DELETE", "/")
    check("DELETE on /: 405 with Allow", status == 405 and "GET" in headers.get("Allow", ""), headers)
    check("nothing was stored by any of them", clients() == before)

    # The dashboard: strict HTML5, with every client's name and address, and the index.
    status, _, html = request("GET", f"/fleet/{FLEET}")
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    try:
        doc = parser.parse(html)
        strict_ok = True
    except Exception as e:  # html5lib raises ParseError on the first error in strict mode
        strict_ok = False
        print("     ", e)
    check("the fleet page parses as strict HTML5", status == 200 and strict_ok)
    if strict_ok:
        rows = [[td.text or "" for td in tr.findall("td")] for tr in doc.findall(".//tbody/tr")]
        by_addr = {row[1]: row for row in rows}
        check("the fleet page has a row per client with host name and address",
              len(rows) == len(before) and by_addr.get(a_addr, [""])[0] == "excavator" and by_addr.get(b_addr, [""])[0] == "excavator--2",
              rows)
        check("each row has the short key, the source address and a health verdict",
              all(row[2][:8] == b_key[:8] and row[3] == "127.0.0.1" and row[6] in ("ok", "stale", "idle", "never")
                  for row in rows if row[1] == b_addr))
    status, _, html = request("GET", "/")
    try:
        doc = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)
        links = [a.get("href") for a in doc.findall(".//a")]
        check("the index parses as strict HTML5 and links the fleet", f"/fleet/{FLEET}" in links, links)
    except Exception as e:
        check("the index parses as strict HTML5", False, str(e))

    # Restart: stop serve, a one-shot apply changes nothing, serve comes back with every client.
    peers_before = device_peers()
    serve.stop()
    r = run(BIN, "-c", cfg, "--node", "server", "apply", check_rc=False)
    check("apply with serve stopped: no operations", r.returncode == 0 and "No changes" in r.stdout, r.stdout + r.stderr)
    r = run(BIN, "-c", cfg, "--node", "server", "plan", "--detailed-exitcode", check_rc=False)
    check("plan --detailed-exitcode: 0", r.returncode == 0, r.stdout + r.stderr)
    check("the device still has every client", device_peers() == peers_before)
    serve = Serve(cfg, tmp)
    check("after a restart every client keeps its key, address and name", clients() == before)

    # A one-shot apply while serve runs keeps its desired state in the cache, keyed on the store
    # (serve.db and its write-ahead log, where a running serve's commits are). The cache is looked
    # for where the state directory is known before the file is read: --state-dir.
    r = run(BIN, "-v", "-c", cfg, "--node", "server", "--state-dir", f"{tmp}/state", "apply", check_rc=False)
    check("apply while serve runs: no operations, its desired state kept",
          r.returncode == 0 and "No changes" in r.stdout and "desired state kept in" in r.stderr, r.stdout + r.stderr)

    # 200 registrations from 8 parallel clients.
    def register(_):
        status, _, body = request("POST", f"/fleet/{FLEET}/register")
        r = json.loads(body)
        conf = dict(line.split(" = ", 1) for line in r["config"].splitlines() if " = " in line)
        return status, conf["Address"].split("/")[0], pubkey(conf["PrivateKey"])

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(register, range(200)))
    addrs = {a for _, a, _ in results}
    keys = {k for _, _, k in results}
    check("200 parallel registrations: all 200", all(s == 200 for s, _, _ in results))
    check("200 parallel registrations: 200 distinct addresses, none an earlier client's or the server's",
          len(addrs) == 200 and not addrs & {a_addr, b_addr, SERVER_IP} and all(ipaddress.ip_address(a) in subnet for a in addrs))
    check("200 parallel registrations: 200 peers on the device", wait_for("200 peers", lambda: keys <= device_peers()))
    r = run(BIN, "-v", "-c", cfg, "--node", "server", "--state-dir", f"{tmp}/state", "plan", "--detailed-exitcode", check_rc=False)
    check("plan while serve runs, after 200 registrations: 0 (its cached desired state is not the one before them)",
          r.returncode == 0, r.stdout[-2000:] + r.stderr)

    # The one-shot apply above kept its desired state in the cache; the store changed since, so
    # the cache must not be used: an apply now changes nothing (a stale one would remove 200).
    peers_before = device_peers()
    serve.stop()
    r = run(BIN, "-c", cfg, "--node", "server", "apply", check_rc=False)
    check("apply after the store changed (desired-state cache): no operations", r.returncode == 0 and "No changes" in r.stdout,
          r.stdout + r.stderr)
    check("the device still has all 202 clients", device_peers() == peers_before and len(peers_before) == 202)
    serve = Serve(cfg, tmp)

    # Pruning: with a prune_timeout of 1s every client (none ever had a handshake) goes at a tick,
    # from the store and the device, and the lowest address is free again.
    write_config(tmp, prune="1s")
    check("pruned: no client left", wait_for("the prune", lambda: clients() == []))
    check("pruned: no peer left on the device", wait_for("the peers to go", lambda: device_peers() == set()))
    status, _, body = request("POST", f"/fleet/{FLEET}/register")
    check("after the prune the first address is given out again",
          status == 200 and f"Address = {a_addr}/" in json.loads(body)["config"], body)
    serve.stop()
    return None


if __name__ == "__main__":
    main()
