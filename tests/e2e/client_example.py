#!/usr/bin/env python3
"""examples/client/: the client side of the enrollment API, checked by its consumers (no root).

- systemd-analyze verify --man=no on wg-fleet-ping.service and .timer prints nothing (and does
  print for a copy with a misspelt setting);
- wg-fleet-register passes `sh -n` and shellcheck;
- run against a stand-in of serve's register and ping endpoints on loopback: it sends only a
  public key (never a private one) and the token as a header, writes the WireGuard config 0600
  with the PrivateKey placeholder filled by the key whose public key it sent, the rest as
  answered; run again it sends the same key; a server that made the key pair itself (the Python
  wg-fleet) keeps its key; the ping configuration it writes, run by curl exactly as the unit's
  ExecStart runs it, pings the fleet with the host name and the token.

Usage: client_example.py SOURCE_DIR
"""
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading

SRC = sys.argv[1]
CLIENT = os.path.join(SRC, "examples", "client")
results = []


def check(what, ok, detail=""):
    results.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f"\n     {detail}"))


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


PLACEHOLDER = "PrivateKey = <the private key of the public key you registered>"
SERVER_PUB = "HZKtS2mH+gNHzF0vts+eR8g/T2yus7Xvb2KXMFKJIcM="


class StandIn(http.server.BaseHTTPRequestHandler):
    """serve's register and ping, as far as the client sees them."""
    requests = []
    python_style = False
    python_key = None

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        StandIn.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if self.path == "/fleet/southeast/register":
            config = answered_config()
            if StandIn.python_style:
                config = config.replace(PLACEHOLDER, f"PrivateKey = {StandIn.python_key}")
            answer = {"status": "success", "config": config, "port": 51820, "server_ip": "::1"}
        elif self.path == "/fleet/southeast/ping":
            answer = {"status": "ok"}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server6(http.server.ThreadingHTTPServer):
    address_family = __import__("socket").AF_INET6


def units():
    for unit in ("wg-fleet-ping.service", "wg-fleet-ping.timer"):
        check(f"{unit} exists", os.path.exists(os.path.join(CLIENT, unit)))
    r = run("systemd-analyze", "verify", "--man=no", os.path.join(CLIENT, "wg-fleet-ping.service"), os.path.join(CLIENT, "wg-fleet-ping.timer"))
    out = (r.stdout + r.stderr).strip()
    check("systemd-analyze verify --man=no on the ping service and timer prints nothing, exits 0", r.returncode == 0 and not out, out)
    with tempfile.TemporaryDirectory() as d:
        for unit in ("wg-fleet-ping.service", "wg-fleet-ping.timer"):
            shutil.copy(os.path.join(CLIENT, unit), d)
        timer = os.path.join(d, "wg-fleet-ping.timer")
        with open(timer) as f:
            text = f.read()
        with open(timer, "w") as f:
            f.write(text.replace("[Timer]\n", "[Timer]\nOnUnitActivSec=5min\n"))
        r = run("systemd-analyze", "verify", "--man=no", os.path.join(d, "wg-fleet-ping.service"), timer)
        check("the same check catches a misspelt setting", (r.stdout + r.stderr).strip() != "")


def script():
    reg = os.path.join(CLIENT, "wg-fleet-register")
    check("wg-fleet-register is executable", os.access(reg, os.X_OK))
    r = run("sh", "-n", reg)
    check("sh -n wg-fleet-register", r.returncode == 0, r.stderr)
    r = run("shellcheck", reg)
    check("shellcheck wg-fleet-register", r.returncode == 0, r.stdout + r.stderr)


def pubkey(private):
    return run("wg", "pubkey", input=private + "\n").stdout.strip()


def register_and_ping():
    reg = os.path.join(CLIENT, "wg-fleet-register")
    srv = Server6(("::1", 0), StandIn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    tmp = tempfile.mkdtemp(prefix="wgf-client.")
    try:
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write("s3cret-token")
        os.chmod(token, 0o600)
        env = dict(os.environ, WG_FLEET_TOKEN_FILE=token, WG_FLEET_HOSTNAME="excavator", WG_FLEET_CONF_DIR=f"{tmp}/wireguard",
                   WG_FLEET_PING_CONF=f"{tmp}/ping.curlrc", WG_FLEET_API_PORT=str(port))
        url = f"http://[::1]:{port}"
        r = run(reg, url, "southeast", env=env)
        check("wg-fleet-register exits 0", r.returncode == 0, r.stdout + r.stderr)
        conf = f"{tmp}/wireguard/wg-fleet.conf"
        check("the config is written 0600", os.path.exists(conf) and os.stat(conf).st_mode & 0o777 == 0o600)
        with open(conf) as f:
            lines = f.read().splitlines()
        private = next((l.split("=", 1)[1].strip() for l in lines if l.startswith("PrivateKey")), "")
        sent = [json.loads(q["body"]) for q in StandIn.requests if q["path"].endswith("/register")]
        check("it sent one register request with a public key only", len(sent) == 1 and list(sent[0]) == ["public_key"], str(sent))
        check("the PrivateKey filled in is the private key of the public key sent", sent and pubkey(private) == sent[0]["public_key"])
        check("no private key was sent", all(private not in q["body"] for q in StandIn.requests))
        check("the token went as a bearer header", StandIn.requests[-1]["auth"] == "Bearer s3cret-token")
        want = [l for l in answered_config().splitlines() if not l.startswith("PrivateKey")]
        check("the rest of the config is as answered", [l for l in lines if not l.startswith("PrivateKey")] == want)
        check("wg-quick strip reads the config", run("wg-quick", "strip", conf).returncode == 0)

        r = run(reg, url, "southeast", env=env)
        sent = [json.loads(q["body"]) for q in StandIn.requests if q["path"].endswith("/register")]
        check("run again, it registers the same public key (so the address is kept)", r.returncode == 0 and len(sent) == 2
              and sent[0] == sent[1], r.stderr)

        # The ping exactly as wg-fleet-ping.service runs it, its credential being the curlrc.
        with open(os.path.join(CLIENT, "wg-fleet-ping.service")) as f:
            exec_start = re.search(r"^ExecStart=(.*)$", f.read(), re.M).group(1)
        argv = [a.replace("%d/curlrc", f"{tmp}/ping.curlrc") for a in shlex.split(exec_start)]
        check("the ping configuration is 0600", os.stat(f"{tmp}/ping.curlrc").st_mode & 0o777 == 0o600)
        StandIn.requests.clear()
        r = run(*argv)
        pings = [q for q in StandIn.requests if q["path"] == "/fleet/southeast/ping"]
        check("the unit's ExecStart pings the fleet over the server's address", r.returncode == 0 and len(pings) == 1, r.stderr)
        check("... with the host name", pings and json.loads(pings[0]["body"]) == {"hostname": "excavator"}, str(pings))
        check("... and the token", pings and pings[0]["auth"] == "Bearer s3cret-token")

        # A server that makes the key pair itself (the Python wg-fleet): its key is kept.
        StandIn.python_style, StandIn.python_key = True, run("wg", "genkey").stdout.strip()
        os.unlink(conf)
        r = run(reg, url, "southeast", env=env)
        with open(conf) as f:
            text = f.read()
        check("an answer with a real PrivateKey (the Python wg-fleet) is kept as it is", r.returncode == 0
              and f"PrivateKey = {StandIn.python_key}\n" in text)
        r = run(reg, url, "nosuch", env=env)
        check("an unknown fleet (HTTP 404) fails with exit 1, naming the status", r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr)
    finally:
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def answered_config():
    return (f"[Interface]\n{PLACEHOLDER}\nAddress = fd00:a0a8:34d:2a00::5/64\n\n[Peer]\nPublicKey = {SERVER_PUB}\n"
            "Endpoint = 192.0.2.1:51820\nAllowedIPs = fd00:a0a8:34d:2a00::/64\nPersistentKeepalive = 25\n")


def main():
    units()
    script()
    register_and_ping()
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
