#!/usr/bin/env python3
"""Benchmark of issue 14: the rollback of a one-peer try on a controller with 10,000 peers over
wireguard-go, against `wg syncconf` of the whole previous config, in the same run.

    bench_try.py WG_FLEET_BINARY [--peers 10000] [--runs 5]     (root)

The node (the first controller of a gen_fleet.py fleet) is applied once. Each run then:
  later run  `wg-fleet apply --try 1 --manual` of the file with one peer's route moved; the
             process is SIGKILLed once the change is in force; after the deadline, the next
             `wg-fleet -v apply` rolls the try back (and does nothing else). Reported: the
             rollback itself (its -v timing: read, diff, apply, state, read again, verify) and
             the whole command (load the file, lock, rollback).
  waiting    `wg-fleet -v apply --try 2 --probe false` of the same file: the probe fails, and at
             the deadline the process that waited rolls the try back itself, planning from the
             devices its last check read (in the window's last second) and reading them once,
             to verify. Reported: that rollback's -v timing.
  syncconf   the same one-peer change made with `wg set`, then `wg syncconf IF PREV` with PREV
             the device's `wg showconf` from before it (the whole previous config), timed.
Both restore exactly that peer; each is checked (the peer's allowed IPs are back). Times are
reported, never asserted. Everything lives in a network namespace made for the run (wgft<PID>),
removed on exit with the wireguard-go it runs.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from live_bench import moved_route, parse_fleet  # noqa: E402


def run(argv, check=True, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {p.returncode}:\n{p.stderr[-2000:]}")
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--peers", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_try: needs root (network namespaces, wireguard-go)")
    pid = os.getpid()
    ns, ifname = f"wgft{pid}", f"wgft{pid}"
    tmp = tempfile.mkdtemp(prefix="wgf-bench-try.")
    state = os.path.join(tmp, "state")
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        src = os.path.join(tmp, "fleet.gen.yaml")
        run([sys.executable, os.path.join(HERE, "gen_fleet.py"), "--controllers", "3", "--peers", str(a.peers), "--out", src,
             "--fleet", ifname])
        files = os.path.join(tmp, "files")
        text = f"hosts_file: {files}/hosts\nhttp_routes_dir: {files}/routes\n" + open(src).read()
        lines, controllers, peers = parse_fleet(text)
        node = controllers[0]["name"]
        routed = [p for p in peers if p["route"] and p["controller"] == node]
        peer = routed[len(routed) // 2]
        moved = list(lines)
        moved[peer["route_line"]] = moved[peer["route_line"]].replace(f"[{peer['route']}]", f"[{moved_route(peer['route'])}]")
        cfg, cfg_moved = os.path.join(tmp, "fleet.yaml"), os.path.join(tmp, "moved.yaml")
        open(cfg, "w").write(text)
        open(cfg_moved, "w").write("".join(moved))

        def wgf(conf, *args):
            return ["ip", "netns", "exec", ns, a.bin, "-c", conf, "--node", node, "--state-dir", state] + list(args)

        def ips_of_peer():
            out = run(["ip", "netns", "exec", ns, "wg", "show", ifname, "allowed-ips"]).stdout
            for line in out.splitlines():
                k, _, ips = line.partition("\t")
                if k == peer["key"]:
                    return ips.split()
            raise SystemExit("the peer is not on the device")

        run(wgf(cfg, "-q", "apply"))
        before = ips_of_peer()
        prev = os.path.join(tmp, "prev.conf")
        fd = os.open(prev, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(run(["ip", "netns", "exec", ns, "wg", "showconf", ifname]).stdout)
        n = len(run(["ip", "netns", "exec", ns, "wg", "show", ifname, "peers"]).stdout.split())
        changed = [x for x in before if x != peer["route"]] + [moved_route(peer["route"])]
        rollback_ms, command_ms, syncconf_ms, dump_ms, ops, waiting_ms = [], [], [], [], [], []
        for i in range(a.runs):
            # The try, killed once its change is in force.
            p = subprocess.Popen(wgf(cfg_moved, "apply", "--try", "1", "--manual"), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in p.stdout:
                if re.match(r"^Try \S+ applied;", line):
                    break
            record = json.load(open(os.path.join(state, "try.json")))
            os.kill(record["pid"], signal.SIGKILL)
            p.wait()
            if moved_route(peer["route"]) not in ips_of_peer():
                raise SystemExit("the try did not move the peer's route")
            while time.time() <= record["deadline"]:
                time.sleep(0.05)
            time.sleep(0.3)  # wireguard-go settles after the 10,000-peer reads, as for syncconf below
            t0 = time.monotonic()
            r = run(wgf(cfg, "-v", "apply"), check=False)
            command_ms.append((time.monotonic() - t0) * 1000)
            if r.returncode != 1 or "Rolled back try" not in r.stdout:
                raise SystemExit(f"the rollback run did not roll back:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            m = re.search(r"timing of the rollback: .*\(total ([\d.]+) ms\)", r.stderr)
            rollback_ms.append(float(m.group(1)))
            ops.append(int(re.search(r"\((\d+) operation\(s\)\)\.", r.stdout).group(1)))
            if sorted(ips_of_peer()) != sorted(before):
                raise SystemExit("the rollback did not restore the peer")
            print(f"run {i}: {m.group(0)}; whole command {command_ms[-1]:.0f} ms", file=sys.stderr)
            # The same try, rolled back by the process that waited for its verdict.
            r = run(wgf(cfg_moved, "-v", "apply", "--try", "2", "--probe", "false"), check=False)
            if r.returncode != 1 or "Rolled back try" not in r.stdout:
                raise SystemExit(f"the waiting process did not roll back:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            m = re.search(r"timing of the rollback: .*\(total ([\d.]+) ms\)", r.stderr)
            if "from the last poll" not in m.group(0):
                raise SystemExit(f"the waiting process's rollback read the devices again: {m.group(0)}")
            waiting_ms.append(float(m.group(1)))
            if sorted(ips_of_peer()) != sorted(before):
                raise SystemExit("the waiting process's rollback did not restore the peer")
            print(f"run {i}: waiting process's {m.group(0)}", file=sys.stderr)
            # The anchor: the same one-peer change, undone by wg syncconf of the previous config.
            run(["ip", "netns", "exec", ns, "wg", "set", ifname, "peer", peer["key"], "allowed-ips", ",".join(changed)])
            time.sleep(0.3)
            t0 = time.monotonic()
            run(["ip", "netns", "exec", ns, "wg", "syncconf", ifname, prev])
            syncconf_ms.append((time.monotonic() - t0) * 1000)
            if sorted(ips_of_peer()) != sorted(before):
                raise SystemExit("wg syncconf did not restore the peer")
            # One read of the device by `wg` (the rollback reads it twice: to plan, to verify).
            t0 = time.monotonic()
            run(["ip", "netns", "exec", ns, "wg", "show", ifname, "dump"])
            dump_ms.append((time.monotonic() - t0) * 1000)
            print(f"run {i}: wg syncconf {syncconf_ms[-1]:.1f} ms; wg show dump {dump_ms[-1]:.1f} ms", file=sys.stderr)
        med = statistics.median
        rb, cmd, sc = med(rollback_ms), med(command_ms), med(syncconf_ms)
        print(f"| device | {n} peers (wireguard-go), one peer's route moved by the try |")
        print(f"| rollback (plan, apply, verify; -v timing) | {rb:.1f} ms ({min(rollback_ms):.1f}–{max(rollback_ms):.1f}), "
              f"{med(ops):.0f} operation(s) |")
        wt = med(waiting_ms)
        print(f"| rollback by the process that waited (plans from its last check's read; -v timing) | {wt:.1f} ms "
              f"({min(waiting_ms):.1f}–{max(waiting_ms):.1f}) |")
        print(f"| whole `wg-fleet apply` that rolls back | {cmd:.0f} ms ({min(command_ms):.0f}–{max(command_ms):.0f}) |")
        print(f"| `wg syncconf` of the previous config | {sc:.1f} ms ({min(syncconf_ms):.1f}–{max(syncconf_ms):.1f}) |")
        print(f"| `wg show dump` of the device (one read) | {med(dump_ms):.1f} ms ({min(dump_ms):.1f}–{max(dump_ms):.1f}) |")
        print(f"| rollback / syncconf (target ≤ 0.5×) | {rb / sc:.2f}× ({'met' if rb <= 0.5 * sc else 'not met'}); whole "
              f"command {cmd / sc:.2f}× |")
        print(f"| waiting process's rollback / syncconf (target ≤ 0.5×) | {wt / sc:.2f}× "
              f"({'met' if wt <= 0.5 * sc else 'not met'}) |")
    finally:
        for p in run(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                os.kill(int(p), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.5)
        run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
