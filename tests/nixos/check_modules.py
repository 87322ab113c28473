#!/usr/bin/env python3
"""`wg-fleet render nixos` checked by Nix itself and against wg-fleet's other outputs.

For every example (examples/*.yaml, and tests/nixos/fleets/*.yaml for shapes the examples do
not have) and every node: the module parses (nix-instantiate --parse),
evaluates (nix-instantiate --eval --strict --json) against stub config/lib/pkgs, sets only
NixOS 24.05 options from ALLOWED below, each with a value of its type, and says what wg-fleet
says elsewhere:

  values  addresses from `addresses --json`; interfaces, listen ports, MTU, key file, peers
          (keys, allowed IPs, endpoints, keepalive) and routes with a source from
          `render wg-quick`; firewall ports from the listen ports; hosts from `render hosts`;
          `render nixos --all` writes the same modules and a default.nix naming them.
  plan    (root: a fresh network namespace each) sysctls, firewall rules, routes and files from
          `plan --json`, the desired state the reconciler applies; the nftables table as
          NixOS loads it passes `nft --check`.

Examples whose members publish keys through keys_dir are also checked with a keys_dir holding
a key for every member (so hub and multi-controller fleets have peers), a state_dir whose name
needs escaping in Nix, and private keys present (which must never reach the module).

Usage: check_modules.py WG_FLEET SOURCE_DIR values|plan
"""
import base64
import glob
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

# NixOS 24.05 options a module may set, each with its type there. `<name>` is an attribute name
# of the user's choosing (attrsOf), `*` an element of a list of submodules. Any other path the
# module sets, or a value its option's type refuses, fails.
def is_str(v): return isinstance(v, str)
def is_int(v): return isinstance(v, int) and not isinstance(v, bool)
def is_bool(v): return isinstance(v, bool)
def is_port(v): return is_int(v) and 0 <= v <= 65535
def is_abs_path(v): return is_str(v) and v.startswith("/")  # types.path takes an absolute string
def list_of(check): return lambda v: isinstance(v, list) and all(check(x) for x in v)
def one_of(*values): return lambda v: v in values
def is_sysctl(v): return is_bool(v) or is_int(v) or is_str(v)


ALLOWED = {
    "networking.wireguard.interfaces.<name>.ips": list_of(is_str),
    "networking.wireguard.interfaces.<name>.listenPort": is_int,
    "networking.wireguard.interfaces.<name>.privateKeyFile": is_abs_path,
    "networking.wireguard.interfaces.<name>.generatePrivateKeyFile": is_bool,
    "networking.wireguard.interfaces.<name>.mtu": is_int,
    "networking.wireguard.interfaces.<name>.allowedIPsAsRoutes": is_bool,
    "networking.wireguard.interfaces.<name>.table": is_str,
    "networking.wireguard.interfaces.<name>.preSetup": is_str,
    "networking.wireguard.interfaces.<name>.postSetup": is_str,
    "networking.wireguard.interfaces.<name>.postShutdown": is_str,
    "networking.wireguard.interfaces.<name>.fwMark": is_str,
    "networking.wireguard.interfaces.<name>.peers.*.publicKey": is_str,
    "networking.wireguard.interfaces.<name>.peers.*.allowedIPs": list_of(is_str),
    "networking.wireguard.interfaces.<name>.peers.*.endpoint": is_str,
    "networking.wireguard.interfaces.<name>.peers.*.persistentKeepalive": is_int,
    "networking.wireguard.interfaces.<name>.peers.*.dynamicEndpointRefreshSeconds": is_int,
    "networking.wireguard.interfaces.<name>.peers.*.presharedKeyFile": is_str,
    "networking.firewall.allowedUDPPorts": list_of(is_port),
    "networking.firewall.extraForwardRules": is_str,
    "networking.nat.enable": is_bool,
    "networking.nat.internalInterfaces": list_of(is_str),
    "networking.nat.externalInterface": is_str,
    "networking.nat.forwardPorts": list_of(lambda v: isinstance(v, dict)),
    "networking.nftables.enable": is_bool,
    "networking.nftables.tables.<name>.family": one_of("ip", "ip6", "inet", "arp", "bridge", "netdev"),
    "networking.nftables.tables.<name>.content": is_str,
    "boot.kernel.sysctl.<name>": is_sysctl,
    "networking.hosts.<name>": list_of(is_str),
    "networking.interfaces.<name>.ipv4.routes": list_of(lambda v: isinstance(v, dict)),
    "networking.interfaces.<name>.ipv6.routes": list_of(lambda v: isinstance(v, dict)),
    "environment.etc.<name>.text": is_str,
}

# The stub arguments: lib's mkIf and mkDefault build the same values as nixpkgs' lib, which the
# checker resolves as the module system would; config holds what the module may read.
STUB = """{ module, filterForward }:
let
  lib = {
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkDefault = content: { _type = "override"; priority = 1000; inherit content; };
  };
  config = { networking.firewall.filterForward = filterForward; };
in import module { inherit config lib; pkgs = { }; }
"""

failures = []


def fail(where, msg):
    failures.append(f"{where}: {msg}")
    print(f"FAIL {where}: {msg}", file=sys.stderr)


def run(args, env=None, input_text=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env, input=input_text)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


class Nix:
    def __init__(self, tmp):
        home = os.path.join(tmp, "nix-home")
        os.makedirs(home)
        # Offline and private: no daemon, no configuration of the machine's, store and state under
        # the test's directory (evaluation builds nothing).
        self.env = dict(os.environ, HOME=home, NIX_STATE_DIR=os.path.join(home, "state"),
                        NIX_STORE_DIR=os.path.join(home, "store"), NIX_LOG_DIR=os.path.join(home, "log"),
                        NIX_CONF_DIR=home, NIX_REMOTE="")
        self.stub = os.path.join(tmp, "stub.nix")
        with open(self.stub, "w") as f:
            f.write(STUB)

    def parse(self, path):
        run(["nix-instantiate", "--parse", path], env=self.env)

    def eval(self, path, filter_forward=True, attr=None):
        expr = path if attr is None else f"(import {path}).{json.dumps(attr)}"
        args = ["nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", "--option", "sandbox", "false",
                "--arg", "module", expr, "--arg", "filterForward", "true" if filter_forward else "false", self.stub]
        return json.loads(run(args, env=self.env))

    def eval_expr(self, expr):
        return json.loads(run(["nix-instantiate", "--eval", "--strict", "--json", "--readonly-mode", "--expr", expr],
                              env=self.env))


def resolve(v):
    """The module system's view: mkIf false drops a definition, mkIf true and mkDefault unwrap."""
    if isinstance(v, dict):
        t = v.get("_type")
        if t == "if":
            return resolve(v["content"]) if v["condition"] else None
        if t == "override":
            return resolve(v["content"])
        out = {}
        for k, x in v.items():
            r = resolve(x)
            if r is not None:
                out[k] = r
        return out
    if isinstance(v, list):
        return [resolve(x) for x in v]
    return v


def allowed_tree():
    tree = {}
    for p, check in ALLOWED.items():
        node = tree
        for part in p.split("."):
            if part == "*":
                node["$option"] = lambda v: isinstance(v, list)  # a list of submodules is itself the option
            node = node.setdefault(part, {})
        node["$option"] = check
    return tree


def check_paths(where, value, tree, path=""):
    if tree.get("$option"):
        if not tree["$option"](value):
            return fail(where, f"{path} = {json.dumps(value)[:80]} is not of its option's type")
        if "*" in tree:
            if not isinstance(value, list):
                return fail(where, f"{path} is not a list")
            for i, el in enumerate(value):
                check_paths(where, el, tree["*"], f"{path}.{i}")
        return
    if not isinstance(value, dict):
        return fail(where, f"{path} is set, but is no NixOS option")
    for k, v in value.items():
        sub = tree.get(k, tree.get("<name>"))
        p = f"{path}.{k}" if path else k
        if sub is None:
            fail(where, f"{p} is not a NixOS 24.05 option the module may set")
        else:
            check_paths(where, v, sub, p)


def get(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def parse_wg_quick(text):
    """Interface name, addresses, listen port, MTU, key path, routes with a source, peers."""
    out = {"addresses": [], "listen_port": None, "mtu": None, "key_file": None, "private_key": None,
           "src_routes": set(), "peers": {}}
    m = re.search(r"^# wg-quick config of \S+ in fleet \S+ \(interface (\S+)\)", text, re.M)
    out["interface"] = m.group(1)
    peer = None
    for line in text.splitlines():
        if line == "[Peer]":
            peer = {"allowed": set(), "endpoint": None, "keepalive": None}
            continue
        m = re.match(r"^(\w+) = (.*)$", line)
        if not m:
            continue
        k, v = m.groups()
        if peer is None:
            if k == "Address":
                out["addresses"] = v.split(", ")
            elif k == "ListenPort":
                out["listen_port"] = int(v)
            elif k == "MTU":
                out["mtu"] = int(v)
            elif k == "PrivateKey":
                out["private_key"] = v
            elif k == "PostUp" and v.startswith("wg set %i private-key "):
                out["key_file"] = v[len("wg set %i private-key "):]
            elif k == "PostUp":
                r = re.match(r"ip -[46] route change (\S+) dev %i src (\S+)$", v)
                out["src_routes"].add((r.group(1), r.group(2)))
        else:
            if k == "PublicKey":
                out["peers"][v] = peer
            elif k == "AllowedIPs":
                peer["allowed"] = set(v.split(", "))
            elif k == "Endpoint":
                peer["endpoint"] = v
            elif k == "PersistentKeepalive":
                peer["keepalive"] = int(v)
    return out


def post_setup_routes(iface, tables=None):
    """(dst, dev, src) of the `ip route replace` lines of an interface's postSetup; each route's
    table (None: main) into `tables` when given. `ip rule` lines are post_setup_rules'."""
    routes = set()
    for line in (iface.get("postSetup") or "").splitlines():
        w = shlex.split(line)  # as the shell running postSetup splits it
        table = None
        if len(w) >= 2 and w[-2] == "table":
            table, w = w[-1], w[:-2]
        if w[:4] in (["ip", "-4", "route", "replace"], ["ip", "-6", "route", "replace"]) and w[5:6] == ["dev"] and len(w) in (7, 9):
            routes.add((w[4], w[6], w[8] if len(w) == 9 and w[7] == "src" else None))
            if tables is not None: tables[w[4]] = table
        elif w[:4] in (["ip", "-4", "rule", "add"], ["ip", "-6", "rule", "add"]):
            pass
        elif line.strip():
            raise AssertionError(f"postSetup line not understood: {line!r}")
    return routes


def post_setup_rules(iface, key="postSetup", verb="add"):
    """The `ip rule VERB` lines of an interface's postSetup (or postShutdown), as word tuples."""
    out = set()
    for line in (iface.get(key) or "").splitlines():
        w = shlex.split(line)
        if w[2:4] == ["rule", verb]: out.add(tuple(w[:3] + w[4:]))
    return out


def check_exit_node(where, name, iface, peers):
    """An allowed 0.0.0.0/0 or ::/0 is routed by policy as wg-quick does with Table = auto: the
    device's mark, a table of that number holding the default route (the module's routes stay in
    main), and per family `not fwmark M table M` and `table main suppress_prefixlength 0` before
    it; postShutdown removes the same rules."""
    defaults = {a for p in peers.values() for a in p["allowed"] if ipaddress.ip_network(a).prefixlen == 0}
    mark = iface.get("fwMark")
    if bool(mark) != bool(defaults):
        fail(where, f"{name}: fwMark {mark!r} with default allowed IPs {sorted(defaults)}")
    if not defaults: return
    if iface.get("allowedIPsAsRoutes") is not False:
        fail(where, f"{name}: an exit node needs allowedIPsAsRoutes = false (0/0 must not reach the main table)")
    table = str(int(mark, 0))
    tables = {}
    post_setup_routes(iface, tables)
    for a in defaults:
        if tables.get(a) != table: fail(where, f"{name}: default route {a} in table {tables.get(a)}, want {table}")
    for a, t in tables.items():
        if a not in defaults and t is not None: fail(where, f"{name}: route {a} in table {t}, want main")
    want = set()
    for a in defaults:
        fam = f"-{ipaddress.ip_network(a).version}"
        want.add(("ip", fam, "rule", "priority", "30566", "table", "main", "suppress_prefixlength", "0", "protocol", "87"))
        want.add(("ip", fam, "rule", "priority", "30567", "not", "fwmark", mark, "table", table, "protocol", "87"))
    if post_setup_rules(iface) != want: fail(where, f"{name}: postSetup rules {post_setup_rules(iface)}, want {want}")
    if post_setup_rules(iface, "postShutdown", "del") != want:
        fail(where, f"{name}: postShutdown rules {post_setup_rules(iface, 'postShutdown', 'del')}, want {want}")


def covered(prefix, ips):
    net = ipaddress.ip_network(prefix)
    return any(net.version == i.network.version and net.subnet_of(i.network) for i in map(ipaddress.ip_interface, ips))


class Example:
    """One fleet file as the test uses it (a copy, maybe with keys_dir and state_dir set)."""

    def __init__(self, wg, path, name, state_dir=None):
        self.wg, self.path, self.name, self.state_dir = wg, path, name, state_dir
        self.addresses = json.loads(self.cli("addresses", "--json"))["fleets"]
        self.nodes = sorted({n for f in self.addresses.values() for n in f["nodes"]})

    def cli(self, *args, node=None, state_dir=None):
        cmd = [self.wg, "-c", self.path, "-q"]
        if node:
            cmd += ["--node", node]
        if state_dir or self.state_dir:
            cmd += ["--state-dir", state_dir or self.state_dir]
        return run(cmd + list(args))

    def fleets_of(self, node):
        return [f for f, fp in self.addresses.items() if node in fp["nodes"]]


def check_values(nix, ex, node, module_path, ev):
    where = f"{ex.name} {node}"
    ifaces = get(ev, "networking", "wireguard", "interfaces", default={})
    seen, ports = set(), set()
    for fleet in ex.fleets_of(node):
        wq = parse_wg_quick(ex.cli("render", "wg-quick", "--fleet", fleet, node=node))
        name = wq["interface"]
        seen.add(name)
        iface = ifaces.get(name)
        if iface is None:
            fail(where, f"no networking.wireguard.interfaces.{name} for fleet {fleet}")
            continue
        if iface.get("ips") != ex.addresses[fleet]["nodes"][node]["addresses"]:
            fail(where, f"{name}.ips {iface.get('ips')} != addresses --json {ex.addresses[fleet]['nodes'][node]['addresses']}")
        if iface.get("ips") != wq["addresses"]:
            fail(where, f"{name}.ips {iface.get('ips')} != wg-quick Address {wq['addresses']}")
        if iface.get("listenPort") != wq["listen_port"]:
            fail(where, f"{name}.listenPort {iface.get('listenPort')} != wg-quick ListenPort {wq['listen_port']}")
        if wq["listen_port"]:
            ports.add(wq["listen_port"])
        if iface.get("mtu") != wq["mtu"]:
            fail(where, f"{name}.mtu {iface.get('mtu')} != wg-quick MTU {wq['mtu']}")
        if "privateKey" in iface:
            fail(where, f"{name} sets privateKey: the key would be in the Nix store")
        if wq["key_file"] is not None and iface.get("privateKeyFile") != wq["key_file"]:
            fail(where, f"{name}.privateKeyFile {iface.get('privateKeyFile')!r} != the key path {wq['key_file']!r}")
        peers = {}
        for p in iface.get("peers", []):
            peers[p["publicKey"]] = {"allowed": set(p["allowedIPs"]), "endpoint": p.get("endpoint"),
                                     "keepalive": p.get("persistentKeepalive")}
        if peers != wq["peers"]:
            fail(where, f"{name}.peers differ from wg-quick's:\n  nixos    {peers}\n  wg-quick {wq['peers']}")
        # Routes: a route with a source is in postSetup, with allowedIPsAsRoutes off; otherwise
        # NixOS routes every allowed IP, and postSetup routes none.
        routes = post_setup_routes(iface)
        check_exit_node(where, name, iface, peers)
        if iface.get("fwMark"):
            pass  # its routes: check_exit_node
        elif wq["src_routes"]:
            if iface.get("allowedIPsAsRoutes") is not False:
                fail(where, f"{name}: routes with a source, but allowedIPsAsRoutes is not false")
            have = {(d, s) for d, dev, s in routes if s and dev == name}
            if have != wq["src_routes"]:
                fail(where, f"{name}: postSetup routes with a source {have} != wg-quick's {wq['src_routes']}")
            dsts = {d for d, _, _ in routes}
            for p in peers.values():
                for a in p["allowed"]:
                    if a not in dsts and not covered(a, iface["ips"]):
                        fail(where, f"{name}: allowed IP {a} is neither routed in postSetup nor in the interface's subnets")
        elif iface.get("allowedIPsAsRoutes") is not True or routes:
            fail(where, f"{name}: no route needs a source, so allowedIPsAsRoutes must route the allowed IPs")
    if set(ifaces) != seen:
        fail(where, f"interfaces {sorted(ifaces)} != the node's fleets' interfaces {sorted(seen)}")
    got_ports = set(get(ev, "networking", "firewall", "allowedUDPPorts", default=[]))
    if got_ports != ports:
        fail(where, f"allowedUDPPorts {sorted(got_ports)} != the listen ports {sorted(ports)}")
    hosts = {(a, n) for a, names in get(ev, "networking", "hosts", default={}).items() for n in names}
    want = set()
    for line in ex.cli("render", "hosts", node=node).splitlines()[1:]:
        a, n = line.split(" ", 1)
        want.add((a, n))
    if hosts != want:
        fail(where, f"networking.hosts {sorted(hosts)} != render hosts {sorted(want)}")


def plan_ops(ex, node, tmp):
    """The plan against a fresh network namespace with forwarding off: every desired item is an op."""
    state = tempfile.mkdtemp(dir=tmp, prefix="state-")
    script = ('sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 && '
              'exec "$@"')
    cmd = ["unshare", "--net", "sh", "-c", script, "sh", ex.wg, "-c", ex.path, "-q", "--node", node,
           "--state-dir", state, "--no-cache", "plan", "--json"]
    return json.loads(run(cmd))["ops"]


def nft_check(table_family, table_name, content):
    """NixOS's nftables service loads a table as below; `nft --check` in a fresh namespace."""
    ruleset = (f"table {table_family} {table_name}\ndelete table {table_family} {table_name}\n"
               f"table {table_family} {table_name} {{\n{content}\n}}\n")
    p = subprocess.run(["unshare", "--net", "nft", "--check", "-f", "-"], input=ruleset, capture_output=True, text=True)
    return p.returncode, p.stderr


def check_plan(ex, node, ev, text, tmp):
    where = f"{ex.name} {node} (plan)"
    ops = plan_ops(ex, node, tmp)
    sysctls, rules, routes, files, policy_rules = {}, {}, set(), set(), set()
    for op in ops:
        line = op["line"]
        if op["kind"] == "set_sysctl":
            m = re.match(r"^~ sysctl (\S+) .* -> (\S+)$", line)
            key, value = m.groups()
            # accept_ra follows the machine's interfaces (plan/sysctls.hpp), promote_secondaries is
            # left out on purpose (the module says why).
            if not key.endswith("/accept_ra") and not key.endswith("/promote_secondaries"):
                sysctls[key] = value
        elif op["kind"] == "add_rule":
            # Forwards are elements of the DNAT maps ("firewall map element"), the rest rules.
            m = re.match(r"^\+ firewall (?:rule|map element) (\S+): (.*)$", line)
            rules[m.group(1)] = m.group(2)
        elif op["kind"] == "add_route":
            m = re.match(r"^\+ route (\S+) dev (\S+)(?: src (\S+))?(?: table \d+)?$", line)
            routes.add(m.groups())
        elif op["kind"] == "add_policy_rule":
            r = op["policy_rule"]
            w = ["ip", "-" + r["family"][-1], "rule", "priority", str(r["priority"])]
            if r["fwmark"]: w += (["not"] if r["invert"] else []) + ["fwmark", hex(r["fwmark"])]
            w += ["table", "main" if r["table"] == 254 else str(r["table"])]
            if r["suppress_prefixlength"] is not None: w += ["suppress_prefixlength", str(r["suppress_prefixlength"])]
            policy_rules.add(tuple(w + ["protocol", "87"]))
        elif op["kind"] == "write_file":
            files.add(re.match(r"^[+~] file (\S+)", line).group(1))

    got = {k.replace(".", "/"): str(v) for k, v in get(ev, "boot", "kernel", "sysctl", default={}).items()}
    if got != sysctls:
        fail(where, f"boot.kernel.sysctl {got} != the plan's {sysctls}")

    got_rules = {r for iface in get(ev, "networking", "wireguard", "interfaces", default={}).values() for r in post_setup_rules(iface)}
    if got_rules != policy_rules:
        fail(where, f"postSetup rules {got_rules} != the plan's {policy_rules}")
    want_udp, want_fwd, want_dnat, want_masq = set(), set(), set(), set()
    for rid, desc in rules.items():
        if m := re.match(r"^accept udp dport (\d+)$", desc):
            want_udp.add(int(m.group(1)))
        elif m := re.match(r"^forward iif (\S+)(?: oif (\S+))? accept$", desc):
            want_fwd.add((m.group(1), m.group(2), rid))
        elif m := re.match(r"^dnat (tcp|udp) dport (\d+) to (\S+)$", desc):
            want_dnat.add((m.group(1), int(m.group(2)), m.group(3), rid))
        elif m := re.match(r"^masquerade DNATed connections out of (\S+)$", desc):
            want_masq.add((m.group(1), rid))
        elif m := re.match(r"^forward iif (\S+) saddr (\S+) accept$", desc):
            want_fwd.add((m.group(1), "saddr " + m.group(2), rid))
        elif m := re.match(r"^masquerade saddr (\S+) out of any interface but (.+)$", desc):
            want_masq.add(("saddr " + m.group(1) + " not " + m.group(2), rid))
        else:
            fail(where, f"plan rule not understood: {rid}: {desc}")
    got_udp = set(get(ev, "networking", "firewall", "allowedUDPPorts", default=[]))
    if got_udp != want_udp:
        fail(where, f"allowedUDPPorts {sorted(got_udp)} != the plan's accept rules {sorted(want_udp)}")
    got_fwd = set()
    for line in (get(ev, "networking", "firewall", "extraForwardRules") or "").splitlines():
        m = re.match(r'^iifname "([^"]+)"(?: oifname "([^"]+)")? accept comment "([^"]+)"$', line)
        if x := re.match(r'^iifname "([^"]+)" ip6? saddr (\S+) accept comment "([^"]+)"$', line):
            m = x
            got_fwd.add((x.group(1), "saddr " + x.group(2), x.group(3)))
            continue
        if not m:
            fail(where, f"extraForwardRules line not understood: {line!r}")
            continue
        got_fwd.add(m.groups())
    if got_fwd != want_fwd:
        fail(where, f"extraForwardRules {got_fwd} != the plan's forward rules {want_fwd}")
    table = get(ev, "networking", "nftables", "tables", "wg-fleet")
    got_dnat, got_masq = set(), set()
    if table is not None:
        for line in table["content"].splitlines():
            line = line.strip()
            if m := re.match(r'^meta nfproto ipv[46] (tcp|udp) dport (\d+) dnat ip6? to (\S+) comment "([^"]+)"$', line):
                got_dnat.add((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
            elif m := re.match(r'^oifname "([^"]+)" ct status dnat masquerade comment "([^"]+)"$', line):
                got_masq.add(m.groups())
            elif m := re.match(r'^ip6? saddr (\S+) oifname != \{ (.+) \} masquerade comment "([^"]+)"$', line):
                ifs = ", ".join(n.strip('"') for n in m.group(2).split(", "))
                got_masq.add(("saddr " + m.group(1) + " not " + ifs, m.group(3)))
        rc, err = nft_check(table["family"], "wg-fleet", table["content"])
        if rc != 0:
            fail(where, f"nft --check rejects the table: {err.strip()}")
        if get(ev, "networking", "nftables", "enable") is not True:
            fail(where, "a nftables table without networking.nftables.enable")
    if got_dnat != want_dnat:
        fail(where, f"nftables DNAT {got_dnat} != the plan's {want_dnat}")
    if got_masq != want_masq:
        fail(where, f"nftables masquerade {got_masq} != the plan's {want_masq}")

    ifaces = get(ev, "networking", "wireguard", "interfaces", default={})
    for name, iface in ifaces.items():
        want = {r for r in routes if r[1] == name}
        if iface.get("allowedIPsAsRoutes"):
            allowed = {a for p in iface.get("peers", []) for a in p["allowedIPs"]}
            for dst, _, src in want:
                if src or dst not in allowed:
                    fail(where, f"{name}: plan route {dst} src {src} is not an allowed IP NixOS routes as it is")
            for a in allowed:
                if not any(dst == a for dst, _, _ in want) and not covered(a, iface["ips"]):
                    fail(where, f"{name}: NixOS routes {a}, which wg-fleet does not")
        elif post_setup_routes(iface) != want:
            fail(where, f"{name}: postSetup routes {post_setup_routes(iface)} != the plan's {want}")
    # Files: the hosts file is networking.hosts; the others are environment.etc under /etc, and
    # a comment elsewhere (NixOS has no option for them).
    etc = {"/etc/" + k for k in get(ev, "environment", "etc", default={})}
    hosts_file = yaml.safe_load(open(ex.path)).get("hosts_file", "/run/wg_fleet_hosts")
    others = {f for f in files if f != os.path.normpath(hosts_file)}
    want_etc = {f for f in others if f.startswith("/etc/")}
    if etc != want_etc:
        fail(where, f"environment.etc {sorted(etc)} != the plan's files under /etc {sorted(want_etc)}")
    for f in others - want_etc:
        if not re.search(r"^\s*# " + re.escape(f) + ":", text, re.M):
            fail(where, f"the plan writes {f}, which the module neither sets nor mentions")


def keyed_copy(src, tmp, name):
    """The example with a keys_dir holding a key for every member, a state_dir that needs escaping
    in Nix, and a private key in it for every fleet."""
    doc = yaml.safe_load(open(src))
    keys = os.path.join(tmp, name + "-keys")
    doc["keys_dir"] = keys
    state = os.path.join(tmp, name + ' state "q" ${x} \\ dir')
    doc["state_dir"] = state
    path = os.path.join(tmp, name + "-keyed.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    return path, keys, state


def random_key():
    return base64.b64encode(os.urandom(32)).decode()


def examples(src, wg, tmp):
    paths = sorted(glob.glob(os.path.join(src, "examples", "*.yaml")))
    paths += sorted(glob.glob(os.path.join(src, "tests", "nixos", "fleets", "*.yaml")))
    for path in paths:
        name = os.path.basename(path)[:-5]
        yield Example(wg, path, name)
        if "keys_dir" not in yaml.safe_load(open(path)):
            continue
        kpath, keys, state = keyed_copy(path, tmp, name)
        ex = Example(wg, kpath, name + " (keys published)")
        for fleet, fp in ex.addresses.items():
            os.makedirs(os.path.join(keys, fleet), exist_ok=True)
            for node in fp["nodes"]:
                with open(os.path.join(keys, fleet, node + ".pub"), "w") as f:
                    f.write(random_key() + "\n")
        yield ex
        # The same with this machine holding every fleet's private key: never in a module.
        os.makedirs(state, mode=0o700)
        secrets = []
        for fleet in ex.addresses:
            secrets.append(random_key())
            kf = os.path.join(state, fleet + ".key")
            with open(kf, "w") as f:
                f.write(secrets[-1] + "\n")
            os.chmod(kf, 0o600)
        for node in ex.nodes:
            text = ex.cli("render", "nixos", node=node)
            for s in secrets:
                if s in text:
                    fail(f"{ex.name} {node}", "a private key is in the module")


def check_readme(wg, src):
    """The README's NixOS section shows the output of the command it names."""
    text = open(os.path.join(src, "README.md")).read()
    m = re.search(r"^`wg-fleet (-c \S+ --node \S+ render nixos)`:\n\n```nix\n(.*?)```$", text, re.M | re.S)
    if not m:
        return fail("README.md", "no `wg-fleet ... render nixos` output in the NixOS section")
    out = subprocess.run([wg] + m.group(1).split(), capture_output=True, text=True, cwd=src).stdout
    if out != m.group(2):
        fail("README.md", f"the NixOS section's output is not what `wg-fleet {m.group(1)}` prints now")


def main():
    wg, src, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "plan" and os.geteuid() != 0:
        print("plan mode needs root (a network namespace per node)", file=sys.stderr)
        return 77
    tmp = tempfile.mkdtemp(prefix=f"wgf-nixos-{os.getpid()}-")
    try:
        nix = Nix(tmp)
        tree = allowed_tree()
        checked = 0
        for ex in examples(src, wg, tmp):
            outdir = os.path.join(tmp, re.sub(r"\W+", "_", ex.name))
            ex.cli("render", "nixos", "--all", outdir)
            index = os.path.join(outdir, "default.nix")
            nix.parse(index)
            mapping = nix.eval_expr(f"builtins.mapAttrs (n: p: builtins.baseNameOf (toString p)) (import {index})")
            if mapping != {n: n + ".nix" for n in ex.nodes}:
                fail(ex.name, f"default.nix maps {mapping}, not every node to NODE.nix")
            for node in ex.nodes:
                where = f"{ex.name} {node}"
                text = ex.cli("render", "nixos", node=node)
                module = os.path.join(outdir, node + ".nix")
                if open(module).read() != text:
                    fail(where, "render nixos --all wrote another module than render nixos --node")
                try:
                    nix.parse(module)
                    ev = resolve(nix.eval(index, attr=node))
                    off = resolve(nix.eval(module, filter_forward=False))
                except RuntimeError as e:
                    fail(where, str(e))
                    continue
                if get(off, "networking", "firewall", "extraForwardRules") is not None:
                    fail(where, "extraForwardRules set although filterForward is off")
                check_paths(where, ev, tree)
                if mode == "values":
                    check_values(nix, ex, node, module, ev)
                else:
                    check_plan(ex, node, ev, text, tmp)
                checked += 1
        if mode == "values":
            check_readme(wg, src)
        print(f"{checked} modules checked ({mode}), {len(failures)} failures")
        return 1 if failures or checked == 0 else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
