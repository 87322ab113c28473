#!/usr/bin/env python3
"""`render networkd` read back as systemd reads it, for every node of every example.

The files are parsed as systemd INI (a parser of its own below: sections and keys repeat, `#` and
`;` start comments, a trailing backslash continues a line) and every value is compared with a
source other than the networkd renderer:
  - `addresses --json` (each node's fleets and addresses) and the YAML (interface names, MTU),
  - `render wg-quick --fleet F` (key file, listen port, MTU, addresses, every peer with its key,
    allowed IPs, endpoint and keepalive, pending members, routes given a preferred source),
  - the routes wg-quick would add (every allowed IP), less those inside the interface's own
    subnets, which the kernel routes already (computed here with Python's ipaddress),
  - with --plan (root): `plan --json` run in an empty network namespace, whose operations are what
    the reconciler would apply there: devices, key file, port, MTU, peers, addresses, routes with
    their source and the forwarding sysctls (IPForward=).
With --systemd (root), systemd-networkd itself loads each node's files (written with --dir) in
private mount and network namespaces, with a key file where PrivateKeyFile= points, readable by
systemd-network as networkd requires: every .netdev must load and networkd may not log a single
complaint about any of the files (an unknown key, a value it cannot parse, a section it drops).
It reads them as on a host; it cannot create the devices where the kernel has no WireGuard.
Each example runs as shipped and again with a public key published in keys_dir for every member
that has none in the file, so that fleets without keys (demo, multi-controller) have peers too.

Usage: check_networkd.py WG_FLEET_BINARY SOURCE_DIR [--plan | --systemd] [--only EXAMPLE]
"""
import base64
import glob
import grp
import ipaddress
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import yaml

BIN, SRC = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
PLAN = "--plan" in sys.argv
SYSTEMD = "--systemd" in sys.argv
NETWORKD = "/lib/systemd/systemd-networkd"
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None

failures = []
checked = {"nodes": 0, "peers": 0, "routes": 0, "addresses": 0, "networkd": 0}


def fail(where, msg):
    failures.append(f"{where}: {msg}")


def run(args, where):
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{where}: {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


# --- systemd INI ----------------------------------------------------------------------------

class Section:
    def __init__(self, name):
        self.name, self.entries, self.comments = name, [], []

    def all(self, key):
        return [v for k, v in self.entries if k == key]

    def one(self, key):
        v = self.all(key)
        if len(v) > 1:
            raise ValueError(f"[{self.name}] {key}= given {len(v)} times")
        return v[0] if v else None


def parse_ini(text, where):
    """Sections in order; each keeps its key/value pairs in order and its comments."""
    sections, cur, pending = [], None, ""
    for n, raw in enumerate(text.split("\n"), 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line:
            continue
        if line[0] in "#;":
            if cur is not None:
                cur.comments.append(line[1:].strip())
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"{where}:{n}: bad section header {line!r}")
            cur = Section(line[1:-1])
            sections.append(cur)
            continue
        if "=" not in line:
            raise ValueError(f"{where}:{n}: not KEY=VALUE: {line!r}")
        if cur is None:
            raise ValueError(f"{where}:{n}: assignment outside a section")
        k, v = line.split("=", 1)
        cur.entries.append((k.strip(), v.strip()))
    return sections


def split_stdout(text):
    """The files `render networkd` prints, by the name in each `# ==> NAME <==` header."""
    files, name = {}, None
    for line in text.split("\n"):
        m = re.fullmatch(r"# ==> (\S+) <==", line)
        if m:
            name = m.group(1)
            files[name] = ""
        elif name is not None:
            files[name] += line + "\n"
    return files


ALLOWED = {  # what each file may hold: anything else is a typo systemd would ignore with a warning
    "NetDev": {"Name", "Kind", "MTUBytes"},
    "WireGuard": {"PrivateKeyFile", "ListenPort", "FirewallMark"},
    "WireGuardPeer": {"PublicKey", "AllowedIPs", "Endpoint", "PersistentKeepalive"},
    "Match": {"Name"},
    "Network": {"Address", "IPForward"},
    "Route": {"Destination", "PreferredSource", "Table"},
    "RoutingPolicyRule": {"Family", "Priority", "FirewallMark", "InvertRule", "Table", "SuppressPrefixLength"},
}


def sections_named(sections, name):
    return [s for s in sections if s.name == name]


def only_section(sections, name, where):
    s = sections_named(sections, name)
    if len(s) != 1:
        fail(where, f"{len(s)} [{name}] sections, want 1")
        return Section(name)
    return s[0]


def pending_of(text):
    return sorted(re.findall(r"^# (\S+): no public key yet \(pending\)$", text, re.M))


def prefixes(text, sep):
    return {str(ipaddress.ip_network(p.strip(), strict=False)) for p in text.split(sep) if p.strip()}


# --- the independent sources ------------------------------------------------------------------

def wg_quick(cfg, node, fleet, state_dir, where):
    text = run([BIN, "-c", cfg, "--dropin-dir", "/nonexistent", "--node", node, "--state-dir", state_dir,
                "render", "wg-quick", "--fleet", fleet], where)
    secs = parse_ini(text, where + " (wg-quick)")
    iface = only_section(secs, "Interface", where + " (wg-quick)")
    out = {"header": text.split("\n", 1)[0], "addresses": set(), "port": iface.one("ListenPort"), "mtu": iface.one("MTU"), "key_file": None,
           "src": {}, "peers": {}, "pending": pending_of(text)}
    for a in iface.all("Address"):
        out["addresses"] |= {x.strip() for x in a.split(",")}
    for cmd in iface.all("PostUp"):
        m = re.fullmatch(r"wg set %i private-key (\S+)", cmd)
        if m:
            out["key_file"] = m.group(1)
        m = re.fullmatch(r"ip -[46] route change (\S+) dev %i src (\S+)", cmd)
        if m:
            out["src"][m.group(1)] = m.group(2)
    for p in sections_named(secs, "Peer"):
        out["peers"][p.one("PublicKey")] = {"name": p.comments[0] if p.comments else None,
                                            "allowed": prefixes(p.one("AllowedIPs") or "", ","),
                                            "endpoint": p.one("Endpoint"), "keepalive": p.one("PersistentKeepalive")}
    return out


def plan_ops(cfg, node, state_dir, where):
    """What apply would do in an empty network namespace, by interface."""
    text = run(["unshare", "--net", "--", BIN, "-c", cfg, "--dropin-dir", "/nonexistent", "--node", node,
                "--state-dir", state_dir, "plan", "--json"], where + " (plan)")
    ifs, forwarding = {}, set()
    get = lambda i: ifs.setdefault(i, {"addresses": set(), "routes": {}, "peers": {}, "port": None, "mtu": None,
                                         "key_file": None, "created": False})
    for op in json.loads(text)["ops"]:
        line = op["line"]
        if m := re.fullmatch(r"\+ device (\S+) \(fleet \S+\)", line):
            get(m.group(1))["created"] = True
        elif m := re.fullmatch(r"~ device (\S+): new private key, generated into (\S+)", line):
            get(m.group(1))["key_file"] = m.group(2)
        elif m := re.fullmatch(r"~ device (\S+): listen port (\d+)", line):
            get(m.group(1))["port"] = m.group(2)
        elif m := re.fullmatch(r"~ link (\S+): mtu (?:\d+ -> )?(\d+)", line):
            get(m.group(1))["mtu"] = m.group(2)
        elif m := re.fullmatch(r"\+ address (\S+) dev (\S+)", line):
            get(m.group(2))["addresses"].add(m.group(1))
        elif m := re.fullmatch(r"\+ route (\S+) dev (\S+)(?: src (\S+))?(?: table \d+)?", line):
            get(m.group(2))["routes"][m.group(1)] = m.group(3)
        elif m := re.fullmatch(r"\+ peer (\S+) \((\S+)…\) on (\S+): allowed-ips ([^;]*)(?:; endpoint (\S+))?(?:; keepalive (\d+))?", line):
            get(m.group(3))["peers"][m.group(1)] = {"key8": m.group(2), "allowed": prefixes(m.group(4), ","),
                                                   "endpoint": m.group(5), "keepalive": m.group(6)}
        elif m := re.fullmatch(r"~ sysctl (net/ipv4/ip_forward|net/ipv6/conf/all/forwarding) \S+ -> 1", line):
            forwarding.add("ipv4" if "ipv4" in m.group(1) else "ipv6")
    return ifs, forwarding


def interface_name(doc, fleet):
    f = doc["fleets"][fleet] or {}
    if "interface" in f:
        return f["interface"]
    return None  # the default: taken from wg-quick's header below


# --- one node ----------------------------------------------------------------------------------

def check_node(cfg, doc, plan_json, node, state_dir, label):
    where = f"{label} {node}"
    fleets = {f: fp["nodes"][node] for f, fp in plan_json["fleets"].items() if node in fp["nodes"]}
    out = run([BIN, "-c", cfg, "--dropin-dir", "/nonexistent", "--node", node, "--state-dir", state_dir, "render", "networkd"], where)
    files = split_stdout(out)
    if re.search(r"^\s*PrivateKey\s*=", out, re.M):
        fail(where, "a PrivateKey= line (only PrivateKeyFile= may name the key)")
    parsed = {}
    for name, text in files.items():
        try:
            parsed[name] = parse_ini(text, f"{where} {name}")
        except ValueError as e:
            fail(where, str(e))
            return
        for s in parsed[name]:
            for k, _ in s.entries:
                if k not in ALLOWED.get(s.name, set()):
                    fail(f"{where} {name}", f"unexpected [{s.name}] {k}=")
    forwards = set()
    for fleet, entry in fleets.items():
        wq = wg_quick(cfg, node, fleet, state_dir, where)
        ifname = interface_name(doc, fleet) or re.search(r"\(interface (\S+)\)", wq["header"]).group(1)
        w = f"{where} {ifname}"
        netdev, network = f"50-wg-fleet-{ifname}.netdev", f"50-wg-fleet-{ifname}.network"
        if netdev not in parsed or network not in parsed:
            fail(w, f"missing {netdev} or {network} (have {sorted(files)})")
            continue
        nd, nw = parsed[netdev], parsed[network]
        # [NetDev]
        s = only_section(nd, "NetDev", w)
        if s.one("Name") != ifname: fail(w, f"Name={s.one('Name')}, want {ifname}")
        if s.one("Kind") != "wireguard": fail(w, f"Kind={s.one('Kind')}")
        yaml_mtu = (doc["fleets"][fleet] or {}).get("mtu")
        if s.one("MTUBytes") != wq["mtu"] or (yaml_mtu is not None and s.one("MTUBytes") != str(yaml_mtu)):
            fail(w, f"MTUBytes={s.one('MTUBytes')}, wg-quick MTU {wq['mtu']}, YAML mtu {yaml_mtu}")
        # [WireGuard]
        s = only_section(nd, "WireGuard", w)
        key_file = s.one("PrivateKeyFile")
        if key_file != wq["key_file"]: fail(w, f"PrivateKeyFile={key_file}, wg-quick loads {wq['key_file']}")
        if not key_file or os.path.dirname(key_file) != state_dir: fail(w, f"PrivateKeyFile={key_file} not in --state-dir {state_dir}")
        if s.one("ListenPort") != wq["port"]: fail(w, f"ListenPort={s.one('ListenPort')}, wg-quick {wq['port']}")
        # [WireGuardPeer]
        peers = {}
        for p in sections_named(nd, "WireGuardPeer"):
            key = p.one("PublicKey")
            if key in peers: fail(w, f"peer {key} twice")
            peers[key] = {"name": p.comments[0] if p.comments else None, "allowed": prefixes(p.one("AllowedIPs") or "", ","),
                          "endpoint": p.one("Endpoint"), "keepalive": p.one("PersistentKeepalive")}
        if peers != wq["peers"]:
            fail(w, f"peers differ from wg-quick's:\n  networkd {peers}\n  wg-quick {wq['peers']}")
        checked["peers"] += len(peers)
        if pending_of(files[netdev]) != wq["pending"]: fail(w, f"pending {pending_of(files[netdev])}, wg-quick {wq['pending']}")
        # [Match], [Network]
        if only_section(nw, "Match", w).one("Name") != ifname: fail(w, "[Match] Name= is not the interface")
        nets = sections_named(nw, "Network")
        addrs = set(sum((n.all("Address") for n in nets), []))
        if addrs != set(entry["addresses"]) or addrs != wq["addresses"]:
            fail(w, f"Address= {sorted(addrs)}, addresses --json {entry['addresses']}, wg-quick {sorted(wq['addresses'])}")
        checked["addresses"] += len(addrs)
        fwd = {v for n in nets for v in n.all("IPForward")}
        if len(fwd) > 1: fail(w, f"IPForward= given as {fwd}")
        forwards |= fwd
        # [Route]: what wg-quick would route, less the interface's own subnets.
        own = [ipaddress.ip_interface(a).network for a in entry["addresses"]]
        want = {}
        for p in wq["peers"].values():
            for a in p["allowed"]:
                net = ipaddress.ip_network(a)
                if not any(net.version == o.version and net.subnet_of(o) for o in own):
                    want[a] = wq["src"].get(a)
        routes = {}
        for r in sections_named(nw, "Route"):
            routes[str(ipaddress.ip_network(r.one("Destination")))] = r.one("PreferredSource")
        if routes != want: fail(w, f"routes {routes}, want {want}")
        # An allowed 0.0.0.0/0 or ::/0 is what wg-quick routes by policy (its Table = auto): the
        # device's mark, a table of that number holding the default route, and per family the
        # rules `not fwmark M table M` and `table main suppress_prefixlength 0` before it.
        mark = s.one("FirewallMark")
        defaults = {a for a in want if ipaddress.ip_network(a).prefixlen == 0}
        tables = {str(ipaddress.ip_network(r.one("Destination"))): r.one("Table") for r in sections_named(nw, "Route")}
        if bool(mark) != bool(defaults): fail(w, f"FirewallMark={mark} with default routes {sorted(defaults)}")
        for a, t in tables.items():
            if t != (mark if a in defaults else None): fail(w, f"route {a} in Table={t}, FirewallMark={mark}")
        rules = sorted(tuple(sorted(r.entries)) for r in sections_named(nw, "RoutingPolicyRule"))
        want_rules = sorted(
            tuple(sorted(r)) for a in defaults for fam in [f"ipv{ipaddress.ip_network(a).version}"] for r in (
                [("Family", fam), ("Priority", "30566"), ("SuppressPrefixLength", "0"), ("Table", "main")],
                [("Family", fam), ("FirewallMark", mark), ("InvertRule", "yes"), ("Priority", "30567"), ("Table", mark)]))
        if rules != want_rules: fail(w, f"routing policy rules {rules}, want {want_rules}")
        checked["routes"] += len(routes)
        if PLAN:
            check_plan(w, ifname, key_file, nd, peers, addrs, routes, s, plan_cache[(cfg, node)][0].get(ifname))
    if PLAN:
        want = plan_cache[(cfg, node)][1]
        want_fwd = {frozenset(): set(), frozenset({"ipv4"}): {"ipv4"}, frozenset({"ipv6"}): {"ipv6"},
                    frozenset({"ipv4", "ipv6"}): {"yes"}}[frozenset(want)]
        if fleets and forwards != want_fwd: fail(where, f"IPForward={forwards}, plan sets forwarding for {sorted(want)}")
    if set(files) != {f"50-wg-fleet-{n}.{e}" for n in {re.match(r"50-wg-fleet-(.+)\.net", f).group(1) for f in files} for e in ("netdev", "network")} \
            or len(files) != 2 * len(fleets):
        fail(where, f"files {sorted(files)} for fleets {sorted(fleets)}")
    checked["nodes"] += 1


plan_cache = {}


def check_plan(w, ifname, key_file, nd, peers, addrs, routes, wgsec, p):
    if p is None or not p["created"]:
        fail(w, "plan in an empty namespace does not create this device")
        return
    if p["key_file"] != key_file: fail(w, f"PrivateKeyFile={key_file}, plan generates {p['key_file']}")
    if p["port"] != wgsec.one("ListenPort"): fail(w, f"ListenPort={wgsec.one('ListenPort')}, plan {p['port']}")
    if p["mtu"] != only_section(nd, "NetDev", w).one("MTUBytes"): fail(w, f"MTUBytes vs plan mtu {p['mtu']}")
    if p["addresses"] != addrs: fail(w, f"Address= {sorted(addrs)}, plan {sorted(p['addresses'])}")
    if p["routes"] != routes: fail(w, f"routes {routes}, plan {p['routes']}")
    by_name = {v["name"]: (k, v) for k, v in peers.items()}
    if set(by_name) != set(p["peers"]): fail(w, f"peers {sorted(by_name)}, plan {sorted(p['peers'])}")
    for name, pp in p["peers"].items():
        if name not in by_name: continue
        key, v = by_name[name]
        if not key.startswith(pp["key8"]) or v["allowed"] != pp["allowed"] or v["keepalive"] != pp["keepalive"] \
                or (pp["endpoint"] and pp["endpoint"] != v["endpoint"]):
            fail(w, f"peer {name}: networkd {key} {v}, plan {pp}")


# --- systemd-networkd as the reader -------------------------------------------------------------

# networkd drops to this user before it reads PrivateKeyFile= (systemd.netdev(5)).
NETWORK_GID = None


def give_to_networkd(path, mode):
    os.chown(path, 0, NETWORK_GID)
    os.chmod(path, mode)


def networkd_reads(cfg, node, state_dir, tmp, label):
    """Runs systemd-networkd on the node's files; returns its complaints about them."""
    where = f"{label} {node}"
    out = os.path.join(tmp, "networkd")
    shutil.rmtree(out, ignore_errors=True)
    run([BIN, "-c", cfg, "--dropin-dir", "/nonexistent", "--node", node, "--state-dir", state_dir, "render", "networkd",
         "--dir", out], where)
    netdevs = []
    for name in sorted(os.listdir(out)):
        if not name.endswith(".netdev"):
            continue
        nd = parse_ini(open(os.path.join(out, name)).read(), name)
        ifname = only_section(nd, "NetDev", where).one("Name")
        key = only_section(nd, "WireGuard", where).one("PrivateKeyFile")
        netdevs.append(ifname)
        with open(key, "w") as f:  # a throwaway key: any 32 bytes are a private key
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        give_to_networkd(key, 0o640)
    # Only the node's files in every directory networkd reads; its state in a tmpfs of its own. It
    # runs chrooted into a root of its own whose "/" is 0755 (the machine's directories bound into
    # it): networkd drops to systemd-network, which must be able to watch "/" for the D-Bus socket,
    # and a root made by debootstrap into a mktemp directory is 0700.
    script = ("set -e; mount --make-rprivate /; mount -t tmpfs -o mode=0755 none /run/systemd; R=/run/systemd/root; mkdir $R; "
              "for d in usr etc var tmp dev proc sys; do mkdir $R/$d; mount --rbind /$d $R/$d; done; "
              "for l in bin sbin lib lib32 lib64 libx32; do if [ -L /$l ]; then ln -s \"$(readlink /$l)\" $R/$l; "
              "elif [ -d /$l ]; then mkdir $R/$l; mount --rbind /$l $R/$l; fi; done; "
              f"mkdir -p $R/run/systemd/network; cp {out}/* $R/run/systemd/network/; "
              "for d in /etc/systemd/network /usr/lib/systemd/network /usr/local/lib/systemd/network; do "
              "if [ -d $R$d ]; then mount -t tmpfs none $R$d; fi; done; "
              f"exec chroot $R {NETWORKD}")
    env = dict(os.environ, SYSTEMD_LOG_TARGET="console", SYSTEMD_LOG_LEVEL="debug")
    p = subprocess.Popen(["unshare", "--mount", "--net", "--", "sh", "-c", script], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    log, lines = [], queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in p.stdout] + [lines.put(None)], daemon=True)
    reader.start()
    # Every file is loaded before networkd enumerates the links; the deadline only keeps a networkd
    # that never gets there from hanging the test, and fails it.
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None: break
            log.append(line.rstrip("\n"))
            if line.startswith("Enumeration completed"): break
    finally:
        if p.poll() is None: p.terminate()  # unshare and sh exec networkd: p is networkd
        p.wait()
        reader.join()
        while not lines.empty():
            line = lines.get()
            if line is not None: log.append(line.rstrip("\n"))
    # A complaint about a file names it (file:line: ...); one about a device starts with its name.
    # Creating the device is the kernel's part: without WireGuard it fails with EOPNOTSUPP.
    complaints = [l for l in log if "50-wg-fleet-" in l or "private key" in l.lower() or any(
        l.startswith(ifname + ": ") and re.search(r"ignor|[Ff]ail|[Ii]nvalid", l)
        and not l.endswith("netdev could not be created: Operation not supported") for ifname in netdevs)]
    if not any(l.startswith("Enumeration completed") for l in log):
        complaints.append("networkd never finished loading: " + " | ".join(log[-5:]))
    for ifname in netdevs:
        if f'{ifname}: loaded "wireguard"' not in log:
            complaints.append(f"networkd did not load the netdev {ifname}")
    checked["networkd"] += 1
    return complaints, log


# --- every example -----------------------------------------------------------------------------

def keyed_copy(path, doc, plan_json, tmp):
    """The example with keys_dir in tmp holding a random public key for every member without one."""
    keys = os.path.join(tmp, "keys")
    for fleet, fp in plan_json["fleets"].items():
        f = doc["fleets"][fleet] or {}
        for node in fp["nodes"]:
            m = (f.get("controllers") or {}).get(node) or (f.get("peers") or {}).get(node) or {}
            if m.get("public_key") or (node == f.get("server", "server") and f.get("server_public_key")):
                continue
            os.makedirs(os.path.join(keys, fleet), exist_ok=True)
            with open(os.path.join(keys, fleet, node + ".pub"), "w") as out:
                out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    text = open(path).read()
    line = f"keys_dir: {keys}"
    if re.search(r"^keys_dir:", text, re.M):
        text = re.sub(r"^keys_dir:.*$", line, text, flags=re.M)
    else:  # after the document start marker, if the file has one
        text = re.sub(r"\A((?:#.*\n|\s*\n)*(?:---\s*\n)?)", lambda m: m.group(1) + line + "\n", text, count=1)
    copy = os.path.join(tmp, os.path.basename(path))
    with open(copy, "w") as out:
        out.write(text)
    return copy


def main():
    examples = sorted(glob.glob(os.path.join(SRC, "examples", "*.yaml")))
    if ONLY: examples = [e for e in examples if os.path.basename(e) == ONLY]
    for path in examples:
        doc = yaml.safe_load(open(path))
        plan_json = json.loads(run([BIN, "-c", path, "--dropin-dir", "/nonexistent", "addresses", "--json"], path))
        with tempfile.TemporaryDirectory(prefix="wgf-networkd-") as tmp:
            state_dir = os.path.join(tmp, "state")
            os.mkdir(state_dir)
            if SYSTEMD:  # networkd enters the state directory as systemd-network
                os.chmod(tmp, 0o711)
                give_to_networkd(state_dir, 0o710)
            for label, cfg in ((os.path.basename(path), path),
                               (os.path.basename(path) + " (keyed)", keyed_copy(path, doc, plan_json, tmp))):
                nodes = sorted({n for fp in plan_json["fleets"].values() for n in fp["nodes"]})
                for node in nodes:
                    try:
                        if SYSTEMD:
                            complaints, log = networkd_reads(cfg, node, state_dir, tmp, label)
                            for c in complaints: fail(f"{label} {node}", "systemd-networkd: " + c)
                            if "-v" in sys.argv: print("\n".join(log))
                            continue
                        if PLAN: plan_cache[(cfg, node)] = plan_ops(cfg, node, state_dir, f"{label} {node}")
                        check_node(cfg, doc, plan_json, node, state_dir, label)
                    except (RuntimeError, ValueError) as e:
                        fail(f"{label} {node}", str(e))
    for f in failures:
        print("FAIL", f)
    if SYSTEMD:
        print(f"{len(examples)} examples, {checked['networkd']} node renders read by systemd-networkd; {len(failures)} failures")
        return 1 if failures or checked["networkd"] == 0 else 0
    print(f"{len(examples)} examples, {checked['nodes']} node renders, {checked['peers']} peers, "
          f"{checked['addresses']} addresses, {checked['routes']} routes compared{' (and with plan --json)' if PLAN else ''}; "
          f"{len(failures)} failures")
    return 1 if failures or checked["nodes"] == 0 else 0


if __name__ == "__main__":
    if (PLAN or SYSTEMD) and os.geteuid() != 0:
        print("SKIP: --plan and --systemd run in new namespaces (root)")
        sys.exit(77)
    if SYSTEMD:
        if not os.access(NETWORKD, os.X_OK):
            print(f"FAIL: {NETWORKD} is missing (Debian package systemd)")
            sys.exit(1)
        NETWORK_GID = grp.getgrnam("systemd-network").gr_gid
    sys.exit(main())
