#!/usr/bin/env python3
"""The driver of tests/bench/bench_live.sh: wg-fleet on a 10,000-peer controller over
wireguard-go, side by side with `wg` on the same kind of device in the same run.

bench_live.sh checks the tools, builds the binary, makes the temporary directory and owns the
last-resort cleanup (a trap that removes every namespace listed in TMP/netns.list, after ending
the processes `ip netns pids` finds in them). This script creates those namespaces (listing each
one before it exists), measures, removes what it created as it goes, and prints a Markdown
report; --json also writes every figure to a file.

Figures (issue 3 = the live layer, issue 4 = the reconciler; the targets are reported, not
asserted):
  read     `wg show IF dump` vs `wg-fleet plan` (parse + render + read + diff: an upper bound of
           the read) and the UAPI `get=1` exchange alone in both (connect to close of the
           socket, from an strace that stops only on connect/close/sendto)
  load     `wg setconf` onto a fresh wireguard-go device vs `wg-fleet apply` onto a fresh empty
           wireguard-go device, and `wg-fleet apply` from nothing (it starts wireguard-go too)
  no-op    `wg-fleet apply` vs `wg syncconf IF FILE` with FILE = `wg showconf IF`
  one peer one peer's route edited: `wg-fleet apply` vs `wg syncconf` of a file with that one
           change vs `wg set IF peer KEY allowed-ips ...`; the peer ops in the journal and the
           peer sections of the UAPI set request are counted
  watch    `wg-fleet watch --interval 3600`: the YAML is replaced by rename (as editors do) with
           one peer's route changed; time from the rename until journal.log has that peer's op
  RSS      peak RSS (GNU time %M) of every wg-fleet command, VmHWM of the watch process
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "live_run.py")
SOCK_DIR = "/var/run/wireguard"


def joined_strace_lines(trace_path):
    """The lines of an `strace -f` log with every call whole: a call another thread interrupted
    is logged as "<unfinished ...>" and later "<... NAME resumed>"; this joins the two halves
    (keeping the start time)."""
    pending = {}
    pat_unfinished = re.compile(r"^(\d+)\s+(.*) <unfinished \.\.\.>$")
    pat_resumed = re.compile(r"^(\d+)\s+[\d.]+ <\.\.\. \w+ resumed>(.*)$")
    for line in open(trace_path, errors="replace"):
        line = line.rstrip("\n")
        m = pat_unfinished.match(line)
        if m:
            pending[m.group(1)] = m.group(2)
            continue
        m = pat_resumed.match(line)
        if m and m.group(1) in pending:
            yield f"{m.group(1)} {pending.pop(m.group(1))}{m.group(2)}"
            continue
        yield line


class Failed(Exception):
    pass


def log(msg):
    print(f"bench_live: {msg}", file=sys.stderr, flush=True)


def run(argv, check=True, capture=True, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=capture, text=True, **kw)
    if check and p.returncode != 0:
        err = (p.stderr or "").strip().splitlines()[-5:] if capture else []
        raise Failed(f"`{' '.join(argv)}` exited {p.returncode}" + ("".join("\n    " + l for l in err)))
    return p


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# ---- the fleet file ----------------------------------------------------------------------------

def parse_fleet(text):
    """The controllers and peers of a gen_fleet.py file: names, keys, the line of each route."""
    lines = text.splitlines(keepends=True)
    controllers, peers = [], []
    section, cur = None, None
    for i, line in enumerate(lines):
        if line.startswith("    controllers:"):
            section = "c"
            continue
        if line.startswith("    peers:"):
            section = "p"
            continue
        m = re.match(r"^      ([A-Za-z0-9_.-]+):\s*$", line)
        if m and section:
            cur = {"name": m.group(1), "key": None, "route": None, "route_line": None, "controller": None}
            (controllers if section == "c" else peers).append(cur)
            continue
        m = re.match(r"^        public_key: (\S+)\s*$", line)
        if m and cur:
            cur["key"] = m.group(1)
        m = re.match(r"^        controller: (\S+)\s*$", line)
        if m and cur:
            cur["controller"] = m.group(1)
        m = re.match(r"^        routes: \[([0-9./]+)\]\s*$", line)
        if m and cur:
            cur["route"] = m.group(1)
            cur["route_line"] = i
    return lines, controllers, peers


def moved_route(route):
    """10.A.B.0/24 -> 100.(64+A).B.0/24: outside every generated route, distinct for A < 64."""
    a, b = route.split(".")[1:3]
    return f"100.{64 + int(a) % 64}.{b}.0/24"


def write_by_rename(path, text, settle=0.0):
    """As editors do: a temporary file next to it (a name watch ignores), fsync, rename over.
    Returns the monotonic time of the rename."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".swp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if settle:
        time.sleep(settle)
    t = time.monotonic()
    os.rename(tmp, path)
    return t


def wait_in_file(path, needle, offset, timeout, proc, exited):
    """Polls the file every millisecond from offset until the needle appears; returns that
    monotonic time, or None after timeout. Raises exited() when proc ends first."""
    deadline = time.monotonic() + timeout
    buf = ""
    with open(path, errors="replace") as f:
        f.seek(offset)
        while time.monotonic() < deadline:
            chunk = f.read()
            if chunk:
                buf += chunk
                if needle in buf:
                    return time.monotonic()
            elif proc.poll() is not None:
                raise exited()
            else:
                time.sleep(0.001)
    return None


# ---- the bench ---------------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.bin = a.bin
        self.tmp = a.tmp
        self.ifname = a.ifname
        self.if2 = a.ifname + "s"  # the `wg setconf` device, beside the main one
        self.nslist = os.path.join(self.tmp, "netns.list")
        self.namespaces = []  # live ones
        self.children = []    # Popen objects of wireguard-go -f and watch
        self.r = {}           # every figure
        self.cfgdir = os.path.join(self.tmp, "cfg")
        self.cfg = os.path.join(self.cfgdir, "fleet.yaml")
        os.makedirs(self.cfgdir, exist_ok=True)
        self.nrun = 0

    # -- namespaces and processes --
    def ns_add(self, tag):
        name = f"{self.a.ns_prefix}{tag}"
        with open(self.nslist, "a") as f:
            f.write(name + "\n")
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    @staticmethod
    def ns_pids(ns):
        p = run(["ip", "netns", "pids", ns], check=False)
        return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []

    def wait_socket_gone(self, ifname, timeout=10):
        path = os.path.join(SOCK_DIR, ifname + ".sock")
        deadline = time.monotonic() + timeout
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        if os.path.exists(path):
            # Nothing of ours serves it any more (the namespace is empty): a stale socket of ours.
            os.unlink(path)

    def ns_del(self, ns):
        for ifn in (self.ifname, self.if2):
            run(["ip", "-n", ns, "link", "del", ifn], check=False)  # wireguard-go exits with its link
        deadline = time.monotonic() + 5
        while self.ns_pids(ns) and time.monotonic() < deadline:
            time.sleep(0.02)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.ns_pids(ns)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while pids and self.ns_pids(ns) and time.monotonic() < deadline:
                time.sleep(0.05)
        for c in self.children:
            if c.poll() is None:
                try:
                    c.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
        run(["ip", "netns", "del", ns], check=False)
        if ns in self.namespaces:
            self.namespaces.remove(ns)
        for ifn in (self.ifname, self.if2):
            self.wait_socket_gone(ifn)

    def cleanup(self):
        for ns in list(self.namespaces):
            self.ns_del(ns)

    def start_wireguard_go(self, ns, ifname):
        logf = open(os.path.join(self.tmp, f"wireguard-go.{ns}.log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns, "wireguard-go", "-f", ifname],
                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        self.children.append(p)
        path = os.path.join(SOCK_DIR, ifname + ".sock")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise Failed(f"wireguard-go {ifname} in {ns} exited {p.returncode} at start")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                s.close()
                return p
            except OSError:
                time.sleep(0.02)
        raise Failed(f"wireguard-go {ifname} in {ns}: no UAPI socket after 10 s")

    # -- timed commands --
    def timed(self, ns, argv, label, strace=None, strace_size=8, ok_rc=(0,)):
        """Runs argv in ns through live_run.py; returns its result dict plus out/err paths."""
        self.nrun += 1
        # Let the device settle (wireguard-go collects the garbage of the previous command's
        # 10,000-peer exchange) so that no command pays for the one before it.
        time.sleep(self.a.settle)
        base = os.path.join(self.tmp, "runs", f"{self.nrun:04d}")
        os.makedirs(os.path.dirname(base), exist_ok=True)
        res, out, err = base + ".json", base + ".out", base + ".err"
        cmd = ["ip", "netns", "exec", ns, sys.executable, RUN, "--result", res, "--stdout", out, "--stderr", err]
        if strace:
            cmd += ["--strace", strace, "--strace-size", str(strace_size)]
        run(cmd + ["--"] + argv, capture=False)
        with open(res) as f:
            r = json.load(f)
        r["out"], r["err"] = out, err
        if r["rc"] not in ok_rc:
            tail = open(err, errors="replace").read().strip().splitlines()[-8:]
            raise Failed(f"{label}: `{' '.join(argv)}` exited {r['rc']}" + "".join("\n    " + l for l in tail))
        return r

    def wgf(self, state, *args):
        return [self.bin, "-q", "-c", self.cfg, "--node", self.node, "--state-dir", state] + list(args)

    def record(self, key, r):
        self.r.setdefault(key, {"wall_s": [], "rss_kb": [], "cpu_s": []})
        self.r[key]["wall_s"].append(r["wall_s"])
        if r.get("rss_kb") is not None:
            self.r[key]["rss_kb"].append(r["rss_kb"])
            self.r[key]["cpu_s"].append(r["user_s"] + r["sys_s"])

    def peer_count(self, ns, ifname):
        return len(run(["ip", "netns", "exec", ns, "wg", "show", ifname, "peers"]).stdout.split())

    def journal_lines(self, state):
        path = os.path.join(state, "journal.log")
        return open(path).read().splitlines() if os.path.exists(path) else []

    @staticmethod
    def uapi_windows(trace_path, ifname):
        """[(kind, seconds)] of every exchange with IF.sock: connect to close of that descriptor;
        kind is 'get' or 'set' when a sendto shows it, else '?'."""
        open_ = {}
        out = []
        pat_conn = re.compile(r'^(\d+)\s+([\d.]+) connect\((\d+), \{sa_family=AF_UNIX, sun_path="([^"]+)"\}.*= 0')
        pat_send = re.compile(r'^(\d+)\s+([\d.]+) sendto\((\d+), "(.{0,5})')
        pat_close = re.compile(r'^(\d+)\s+([\d.]+) close\((\d+)\)')
        want = f"/{ifname}.sock"
        for line in joined_strace_lines(trace_path):
            m = pat_conn.match(line)
            if m and m.group(4).endswith(want):
                open_[(m.group(1), m.group(3))] = [float(m.group(2)), "?"]
                continue
            m = pat_send.match(line)
            if m and (m.group(1), m.group(3)) in open_:
                body = m.group(4)
                open_[(m.group(1), m.group(3))][1] = "get" if body.startswith("get=1") else "set" if body.startswith("set=1") else "?"
                continue
            m = pat_close.match(line)
            if m and (m.group(1), m.group(3)) in open_:
                t0, kind = open_.pop((m.group(1), m.group(3)))
                out.append((kind, float(m.group(2)) - t0))
        return out

    # -- the phases --
    def setup(self):
        a = self.a
        src = os.path.join(self.tmp, "fleet.orig.yaml")
        run([sys.executable, os.path.join(HERE, "gen_fleet.py"), "--controllers", str(a.controllers),
             "--peers", str(a.peers), "--out", src, "--seed", a.seed, "--fleet", self.ifname])
        # Managed files go beside the state directories, never inside one (wg-fleet refuses that).
        files = os.path.join(self.tmp, "files")
        self.orig_text = f"hosts_file: {files}/hosts\nhttp_routes_dir: {files}/routes\n" + open(src).read()
        self.lines, controllers, peers = parse_fleet(self.orig_text)
        if not controllers or not peers:
            raise Failed("could not find the controllers and peers of the generated fleet")
        self.node = controllers[0]["name"]
        self.expected_peers = len(controllers) - 1 + len(peers)
        # Peers homed at this node: their routes sit on their own entries of its device (a peer
        # of another controller reaches this node through that controller's entry).
        routed = [p for p in peers if p["route"] and p["controller"] == self.node]
        need = 1 + a.watch_edits
        if len(routed) < need:
            raise Failed(f"the fleet has {len(routed)} peers with a route; the bench needs {need}")
        self.change_peer = routed[len(routed) // 2]
        self.watch_peers = [p for p in routed if p is not self.change_peer][:a.watch_edits]
        # The file every run reads names its managed files inside the run's directory: the
        # default hosts file (/run/wg_fleet_hosts) is the machine's, not the bench's.
        with open(self.cfg, "w") as f:
            f.write(self.orig_text)
        self.r["fleet"] = {"controllers": len(controllers), "peers": len(peers), "node": self.node,
                           "device_peers": self.expected_peers, "routes": len(routed),
                           "yaml_bytes": len(self.orig_text)}
        log(f"fleet: {len(controllers)} controllers, {len(peers)} peers; node {self.node} "
            f"({self.expected_peers} peers on {self.ifname})")

    def text_with_route(self, text_lines, peer, route):
        lines = list(text_lines)
        i = peer["route_line"]
        lines[i] = lines[i].replace(f"[{peer['route']}]", f"[{route}]")
        return lines

    def apply_from_nothing(self, i, keep):
        ns = self.ns_add(f"a{i}")
        state = os.path.join(self.tmp, f"state-a{i}")
        r = self.timed(ns, self.wgf(state, "apply"), "apply from nothing")
        self.record("load_apply_from_nothing", r)
        n = self.peer_count(ns, self.ifname)
        if n != self.expected_peers:
            raise Failed(f"apply from nothing: {n} peers on the device, expected {self.expected_peers}")
        if keep:
            return ns, state
        self.ns_del(ns)
        shutil.rmtree(state, ignore_errors=True)
        return None, None

    def apply_onto_empty(self, i, strace=None):
        ns = self.ns_add(f"b{i}")
        state = os.path.join(self.tmp, f"state-b{i}")
        self.start_wireguard_go(ns, self.ifname)
        # The device is not wg-fleet's: taking it over is the explicit opt-in.
        r = self.timed(ns, self.wgf(state, "apply", "--adopt", self.ifname), "apply onto an empty device", strace=strace)
        if strace:
            sets = [s for k, s in self.uapi_windows(strace, self.ifname) if k == "set"]
            if not sets:
                raise Failed("apply onto an empty device (traced): no UAPI set=1 exchange found in the trace")
            self.r.setdefault("load_apply_uapi_set_s", []).append(max(sets))
        else:
            self.record("load_apply_onto_empty", r)
        n = self.peer_count(ns, self.ifname)
        if n != self.expected_peers:
            raise Failed(f"apply onto an empty device: {n} peers on the device, expected {self.expected_peers}")
        self.ns_del(ns)
        shutil.rmtree(state, ignore_errors=True)

    def setconf(self, i, conf, strace=None):
        ns = self.ns_add(f"s{i}")
        self.start_wireguard_go(ns, self.if2)
        r = self.timed(ns, ["wg", "setconf", self.if2, conf], "wg setconf", strace=strace)
        if strace:
            w = self.uapi_windows(strace, self.if2)
            self.r.setdefault("load_setconf_uapi_set_s", []).append(max(s for _, s in w))
        else:
            self.record("load_setconf", r)
        n = self.peer_count(ns, self.if2)
        if n != self.expected_peers:
            raise Failed(f"wg setconf: {n} peers on the device, expected {self.expected_peers}")
        self.ns_del(ns)

    def phase_load(self):
        a = self.a
        log(f"load: {a.load_runs} x (apply from nothing, wg setconf, apply onto an empty device)")
        # The first apply gives the config `wg setconf` loads (wg showconf of the same device).
        ns, state = self.apply_from_nothing(0, keep=True)
        self.conf = os.path.join(self.tmp, "showconf.conf")
        conf_text = run(["ip", "netns", "exec", ns, "wg", "showconf", self.ifname]).stdout
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(conf_text)
        self.ns_del(ns)
        shutil.rmtree(state, ignore_errors=True)
        # The interface name is one UAPI socket for every namespace: one device of that name at a time.
        last = max(1, a.load_runs - 1)
        for i in range(a.load_runs):
            self.setconf(i, self.conf)
            self.apply_onto_empty(i)
            if 1 <= i < last:
                self.apply_from_nothing(i, keep=False)
        # Traced runs of each, for the UAPI set exchange alone (not in the wall figures).
        for i in range(a.load_runs):
            self.setconf(f"t{i}", self.conf, strace=os.path.join(self.tmp, f"trace-setconf-{i}"))
            self.apply_onto_empty(f"t{i}", strace=os.path.join(self.tmp, f"trace-apply-empty-{i}"))
        # The last apply from nothing is the converged node of the other phases.
        self.main_ns, self.main_state = self.apply_from_nothing(last, keep=True)
        # From now on the config of that device (its own private key) is the one `wg` uses.
        conf_text = run(["ip", "netns", "exec", self.main_ns, "wg", "showconf", self.ifname]).stdout
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(conf_text)

    def phase_read(self):
        ns, state, a = self.main_ns, self.main_state, self.a
        log(f"read: {a.runs} x (wg show dump, wg-fleet plan, status --json, render wg-quick), then traced")
        r = self.timed(ns, self.wgf(state, "plan", "--detailed-exitcode"), "plan on the converged node", ok_rc=(0, 2))
        if r["rc"] != 0:
            raise Failed("the node is not converged after apply: plan --detailed-exitcode says changes are pending:\n"
                         + open(r["out"]).read()[:2000])
        for _ in range(a.runs):
            self.record("read_wg_show_dump", self.timed(ns, ["wg", "show", self.ifname, "dump"], "wg show dump"))
            self.record("read_plan", self.timed(ns, self.wgf(state, "plan"), "plan"))
            self.record("read_status_json", self.timed(ns, self.wgf(state, "status", "--json"), "status --json"))
            self.record("offline_render_wg_quick", self.timed(ns, self.wgf(state, "render", "wg-quick"), "render wg-quick"))
        for i in range(a.runs):
            t = os.path.join(self.tmp, f"trace-dump-{i}")
            self.timed(ns, ["wg", "show", self.ifname, "dump"], "wg show dump (traced)", strace=t)
            self.r.setdefault("read_dump_uapi_get_s", []).append(max(s for _, s in self.uapi_windows(t, self.ifname)))
            t = os.path.join(self.tmp, f"trace-plan-{i}")
            self.timed(ns, self.wgf(state, "plan"), "plan (traced)", strace=t)
            gets = [s for k, s in self.uapi_windows(t, self.ifname) if k == "get"]
            if not gets:
                raise Failed("plan (traced): no UAPI get=1 exchange found in the trace")
            self.r.setdefault("read_plan_uapi_get_s", []).append(max(gets))

    def phase_noop(self):
        ns, state, a = self.main_ns, self.main_state, self.a
        log(f"no-op: {a.runs} x (wg-fleet apply, wg syncconf)")
        before = len(self.journal_lines(state))
        for _ in range(a.runs):
            self.record("noop_apply", self.timed(ns, self.wgf(state, "apply"), "no-op apply"))
            self.record("noop_syncconf", self.timed(ns, ["wg", "syncconf", self.ifname, self.conf], "no-op wg syncconf"))
        self.r["noop_apply_journal_ops"] = len(self.journal_lines(state)) - before

    def phase_verbose(self):
        """`wg-fleet -v apply` (no-op) and `wg show dump`: where the time goes, and the device read
        as wg-fleet times it (-v's "device" phase of the read) against the whole `wg show dump`."""
        ns, state, a = self.main_ns, self.main_state, self.a
        # wireguard-go's answer to a get varies several-fold from one request to the next (its
        # garbage collector, its timers), so this pair takes at least five runs, in alternating
        # order: the medians compare the two reads, not which one came after the other.
        runs = max(a.runs, 5)
        log(f"-v: {runs} x (wg-fleet -v apply (no-op), wg show dump), in alternating order")
        main_phases, read_phases = {}, {}
        dump = lambda: self.record("verbose_wg_show_dump", self.timed(ns, ["wg", "show", self.ifname, "dump"], "wg show dump"))
        for i in range(runs):
            if i % 2:
                dump()
            argv = [x for x in self.wgf(state, "apply") if x != "-q"]
            r = self.timed(ns, [argv[0], "-v"] + argv[1:], "-v no-op apply")
            err = open(r["err"], errors="replace").read()
            for line in err.splitlines():
                m = re.match(r"^wg-fleet: timing(?: of the read, alongside)?: (.*) \(total ([\d.]+) ms\)$", line)
                if not m:
                    continue
                into = read_phases if "alongside" in line else main_phases
                for part in m.group(1).split(", "):
                    name, _, ms = part.rpartition(" ")[0].rpartition(" ")
                    if name == f"device {self.ifname}":
                        name = "device"
                    into.setdefault(name, []).append(float(ms) / 1000)
                into.setdefault("total", []).append(float(m.group(2)) / 1000)
            if i % 2 == 0:
                dump()
        self.r["verbose_noop_phases_s"] = main_phases
        self.r["verbose_noop_read_phases_s"] = read_phases
        self.r["device_read_s"] = read_phases.get("device", [])

    def phase_one_peer(self):
        ns, state, a = self.main_ns, self.main_state, self.a
        p = self.change_peer
        new_route = moved_route(p["route"])
        log(f"one peer: {a.runs} x (wg-fleet apply, wg set, wg syncconf) moving peer {p['name']} "
            f"from {p['route']} to {new_route}")
        yaml = {"orig": self.orig_text, "mod": "".join(self.text_with_route(self.lines, p, new_route))}
        # The same change as a wg config file and as `wg set` arguments.
        conf_text = open(self.conf).read()
        blocks = conf_text.split("\n\n")
        idx = [i for i, b in enumerate(blocks) if f"PublicKey = {p['key']}" in b]
        if len(idx) != 1:
            raise Failed(f"peer {p['name']} ({p['key']}) not found once in wg showconf")
        m = re.search(r"^AllowedIPs = (.*)$", blocks[idx[0]], re.M)
        ips = {"orig": [x.strip() for x in m.group(1).split(",")]}
        if p["route"] not in ips["orig"]:
            raise Failed(f"wg showconf: peer {p['name']} has no allowed IP {p['route']}")
        ips["mod"] = [new_route if x == p["route"] else x for x in ips["orig"]]
        conf = {"orig": self.conf}
        mod_blocks = list(blocks)
        mod_blocks[idx[0]] = blocks[idx[0]].replace(m.group(0), "AllowedIPs = " + ", ".join(ips["mod"]))
        conf["mod"] = os.path.join(self.tmp, "showconf-one-peer.conf")
        fd = os.open(conf["mod"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n\n".join(mod_blocks))

        def live_ips():
            for line in run(["ip", "netns", "exec", ns, "wg", "show", self.ifname, "allowed-ips"]).stdout.splitlines():
                k, _, rest = line.partition("\t")
                if k == p["key"]:
                    return sorted(rest.split())
            return None

        peer_op = re.compile(r" ok [~+-] peer (\S+) ")
        self.r["one_peer_journal_peer_ops"], self.r["one_peer_journal_distinct_peers"] = [], []
        self.r["one_peer_journal_ops"] = []
        target, other = "mod", "orig"
        for _ in range(a.runs):
            # wg-fleet: YAML and device both at `other`; the YAML moves to `target`.
            write_by_rename(self.cfg, yaml[target])
            before = len(self.journal_lines(state))
            self.record("one_peer_apply", self.timed(ns, self.wgf(state, "apply"), "one-peer apply"))
            new = self.journal_lines(state)[before:]
            names = [m.group(1) for m in map(peer_op.search, new) if m]
            self.r["one_peer_journal_ops"].append(len(new))
            self.r["one_peer_journal_peer_ops"].append(len(names))
            self.r["one_peer_journal_distinct_peers"].append(len(set(names)))
            if live_ips() != sorted(ips[target]):
                raise Failed(f"one-peer apply: the device has {live_ips()} for {p['name']}, expected {sorted(ips[target])}")
            # wg set: back to `other`; wg syncconf: to `target` again (the YAML's state).
            self.record("one_peer_wg_set", self.timed(
                ns, ["wg", "set", self.ifname, "peer", p["key"], "allowed-ips", ",".join(ips[other])], "one-peer wg set"))
            if live_ips() != sorted(ips[other]):
                raise Failed("one-peer wg set did not change the peer")
            self.record("one_peer_syncconf", self.timed(ns, ["wg", "syncconf", self.ifname, conf[target]], "one-peer wg syncconf"))
            if live_ips() != sorted(ips[target]):
                raise Failed("one-peer wg syncconf did not change the peer")
            target, other = other, target
        # One more pair, traced with whole sendto buffers, to count what the set request carries.
        # A one-peer change carries no private key; the trace is read and deleted at once.
        counts = []
        for _ in range(2):
            write_by_rename(self.cfg, yaml[target])
            t = os.path.join(self.tmp, "trace-one-peer")
            self.timed(ns, self.wgf(state, "apply"), "one-peer apply (traced)", strace=t, strace_size=1 << 20)
            sets = []
            for line in open(t, errors="replace"):
                mm = re.search(r'sendto\(\d+, "(set=1\\n.*?)"(?:\.\.\.)?, \d+', line)
                if mm:
                    sets.append(mm.group(1).replace("\\n", "\n"))
            os.unlink(t)
            body = "".join(sets)
            if "private_key=" in body:
                raise Failed("a one-peer change sent the private key")
            keys = re.findall(r"^public_key=([0-9a-f]+)$", body, re.M)
            counts.append({"set_requests": len(sets), "peer_sections": len(keys), "distinct_peers": len(set(keys)),
                           "lines": sum(1 for l in body.split("\n") if l and l != "set=1")})
            target, other = other, target
        self.r["one_peer_uapi"] = counts
        if target == "orig":  # the YAML is at `mod`: back to the original for watch
            write_by_rename(self.cfg, yaml["orig"])
            self.timed(ns, self.wgf(state, "apply"), "restore")

    def phase_watch(self):
        ns, state, a = self.main_ns, self.main_state, self.a
        log(f"watch: {a.watch_edits} one-peer edits by rename")
        err = os.path.join(self.tmp, "watch.err")
        errf = open(err, "w")
        argv = [self.bin, "-v", "-c", self.cfg, "--node", self.node, "--state-dir", state, "watch", "--interval", "3600"]
        w = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=errf)
        self.children.append(w)

        def wait_for(path, needle, offset, timeout):
            return wait_in_file(path, needle, offset, timeout, w,
                                lambda: Failed(f"watch exited {w.returncode}: " + open(err).read()[-2000:]))

        if wait_for(err, " watching ", 0, 120) is None:
            raise Failed("watch did not start within 120 s: " + open(err).read()[-2000:])
        journal = os.path.join(state, "journal.log")
        text = list(self.lines)
        op_lat, conv_lat, peer_ops = [], [], []
        peer_op = re.compile(r" ok [~+-] peer (\S+) ")
        for p in self.watch_peers:
            new_route = moved_route(p["route"])
            i = p["route_line"]
            text[i] = text[i].replace(f"[{p['route']}]", f"[{new_route}]")
            j_off, e_off = os.path.getsize(journal), os.path.getsize(err)
            # The temporary file's own event is ignored by watch; let it pass before the rename.
            t0 = write_by_rename(self.cfg, "".join(text), settle=0.3)
            t1 = wait_for(journal, f" peer {p['name']} (", j_off, 30)
            t2 = wait_for(err, f"edit: + route {new_route} ", e_off, 60)
            if t1 is None or t2 is None:
                raise Failed(f"watch did not apply the edit of {p['name']} within the timeout")
            op_lat.append(t1 - t0)
            conv_lat.append(t2 - t0)
            with open(journal) as f:
                f.seek(j_off)
                names = [m.group(1) for m in map(peer_op.search, f.read().splitlines()) if m]
            peer_ops.append(len(names))
            time.sleep(0.2)
        # Peak RSS of the service over all those reloads.
        hwm = None
        try:
            for line in open(f"/proc/{w.pid}/status"):
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        except OSError:
            pass
        w.send_signal(signal.SIGTERM)
        try:
            w.wait(timeout=10)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
        errf.close()
        self.r["watch_journal_s"] = op_lat
        self.r["watch_converged_s"] = conv_lat
        self.r["watch_peer_ops"] = peer_ops
        self.r["watch_vmhwm_kb"] = hwm
        self.r["watch_timings"] = [l.split(" timing: ", 1)[1] for l in open(err, errors="replace").read().splitlines()
                                   if " timing: " in l][-6:]
        errors = [l for l in open(err).read().splitlines() if " error " in l or "bug:" in l]
        self.r["watch_errors"] = errors[:10]


# ---- the report --------------------------------------------------------------------------------

def fmt_s(xs):
    if not xs:
        return "–"
    m = med(xs)
    if len(xs) == 1:
        return f"{m * 1000:.0f} ms"
    return f"{m * 1000:.0f} ms ({min(xs) * 1000:.0f}–{max(xs) * 1000:.0f})"


def fmt_mb(kb):
    return "–" if not kb else f"{max(kb) / 1024:.1f} MB"


def report(b, out):
    r = b.r
    W = lambda k: r.get(k, {}).get("wall_s", []) if isinstance(r.get(k), dict) else r.get(k, [])
    R = lambda k: r.get(k, {}).get("rss_kb", []) if isinstance(r.get(k), dict) else []
    ratio = lambda x, y: (med(x) / med(y)) if x and y else float("nan")
    C = lambda k: r.get(k, {}).get("cpu_s", []) if isinstance(r.get(k), dict) else []
    S = lambda k: fmt_s(W(k)) + (f"; CPU {med(C(k)) * 1000:.0f} ms" if C(k) else "")
    f = r["fleet"]
    P = f["device_peers"]
    rows = [
        ("read: UAPI `get=1` exchange alone (connect→close)", fmt_s(W("read_plan_uapi_get_s")),
         "`wg show dump`: " + fmt_s(W("read_dump_uapi_get_s")), ratio(W("read_plan_uapi_get_s"), W("read_dump_uapi_get_s"))),
        ("read: whole command, `wg-fleet plan` (parse+render+read+diff; upper bound)", S("read_plan"),
         "`wg show dump`: " + S("read_wg_show_dump"), ratio(W("read_plan"), W("read_wg_show_dump"))),
        ("  `wg-fleet status --json` (same work as plan)", S("read_status_json"), "", None),
        ("  offline part: `wg-fleet render wg-quick` (parse+validate+render, no device)",
         S("offline_render_wg_quick"), "", None),
        (f"load {P} peers onto an empty wireguard-go device", S("load_apply_onto_empty"),
         "`wg setconf`: " + S("load_setconf"), ratio(W("load_apply_onto_empty"), W("load_setconf"))),
        ("  apply from nothing (also starts wireguard-go, link, address, routes, nft, files)",
         S("load_apply_from_nothing"), "`wg setconf`: " + fmt_s(W("load_setconf")),
         ratio(W("load_apply_from_nothing"), W("load_setconf"))),
        ("  UAPI `set=1` exchange alone (traced runs)", fmt_s(W("load_apply_uapi_set_s")),
         "`wg setconf`: " + fmt_s(W("load_setconf_uapi_set_s")), ratio(W("load_apply_uapi_set_s"), W("load_setconf_uapi_set_s"))),
        ("no-op apply", S("noop_apply"), "`wg syncconf`: " + S("noop_syncconf"),
         ratio(W("noop_apply"), W("noop_syncconf"))),
        ("one-peer change (route moved): apply", S("one_peer_apply"),
         "`wg syncconf`: " + S("one_peer_syncconf"), ratio(W("one_peer_apply"), W("one_peer_syncconf"))),
        ("  same change vs `wg set` (+ `wg show dump` = set plus the read)", S("one_peer_apply"),
         "`wg set`: " + fmt_s(W("one_peer_wg_set")) + f"; set+dump: {(med(W('one_peer_wg_set')) + med(W('read_wg_show_dump'))) * 1000:.0f} ms",
         med(W("one_peer_apply")) / (med(W("one_peer_wg_set")) + med(W("read_wg_show_dump")))),
        (f"watch: rename → the peer's op line in journal.log ({len(W('watch_journal_s'))} edits)",
         f"median {med(W('watch_journal_s')) * 1000:.0f} ms, max {max(W('watch_journal_s'), default=float('nan')) * 1000:.0f} ms", "", None),
        ("watch: rename → edit fully applied and verified (log line)",
         f"median {med(W('watch_converged_s')) * 1000:.0f} ms, max {max(W('watch_converged_s'), default=float('nan')) * 1000:.0f} ms", "", None),
    ]
    up = r.get("one_peer_uapi", [{}])
    rows_cnt = [
        ("no-op apply: ops in journal over all runs", str(r.get("noop_apply_journal_ops")), "", None),
        ("one-peer apply: ops in journal per run", " ".join(map(str, r.get("one_peer_journal_ops", []))), "", None),
        ("one-peer apply: peer ops in journal per run (distinct peers)",
         " ".join(f"{a}({d})" for a, d in zip(r.get("one_peer_journal_peer_ops", []), r.get("one_peer_journal_distinct_peers", []))),
         "`wg set`: 1 peer", None),
        ("one-peer apply: UAPI set requests / peer sections / distinct peers / lines",
         "; ".join(f"{c['set_requests']}/{c['peer_sections']}/{c['distinct_peers']}/{c['lines']}" for c in up),
         "", None),
        ("watch: peer ops in journal per edit", " ".join(map(str, r.get("watch_peer_ops", []))), "", None),
    ]
    rss = [
        ("peak RSS `wg-fleet plan` (the reading process)", fmt_mb(R("read_plan")), "`wg show dump`: " + fmt_mb(R("read_wg_show_dump"))),
        ("peak RSS `wg-fleet status --json`", fmt_mb(R("read_status_json")), ""),
        ("peak RSS `wg-fleet apply` from nothing", fmt_mb(R("load_apply_from_nothing")), "`wg setconf`: " + fmt_mb(R("load_setconf"))),
        ("peak RSS `wg-fleet apply` onto an empty device", fmt_mb(R("load_apply_onto_empty")), ""),
        ("peak RSS `wg-fleet apply` no-op / one peer", f"{fmt_mb(R('noop_apply'))} / {fmt_mb(R('one_peer_apply'))}",
         "`wg syncconf`: " + fmt_mb(R("noop_syncconf"))),
        ("peak RSS `wg-fleet watch` after all edits (VmHWM)",
         "–" if not r.get("watch_vmhwm_kb") else f"{r['watch_vmhwm_kb'] / 1024:.1f} MB", ""),
    ]
    p = lambda s="": print(s, file=out)
    p(f"| measurement ({P} peers on {b.node}) | wg-fleet | wg, same run | ratio |")
    p("|---|---|---|---|")
    for name, x, y, q in rows:
        p(f"| {name} | {x} | {y} | {'' if q is None else f'{q:.2f}×'} |")
    for name, x, y, _ in rows_cnt:
        p(f"| {name} | {x} | {y} | |")
    for name, x, y in rss:
        p(f"| {name} | {x} | {y} | |")
    p()
    p("Times: median (min–max) of the runs, wall clock; CPU = user+sys of that process alone (GNU time), not of")
    p("wireguard-go, which does most of `wg`'s work. Every run of each kind is listed in --json.")
    p()

    # Verdicts.
    def v(ok, text):
        p(f"- {'met' if ok else 'NOT met'}: {text}")
        return ok
    apply_rss = max(R("load_apply_from_nothing") + R("load_apply_onto_empty") + R("noop_apply") + R("one_peer_apply"))
    if r.get("watch_vmhwm_kb"):
        apply_rss = max(apply_rss, r["watch_vmhwm_kb"])
    read_rss = max(R("read_plan") + R("read_status_json"))
    gw, dw = med(W("read_plan_uapi_get_s")), med(W("read_dump_uapi_get_s"))
    pw, ww = med(W("read_plan")), med(W("read_wg_show_dump"))
    max_distinct = max([c["distinct_peers"] for c in up] + r.get("one_peer_journal_distinct_peers", [0]))
    sections = max([c["peer_sections"] for c in up], default=0)
    lo, ls = med(W("load_apply_onto_empty")), med(W("load_setconf"))
    no, ns_ = med(W("noop_apply")), med(W("noop_syncconf"))
    oa, os_ = med(W("one_peer_apply")), med(W("one_peer_syncconf"))
    wl = med(W("watch_journal_s"))
    mn = lambda k: min(W(k)) if W(k) else float("nan")
    fast = lambda a_, b_: f"; fastest runs {mn(a_) / mn(b_):.2f}×"
    p("Verdicts (targets of issues 3 and 4, on the medians; reported, not asserted; the ratio of the")
    p("fastest runs is shown too, as a check against noise from other load on the machine):")
    ok = {}
    ok["read"] = v(gw <= dw, f"issue 3, UAPI read no slower than `wg show dump`: get exchange {gw*1000:.0f} ms vs {dw*1000:.0f} ms "
                  f"({gw/dw:.2f}×{fast('read_plan_uapi_get_s', 'read_dump_uapi_get_s')}); whole `plan` {pw*1000:.0f} ms vs {ww*1000:.0f} ms ({pw/ww:.2f}×, upper bound incl. parse)")
    ok["one_peer_sent"] = v(max_distinct == 1, f"issue 3/4, one-peer change sends exactly one peer: {max_distinct} distinct peer(s), "
                            f"in {sections} peer section(s) of one set request; journal peer ops per run "
                            f"{'/'.join(map(str, r.get('one_peer_journal_peer_ops', [])))}")
    ok["one_peer_vs_set"] = v(oa <= med(W("one_peer_wg_set")) + ww, f"issue 3, one-peer change no longer than `wg set` plus the read: "
                              f"{oa*1000:.0f} ms vs {(med(W('one_peer_wg_set')) + ww)*1000:.0f} ms ({oa/(med(W('one_peer_wg_set')) + ww):.2f}×)")
    ok["load"] = v(lo <= 1.10 * ls, f"issue 3, load within 10% of `wg setconf`: {lo*1000:.0f} ms vs {ls*1000:.0f} ms ({lo/ls:.2f}×"
                   f"{fast('load_apply_onto_empty', 'load_setconf')}; from nothing {med(W('load_apply_from_nothing'))*1000:.0f} ms, "
                   f"{med(W('load_apply_from_nothing'))/ls:.2f}×; the UAPI set exchange alone "
                   f"{med(W('load_apply_uapi_set_s'))/med(W('load_setconf_uapi_set_s')):.2f}×)")
    ok["read_rss"] = v(read_rss < 64 * 1024, f"issue 3, reading process peak RSS < 64 MB: {read_rss/1024:.1f} MB")
    ok["noop"] = v(no <= 0.75 * ns_, f"issue 4, no-op apply ≤ 0.75× no-op `wg syncconf`: {no*1000:.0f} ms vs {ns_*1000:.0f} ms ({no/ns_:.2f}×{fast('noop_apply', 'noop_syncconf')})")
    ok["one_peer"] = v(oa <= 0.5 * os_, f"issue 4, one-peer change ≤ 0.5× `wg syncconf`: {oa*1000:.0f} ms vs {os_*1000:.0f} ms ({oa/os_:.2f}×{fast('one_peer_apply', 'one_peer_syncconf')})")
    ok["watch"] = v(wl <= 1.0, f"issue 4, watch applies a one-peer edit within 1 s (median of {len(W('watch_journal_s'))}): "
                    f"{wl*1000:.0f} ms, max {max(W('watch_journal_s'))*1000:.0f} ms")
    ok["apply_rss"] = v(apply_rss < 100 * 1024, f"issue 4, apply peak RSS < 100 MB: {apply_rss/1024:.1f} MB (max over every apply and watch)")
    r["verdicts"] = ok
    p()
    targets(b, out)
    if r.get("watch_errors"):
        p()
        p("watch logged errors: " + " | ".join(r["watch_errors"]))


def targets(b, out):
    """Issue 9's targets: each a ratio of two medians measured in this run (kept in --json as
    "targets" for live_targets.py, which tabulates several runs)."""
    r = b.r
    W = lambda k: r.get(k, {}).get("wall_s", []) if isinstance(r.get(k), dict) else r.get(k, [])
    R = lambda k: r.get(k, {}).get("rss_kb", []) if isinstance(r.get(k), dict) else []
    big = b.a.peers >= 50000
    rss = R("load_apply_from_nothing") + R("load_apply_onto_empty") + R("noop_apply") + R("one_peer_apply")
    if r.get("watch_vmhwm_kb"):
        rss.append(r["watch_vmhwm_kb"])
    rows = [
        # key, what, wg-fleet figure, wg figure, ratio, limit (None: reported, no target at this size)
        ("load", "full load vs `wg setconf`", med(W("load_apply_onto_empty")), med(W("load_setconf")), 1.05 if big else None),
        ("noop", "no-op `apply` vs no-op `wg syncconf`", med(W("noop_apply")), med(W("noop_syncconf")), 0.35 if big else 0.6),
        ("watch_edit", "`watch` one-peer edit (rename → journal line) vs one-peer `wg syncconf`",
         med(W("watch_journal_s")), med(W("one_peer_syncconf")), 0.25 if big else 0.5),
        ("device_read", "the device read (`-v` \"device\") vs `wg show dump`", med(W("device_read_s")),
         med(W("verbose_wg_show_dump")), 1.0 if big else None),
        ("get_exchange", "UAPI `get=1` exchange alone vs `wg show dump`'s", med(W("read_plan_uapi_get_s")),
         med(W("read_dump_uapi_get_s")), None),
    ]
    t = {}
    p = lambda s_="": print(s_, file=out)
    p(f"Issue 9 targets ({b.a.peers} peers, {r['fleet']['controllers']} controller(s); ratio of medians in this run):")
    p()
    p("| target | wg-fleet | wg | ratio | limit | verdict |")
    p("|---|---:|---:|---:|---:|---|")
    for key, what, x, y, limit in rows:
        q = x / y if y == y and y else float("nan")
        verdict = "–" if limit is None else ("met" if q <= limit else "NOT met")
        t[key] = {"wgf_s": x, "wg_s": y, "ratio": q, "limit": limit, "met": None if limit is None else q <= limit}
        p(f"| {what} | {x * 1000:.0f} ms | {y * 1000:.0f} ms | {q:.2f}× | {'' if limit is None else f'≤ {limit}×'} | {verdict} |")
    peak = max(rss) / 1024 if rss else float("nan")
    t["rss"] = {"peak_mb": peak, "limit": 250 if big else None, "met": None if not big else peak < 250}
    p(f"| peak RSS of apply and watch | {peak:.1f} MB | | | {'< 250 MB' if big else ''} | "
      f"{'–' if not big else ('met' if peak < 250 else 'NOT met')} |")
    r["targets"] = t
    ph = r.get("verbose_noop_phases_s", {})
    if ph:
        p()
        p("`-v` no-op apply, median per phase: " + ", ".join(f"{k} {med(v) * 1000:.1f} ms" for k, v in ph.items()))
        rp = r.get("verbose_noop_read_phases_s", {})
        p("  the read, alongside: " + ", ".join(f"{k} {med(v) * 1000:.1f} ms" for k, v in rp.items()))
    if r.get("watch_timings"):
        p("`watch -v`, the last runs: " + " | ".join(r["watch_timings"][-3:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--ifname", required=True)
    ap.add_argument("--ns-prefix", required=True)
    ap.add_argument("--peers", type=int, default=10000)
    ap.add_argument("--controllers", type=int, default=3)
    ap.add_argument("--seed", default="0")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load-runs", type=int, default=3)
    ap.add_argument("--watch-edits", type=int, default=20)
    ap.add_argument("--settle", type=float, default=0.3, help="seconds of pause before every timed command")
    ap.add_argument("--json")
    a = ap.parse_args()
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    b = Bench(a)
    rc = 0
    try:
        b.setup()
        b.phase_load()
        b.phase_read()
        b.phase_noop()
        b.phase_verbose()
        b.phase_one_peer()
        b.phase_watch()
    except Failed as e:
        log(f"FAILED: {e}")
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        for c in b.children:
            if c.poll() is None and c.args[-2:] == ["--interval", "3600"]:
                c.send_signal(signal.SIGTERM)
        b.cleanup()
    if rc == 0:
        report(b, sys.stdout)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(b.r, f, indent=1, default=str)
    return rc


if __name__ == "__main__":
    sys.exit(main())
