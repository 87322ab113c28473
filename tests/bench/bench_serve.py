#!/usr/bin/env python3
"""Benchmark of `wg-fleet serve`'s enrollment API (figures for BENCHMARKS.md; no assertions).

In a network namespace of its own, serve runs one fleet (a /64, its device wireguard-go) and 8
client threads register over loopback HTTP (keep-alive connections) until the fleet holds each
of the sizes asked for. Reported per stretch (from the previous size to the next): registrations
per second, and for every registration the time from its response until its peer is on the
device, measured twice: until serve's log line for the added peer (written right after the UAPI
set), and until a separate process reading the device over its UAPI socket first sees the key
(late by up to one read period, which is reported; reads are spaced out because each one holds
the device's lock). Then the dashboard of the full fleet, HTML and ?format=json, timed from the
client.

Usage (root): bench_serve.py WG_FLEET_BINARY [--sizes 1000,5000,10000] [--clients 8] [--generated]
  --generated: no public_key in the request (serve makes the key pair); matched by address then.
"""
import argparse
import base64
import http.client
import json
import multiprocessing
import os
import re
import datetime
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import wgf_netns  # noqa: E402

PID = os.getpid()
NS = f"wgfbs{PID}"
IFNAME = f"wgbs{PID}"
FLEET, SUBNET, SERVER_IP = "bench", "fd00:b5e4:1c0d:4200::/64", "fd00:b5e4:1c0d:4200::1"


def uapi_read(path):
    """The device's peers: public keys (hex) and allowed IPs, as UAPI `get` lists them."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"get=1\n\n")
    chunks = []
    while True:
        c = s.recv(1 << 20)
        if not c:
            break
        chunks.append(c)
        if c.endswith(b"\n\n"):
            break
    s.close()
    keys, ips = [], []
    for line in b"".join(chunks).split(b"\n"):
        if line.startswith(b"public_key="):
            keys.append(line[11:].decode())
        elif line.startswith(b"allowed_ip="):
            ips.append(line[11:].split(b"/")[0].decode())
    return keys, ips


def poller(path, stop, out, pause):
    """Until `stop`: read the device, note when each key and address first shows up."""
    seen_keys, seen_ips, periods = {}, {}, []
    last = None
    while not stop.is_set():
        try:
            keys, ips = uapi_read(path)
        except OSError:
            time.sleep(0.05)
            continue
        now = time.monotonic()
        for k in keys:
            seen_keys.setdefault(k, now)
        for a in ips:
            seen_ips.setdefault(a, now)
        if last is not None:
            periods.append(now - last)
        last = now
        time.sleep(pause)
    out.put((seen_keys, seen_ips, periods))


def request(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    r = conn.getresponse()
    return r.status, r.read()


def register_many(n, clients, generated, rate=None):
    """n registrations from `clients` threads; [(response time, key hex or None, address)], seconds.
    With `rate`, registration i is not sent before start + i / rate (an offered load, not flat out)."""
    results, errors = [], []
    lock = threading.Lock()
    counter = iter(range(n))
    start = time.monotonic()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=60)
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            if rate:
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
            raw = os.urandom(32)
            body = None if generated else json.dumps({"public_key": base64.b64encode(raw).decode()})
            try:
                status, data = request(conn, "POST", f"/fleet/{FLEET}/register", body)
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=60)
                continue
            t, wall = time.monotonic(), time.time()
            if status != 200:
                errors.append(f"{status} {data[:200]!r}")
                continue
            cfg = json.loads(data)["config"]
            addr = next(line.split(" = ")[1].split("/")[0] for line in cfg.splitlines() if line.startswith("Address = "))
            mine.append((t, wall, None if generated else raw.hex(), addr))
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, time.monotonic() - start, errors


def log_added(path):
    """When serve's log says each address's peer was added (the line follows the UAPI set)."""
    added = {}
    for line in open(path, errors="replace"):
        m = re.match(r"^(\S+) info \w+: \+ peer \S+ \(.*?\) on \S+: allowed-ips ([0-9a-f:.]+)/", line)
        if m:
            added.setdefault(m.group(2), datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp())
    return added


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--generated", action="store_true")
    # Flat out, the registrations outrun what the device can take (a wireguard-go peer set costs
    # about half a millisecond a peer here): the time until live is then that backlog. An offered
    # rate measures it at that load instead.
    ap.add_argument("--rate", type=float, help="registrations per second offered by all clients together (default: flat out)")
    ap.add_argument("--dashboard-runs", type=int, default=7)
    ap.add_argument("--keep-log", help="copy serve's log here")
    # Each read of a 10,000-peer device holds wireguard-go's UAPI lock for tens of milliseconds (more
    # under load), which serve's own sets and reads then wait for: reading often slows the very
    # thing measured. serve's log line per added peer is the finer measure; the reads confirm it.
    ap.add_argument("--poll-pause", type=float, default=0.5, help="seconds between two device reads")
    ap.add_argument("--verbose", action="store_true", help="serve -v: its log has the timing of every run")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    sizes = [int(s) for s in a.sizes.split(",")]
    # state_dir on the disk wg-fleet's state lives on (not a tmpfs): the store's commits are real.
    tmp = tempfile.mkdtemp(prefix="wgf-bench-serve-", dir="/var/tmp")
    cfg = f"{tmp}/fleet.yaml"
    with open(cfg, "w") as f:
        f.write(f"state_dir: {tmp}/state\nhosts_file: {tmp}/hosts\ndomain: bench.internal\nprune_timeout: 24h\nfleets:\n"
                f"  {FLEET}:\n    ip6: {SERVER_IP}\n    subnet: {SUBNET}\n    external_ip: 192.0.2.1\n    port: 51899\n"
                f"    interface: {IFNAME}\n")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    serve = None
    log = open(f"{tmp}/serve.log", "w")
    stop = multiprocessing.Event()
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        wgf_netns.enter(NS)
        serve = subprocess.Popen(["ip", "netns", "exec", NS, a.binary, *(["-v"] if a.verbose else []), "-c", cfg, "--node", "server", "serve",
                                  "--listen", "127.0.0.1:8000"], stdout=log, stderr=log)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", 8000, timeout=5)
                if request(c, "GET", "/?format=json")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        out = multiprocessing.Queue()
        poll = multiprocessing.Process(target=poller, args=(f"/var/run/wireguard/{IFNAME}.sock", stop, out, a.poll_pause))
        poll.start()
        load_before = open("/proc/loadavg").read().split()[:3]
        cpu0 = cpu_seconds(serve.pid)
        done, stretches = 0, []
        all_results = []
        for size in sizes:
            res, secs, errors = register_many(size - done, a.clients, a.generated, a.rate)
            stretches.append((done, size, res, secs, errors))
            all_results += res
            done = size
        # Every registered key is on the device before the poller stops (or 60 s pass).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            keys, ips = uapi_read(f"/var/run/wireguard/{IFNAME}.sock")
            if len(ips) >= done:
                break
            time.sleep(0.2)
        time.sleep(0.3)
        stop.set()
        seen_keys, seen_ips, periods = out.get(timeout=60)
        poll.join()
        cpu1 = cpu_seconds(serve.pid)
        load_after = open("/proc/loadavg").read().split()[:3]

        print(f"serve benchmark: {a.clients} concurrent clients, {'generated keys' if a.generated else 'own public keys'}, "
              f"{f'offered {a.rate:g} registrations/s' if a.rate else 'flat out'}, "
              f"state_dir on {subprocess.run(['stat', '-f', '-c', '%T', tmp], capture_output=True, text=True).stdout.strip()}")
        print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)}; nproc {os.cpu_count()}")
        print(f"device read period: median {statistics.median(periods) * 1000:.0f} ms, max {max(periods) * 1000:.0f} ms "
              f"(reads: {len(periods)})")
        log.flush()
        added = log_added(f"{tmp}/serve.log")
        ms = lambda v: f"{v * 1000:.0f} ms"
        print("Live: until serve's log says the peer was added (after its UAPI set) / until a device read saw its key.")
        print("| stretch | registrations | seconds | registrations/s | added p50 / p99 / max | seen p50 / p99 / max | not seen | errors |")
        print("|---|---:|---:|---:|---|---|---:|---:|")
        for lo, hi, res, secs, errors in stretches:
            seen, logged, missing = [], [], 0
            for t, wall, key, addr in res:
                first = seen_keys.get(key) if key else seen_ips.get(addr)
                if first is None:
                    missing += 1
                else:
                    seen.append(max(0.0, first - t))
                if addr in added:
                    logged.append(max(0.0, added[addr] - wall))
            print(f"| {lo:,} → {hi:,} | {len(res):,} | {secs:.2f} | {len(res) / secs:,.0f} | "
                  f"{ms(pct(logged, 50))} / {ms(pct(logged, 99))} / {ms(max(logged, default=float('nan')))} | "
                  f"{ms(pct(seen, 50))} / {ms(pct(seen, 99))} / {ms(max(seen, default=float('nan')))} | {missing} | {len(errors)} |")
            for e in errors[:3]:
                print("   error:", e)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(f"CPU time during the registrations: serve {cpu1 - cpu0:.1f} s, this client {ru.ru_utime + ru.ru_stime:.1f} s")

        conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=60)
        for what, path in (("HTML", f"/fleet/{FLEET}"), ("JSON", f"/fleet/{FLEET}?format=json"), ("index", "/")):
            times, size = [], 0
            for _ in range(a.dashboard_runs):
                t0 = time.monotonic()
                status, body = request(conn, "GET", path)
                times.append(time.monotonic() - t0)
                size = len(body)
                assert status == 200, status
            print(f"dashboard {what} ({path}, {done:,} clients, {size / 1024:.0f} KiB): median {statistics.median(times) * 1000:.0f} ms, "
                  f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {a.dashboard_runs} runs")

        # The anchor: what the device itself takes for the two device operations of every converge
        # (serve's `timing:` lines, -v): the set of the new peers and the full read that verifies
        # it. `wg` against the same wireguard-go device, now holding every client.
        anchor_peers = 500
        keys = [base64.b64encode(os.urandom(32)).decode() for _ in range(anchor_peers)]
        add = ["wg", "set", IFNAME]
        for i, k in enumerate(keys):
            add += ["peer", k, "allowed-ips", f"fd00:b5e4:1c0d:4200:ffff::{i + 1:x}/128"]
        remove = ["wg", "set", IFNAME] + [x for k in keys for x in ("peer", k, "remove")]
        sets, reads = [], []
        for _ in range(3):
            t0 = time.monotonic()
            subprocess.run(add, check=True)
            sets.append(time.monotonic() - t0)
            subprocess.run(remove, check=True)
            t0 = time.monotonic()
            subprocess.run(["wg", "show", IFNAME, "dump"], check=True, stdout=subprocess.DEVNULL)
            reads.append(time.monotonic() - t0)
        print(f"anchor, wg on the {done:,}-peer device: `wg set` of {anchor_peers} new peers median {statistics.median(sets) * 1000:.0f} ms "
              f"(max {max(sets) * 1000:.0f}), `wg show dump` median {statistics.median(reads) * 1000:.0f} ms "
              f"(max {max(reads) * 1000:.0f}), 3 runs each")
    finally:
        stop.set()
        if serve:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        wgf_netns.remove(NS, [IFNAME])
        log.close()
        if a.keep_log:
            shutil.copy(f"{tmp}/serve.log", a.keep_log)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
