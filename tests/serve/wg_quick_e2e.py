#!/usr/bin/env python3
"""A client enrolls with `wg-fleet serve` and brings the answer up with the real `wg-quick`.

Two network namespaces joined by a veth pair: the server's runs `wg-fleet serve` (its fleet's
device is wireguard-go), the client's runs curl and `wg-quick` with the userspace implementation.
The client registers over HTTP twice: once letting serve generate the key pair, once with a
public key of its own (the config's PrivateKey placeholder is filled in locally). Each config is
brought up by `wg-quick up` from a 0600 file, and over the tunnel the client pings the server's
fleet address and then serve's /fleet/F/ping with a host name; the dashboard's JSON must show the
name and a handshake, as `wg show` on the server does. A control with the returned config's
endpoint changed must not get through, so the pings cannot have gone around the tunnel.

Usage: wg_quick_e2e.py WG_FLEET_BINARY
"""
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_e2e as base  # noqa: E402  (check, wait_for, pubkey and the tally)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import wgf_netns  # noqa: E402

BIN = base.BIN
PID = os.getpid()
NS_S, NS_C = f"wgfqs{PID}", f"wgfqc{PID}"
VETH_S, VETH_C = f"vqs{PID}", f"vqc{PID}"
# wireguard-go's UAPI sockets (/var/run/wireguard) are shared by every namespace: names per run.
IF_SERVER = f"wgqs{PID}"
FLEET, SUBNET, SERVER_IP, PORT = "qk", "fd00:5e1f:9a2c:7700::/64", "fd00:5e1f:9a2c:7700::1", 51831
# The veth pair's addresses, inside these two namespaces only.
OUTER_S, OUTER_C = "198.18.0.1", "198.18.0.2"
API = f"http://{OUTER_S}:8000"
TUNNEL_API = f"http://[{SERVER_IP}]:8000"
check = base.check


def ns(name, *args, env=None, check_rc=True):
    r = subprocess.run(["ip", "netns", "exec", name, *args], capture_output=True, text=True, env=env)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{name}: {args}: rc {r.returncode}: {r.stdout}{r.stderr}")
    return r


def curl(path_url, token, body=None):
    """POST (with a body) or GET from the client's namespace; (HTTP status, body)."""
    args = ["curl", "-sS", "-m", "20", "-o", "-", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        args += ["-X", "POST", "-H", "Content-Type: application/json", "-d", body]
    r = ns(NS_C, *args, path_url, check_rc=False)
    text, _, code = r.stdout.rpartition("\n")
    return int(code or 0), text


def server_dashboard():
    r = ns(NS_S, "curl", "-sS", "-m", "20", f"http://127.0.0.1:8000/fleet/{FLEET}?format=json", check_rc=False)
    return json.loads(r.stdout)["clients"] if r.returncode == 0 else []




def write_fleet(tmp):
    token = f"{tmp}/token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, os.urandom(24).hex().encode() + b"\n")
    os.close(fd)
    path = f"{tmp}/fleet.yaml"
    with open(path, "w") as f:
        f.write(f"""state_dir: {tmp}/state
hosts_file: {tmp}/hosts
domain: example.internal
serve:
  token_file: {token}
fleets:
  {FLEET}:
    ip6: {SERVER_IP}
    subnet: {SUBNET}
    external_ip: {OUTER_S}
    port: {PORT}
    keepalive: 5
    interface: {IF_SERVER}
""")
    return path, open(token).read().strip()


def parse_config(text):
    """wg-quick's INI: {section: {key: value}} (one peer here)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
        elif " = " in line and section is not None:
            k, v = line.split(" = ", 1)
            section[k] = v
    return out


class Client:
    """One wg-quick interface in the client's namespace; `down` is safe to call twice."""

    def __init__(self, tmp, ifname, config_text):
        self.ifname = ifname
        self.path = f"{tmp}/{ifname}.conf"
        if config_text is not None:
            # wg-quick warns about a config others may read; created 0600 from the start.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, config_text.encode())
            os.close(fd)
        self.env = dict(os.environ, WG_QUICK_USERSPACE_IMPLEMENTATION="wireguard-go")
        self.up_result = None

    def up(self):
        self.up_result = ns(NS_C, "wg-quick", "up", self.path, env=self.env, check_rc=False)
        return self.up_result

    def down(self):
        if not os.path.exists(f"/var/run/wireguard/{self.ifname}.sock") and \
                ns(NS_C, "ip", "link", "show", self.ifname, check_rc=False).returncode != 0:
            return None
        return ns(NS_C, "wg-quick", "down", self.path, env=self.env, check_rc=False)


def setup(tmp):
    for n in (NS_S, NS_C):
        subprocess.run(["ip", "netns", "add", n], check=True)
        ns(n, "ip", "link", "set", "lo", "up")
    subprocess.run(["ip", "link", "add", VETH_S, "netns", NS_S, "type", "veth", "peer", "name", VETH_C, "netns", NS_C], check=True)
    ns(NS_S, "ip", "address", "add", f"{OUTER_S}/30", "dev", VETH_S)
    ns(NS_C, "ip", "address", "add", f"{OUTER_C}/30", "dev", VETH_C)
    ns(NS_S, "ip", "link", "set", VETH_S, "up")
    ns(NS_C, "ip", "link", "set", VETH_C, "up")


def start_serve(cfg, tmp):
    log = open(f"{tmp}/serve.log", "a")
    p = subprocess.Popen(["ip", "netns", "exec", NS_S, BIN, "-c", cfg, "--node", "server", "serve", "--interval", "1",
                          "--listen", f"{OUTER_S}:8000", "--listen", "127.0.0.1:8000", "--listen", f"[{SERVER_IP}]:8000"],
                         stdout=log, stderr=log)
    ready = lambda: ns(NS_S, "curl", "-sf", "-m", "5", "http://127.0.0.1:8000/?format=json", check_rc=False).returncode == 0
    if not base.wait_for("serve to answer", ready):
        raise RuntimeError("serve did not start")
    return p, log


def bring_up_and_use(tmp, token, label, ifname, config_text, host_name, server_key):
    """wg-quick up, ping the server over the tunnel, ping the API with a host name, wg-quick down."""
    conf = parse_config(config_text)
    address = conf["Interface"]["Address"].split("/")[0]
    client_key = base.pubkey(conf["Interface"]["PrivateKey"])
    c = Client(tmp, ifname, config_text)
    try:
        r = c.up()
        out = r.stdout + r.stderr
        check(f"{label}: wg-quick up (userspace, wireguard-go) succeeds without a permissions warning",
              r.returncode == 0 and "world accessible" not in out, out)
        if r.returncode != 0:
            return
        ip = ns(NS_C, "ip", "-6", "-o", "address", "show", "dev", ifname).stdout
        check(f"{label}: the interface has the registered address", f" {address}/" in ip, ip)
        show = ns(NS_C, "wg", "show", ifname, "dump").stdout.splitlines()
        peers = [line.split("\t") for line in show[1:]]
        check(f"{label}: the client's one peer is the server's device key (wg show on the server), at its veth endpoint",
              len(peers) == 1 and peers[0][0] == server_key and peers[0][2] == f"{OUTER_S}:{PORT}", show)
        check(f"{label}: the client's own key is the one registered", show[0].split("\t")[1] == client_key, show[0])
        r = ns(NS_C, "ping", "-6", "-n", "-c", "2", "-i", "0.5", "-w", "30", SERVER_IP, check_rc=False)
        check(f"{label}: ping {SERVER_IP} (the server's fleet address) over the tunnel", r.returncode == 0, r.stdout + r.stderr)
        status, body = curl(f"{TUNNEL_API}/fleet/{FLEET}/ping", token, json.dumps({"hostname": host_name}))
        check(f"{label}: POST /fleet/{FLEET}/ping over the tunnel with a host name: 200 ok", (status, body) == (200, '{"status":"ok"}'),
              f"{status} {body}")

        def listed():
            row = next((x for x in server_dashboard() if x["public_key"] == client_key), None)
            return row if row and row["hostname"] == host_name and row["latest_handshake"] > 0 else None

        check(f"{label}: the dashboard's JSON shows it by host name with a handshake", base.wait_for("the dashboard", listed))
        row = listed() or {}
        handshakes = dict(line.split("\t") for line in ns(NS_S, "wg", "show", IF_SERVER, "latest-handshakes").stdout.splitlines())
        check(f"{label}: the dashboard's address and health agree with the registration and wg show on the server",
              row.get("address") == address and row.get("health") == "ok" and int(handshakes.get(client_key, "0")) > 0, (row, handshakes))
    finally:
        r = c.down()
        if r is not None:
            check(f"{label}: wg-quick down", r.returncode == 0 and ns(NS_C, "ip", "link", "show", ifname, check_rc=False).returncode != 0,
                  r.stdout + r.stderr)


def control(tmp, config_text):
    """The same config with the endpoint's port changed must not reach the server."""
    wrong = re.sub(r"^Endpoint = (.*):\d+$", lambda m: f"Endpoint = {m.group(1)}:{PORT + 1}", config_text, flags=re.M)
    c = Client(tmp, f"wgqx{PID}", wrong)
    try:
        r = c.up()
        ping = ns(NS_C, "ping", "-6", "-n", "-c", "1", "-w", "3", SERVER_IP, check_rc=False)
        check("control: with a wrong endpoint in the config the ping does not get through (nothing goes around the tunnel)",
              r.returncode == 0 and wrong != config_text and ping.returncode != 0, ping.stdout)
    finally:
        c.down()


def tests(tmp, token):
    server_key = ns(NS_S, "wg", "show", IF_SERVER, "public-key").stdout.strip()
    subnet = ipaddress.ip_network(SUBNET)

    # A: serve generates the key pair.
    status, body = curl(f"{API}/fleet/{FLEET}/register", token, "")
    check("A: register over the veth with the bearer token: 200", status == 200, body)
    conf_a = json.loads(body)["config"] if status == 200 else ""
    check("A: the config has no DNS line (wg-quick would need resolvconf)", "DNS" not in conf_a, conf_a)
    a = parse_config(conf_a)
    check("A: Address in the subnet and AllowedIPs the subnet (the YAML's)",
          ipaddress.ip_address(a["Interface"]["Address"].split("/")[0]) in subnet and a["Peer"]["AllowedIPs"] == SUBNET, conf_a)
    bring_up_and_use(tmp, token, "A", f"wgqa{PID}", conf_a, "excavator", server_key)

    # B: the client's own key; the placeholder is replaced here, the private key never sent.
    b_priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    status, body = curl(f"{API}/fleet/{FLEET}/register", token, json.dumps({"public_key": base.pubkey(b_priv)}))
    check("B: register with public_key: 200", status == 200, body)
    conf_b = json.loads(body)["config"] if status == 200 else ""
    filled, n = re.subn(r"^PrivateKey = <.*>$", f"PrivateKey = {b_priv}", conf_b, flags=re.M)
    check("B: the config carries a PrivateKey placeholder, filled in locally", n == 1 and b_priv not in conf_b, conf_b)
    bring_up_and_use(tmp, token, "B", f"wgqb{PID}", filled, "loader", server_key)

    control(tmp, filled)


def main():
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        sys.exit(77)
    for tool in ("wg-quick", "wireguard-go", "curl", "ping"):
        if not shutil.which(tool):
            print(f"{tool} is missing (run.sh deps installs it)")
            sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="wgf-wgquick-")
    serve = log = None
    try:
        setup(tmp)
        cfg, token = write_fleet(tmp)
        serve, log = start_serve(cfg, tmp)
        tests(tmp, token)
    except Exception as e:  # a setup failure is a failed check, and the cleanup still runs
        check("the test ran to its end", False, repr(e))
    finally:
        for name in (f"wgqa{PID}", f"wgqb{PID}", f"wgqx{PID}"):
            if os.path.exists(f"{tmp}/{name}.conf"):
                Client(tmp, name, None).down()
        if serve:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        wgf_netns.remove(NS_C, [f"wgqa{PID}", f"wgqb{PID}", f"wgqx{PID}"])
        wgf_netns.remove(NS_S, [IF_SERVER])
        if log:
            log.close()
        if base.failed and os.path.exists(f"{tmp}/serve.log"):
            print(open(f"{tmp}/serve.log").read()[-6000:])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{base.passed} passed, {base.failed} failed")
    sys.exit(1 if base.failed else 0)


if __name__ == "__main__":
    main()
