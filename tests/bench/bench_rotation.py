#!/usr/bin/env python3
"""Key rotation's outage per session (issue 14: target <= 2 s), with where the time goes.

usage: bench_rotation.py WG_FLEET_BINARY SOURCE_DIR [ROTATIONS]   (root)

The demo fleet (2 controllers, 3 peers) in a sandbox of network namespaces with wireguard-go,
`watch --interval 1` on every node, the sandbox's shared keys_dir. ROTATIONS times (default 5),
alice runs `wg-fleet rotate --at +4s` while alice pings hub1 and hub2 every 100 ms (`ping -D`:
each reply's arrival time). A session's outage is the longest time between two replies, less the
100 ms they are apart anyway. Where the time goes, from the watch logs (their lines' times are
the end of each node's run): how long after the switch time alice's run that switched her key
ended, and the hub's run that swapped her peer entry; the rest, up to the first reply, is the
handshake and the ping's next send.

The anchor, measured in the same run after the watches stop: the same swap by hand with `wg`,
alice's `wg set demo private-key` and each hub's `wg set demo peer OLD remove peer NEW ...`
started at the same moment: the outage of the protocol itself, with no reconciler in between.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

BIN, SRC = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
ROTATIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
NAME = f"bench-rot{os.getpid()}"
SB = f"/run/wg-fleet-sandbox/{NAME}"
KEYS = f"{SB}/keys/demo"
NODES = ["hub1", "hub2", "alice", "bob", "carol"]


def run(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kw)


def node(n, *args, **kw):
    return run(BIN, "sandbox", "exec", "--name", NAME, n, *args, **kw)


def pings(targets, seconds):
    return {t: subprocess.Popen([BIN, "sandbox", "exec", "--name", NAME, "alice", "ping", "-n", "-D", "-i", "0.1", "-W", "1", "-c",
                                 str(int(seconds * 10)), f"{t}.demo"], stdout=subprocess.PIPE, text=True) for t in targets}


def reply_times(out):
    return [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=", out, re.M)]


def outage(out):
    """Longest time between two replies, less the 100 ms between sends."""
    times = reply_times(out)
    return max([0.0] + [b - a - 0.1 for a, b in zip(times, times[1:])])


def first_reply_after(out, t):
    return next((x for x in reply_times(out) if x > t), None)


def log_time(line):
    # spdlog's "%Y-%m-%dT%H:%M:%S.%e" in local time
    stamp = line.split(" ", 1)[0]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def first_after(path, pattern, since):
    """The first log line with `pattern` at or after `since` (a run switches only once its time came)."""
    with open(path) as f:
        for line in f:
            if pattern in line:
                try:
                    t = log_time(line)
                except ValueError:
                    continue
                if t >= since:
                    return t
    return None


def summary(values):
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main():
    if os.geteuid() != 0:
        print("needs root (network namespaces)")
        return 77
    tmp = tempfile.mkdtemp(prefix="wgf-bench-rot.")
    cfg = f"{tmp}/fleet.yaml"
    with open(f"{SRC}/examples/demo.yaml") as f:
        text = re.sub(r"^keys_dir:.*$", "", f.read(), flags=re.M)
    with open(cfg, "w") as f:
        f.write(text)
    watches = []
    try:
        run(BIN, "-q", "sandbox", "--name", NAME, "up", cfg)
        for n in NODES:
            log = open(f"{tmp}/watch-{n}.log", "w")
            watches.append(subprocess.Popen([BIN, "sandbox", "exec", "--name", NAME, n, "wg-fleet", "watch", "--interval", "1"],
                                            stdout=log, stderr=subprocess.STDOUT))
        time.sleep(3)
        run(BIN, "-q", "sandbox", "--name", NAME, "test")
        rows = []
        for i in range(ROTATIONS):
            p = pings(["hub1", "hub2"], 12)
            time.sleep(2)
            node("alice", "wg-fleet", "-q", "rotate", "--at", "+4s")
            with open(f"{KEYS}/alice.next.pub") as f:
                published = f.read()
            at = datetime.strptime(re.search(r"switch_at: (\S+)", published).group(1), "%Y-%m-%dT%H:%M:%SZ")
            new = re.search(r"public_key: (\S+)", published).group(1)
            switch = at.replace(tzinfo=timezone.utc).timestamp()
            outs = {t: pp.communicate()[0] for t, pp in p.items()}
            own = first_after(f"{tmp}/watch-alice.log", "key switched", switch)
            for t in ("hub1", "hub2"):
                gap = outage(outs[t])
                swap = first_after(f"{tmp}/watch-{t}.log", f"-> {new[:8]}", switch)  # its "peer key swapped" line
                both = max(own, swap) if own and swap else None
                back = first_reply_after(outs[t], both) if both else None
                rows.append({"rotation": i + 1, "session": f"alice-{t}", "outage": gap,
                             "alice_done": own - switch if own else float("nan"),
                             "hub_done": swap - switch if swap else float("nan"),
                             "handshake": back - both if back else float("nan")})
                r = rows[-1]
                print(f"rotation {r['rotation']} {r['session']}: outage {r['outage']:.2f} s; after the switch time: alice's run done "
                      f"+{r['alice_done']:.3f} s, {t}'s run done +{r['hub_done']:.3f} s, first reply {r['handshake']:.3f} s after both "
                      f"(pings 100 ms apart)",
                      flush=True)
            time.sleep(1)
        for w in watches:
            w.terminate()
        for w in watches:
            w.wait()
        watches = []

        # The anchor: the same swap with wg by hand, both sides at once.
        anchor = []
        for i in range(ROTATIONS):
            old = node("alice", "wg", "show", "demo", "public-key").stdout.strip()
            key = run("wg", "genkey").stdout.strip()
            pub = run("wg", "pubkey", input=key + "\n").stdout.strip()
            keyfile = f"{tmp}/anchor.key"
            with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(key + "\n")
            cmds = [["alice", "wg", "set", "demo", "private-key", keyfile]]
            for h in ("hub1", "hub2"):
                dump = node(h, "wg", "show", "demo", "dump").stdout.splitlines()[1:]
                line = next(l.split("\t") for l in dump if l.startswith(old))
                args = [h, "wg", "set", "demo", "peer", old, "remove", "peer", pub, "allowed-ips", line[3]]
                if line[2] != "(none)":
                    args += ["endpoint", line[2]]
                cmds.append(args)
            p = pings(["hub1", "hub2"], 10)
            time.sleep(3)
            started = time.time()
            procs = [subprocess.Popen([BIN, "sandbox", "exec", "--name", NAME, *c]) for c in cmds]
            for pr in procs:
                pr.wait()
            set_done = time.time() - started
            outs = {t: pp.communicate()[0] for t, pp in p.items()}
            for t in ("hub1", "hub2"):
                gap = outage(outs[t])
                anchor.append(gap)
                print(f"anchor {i + 1} alice-{t}: outage {gap:.2f} s (the three wg set done {set_done:.3f} s after they started)", flush=True)
        outs = [r["outage"] for r in rows]
        print(f"wg-fleet rotate under watch: outage per session over {len(outs)} sessions ({ROTATIONS} rotations): {summary(outs)}")
        print(f"  alice's switching run done after the switch time: {summary([r['alice_done'] for r in rows])}")
        print(f"  the hub's swapping run done after the switch time: {summary([r['hub_done'] for r in rows])}")
        print(f"  first reply after both runs ended (handshake, and up to 100 ms until the next ping): "
              f"{summary([r['handshake'] for r in rows])}")
        print(f"anchor, wg set by hand on both sides at once: outage per session over {len(anchor)} sessions: {summary(anchor)}")
        return 0
    finally:
        for w in watches:
            w.terminate()
            w.wait()
        run(BIN, "sandbox", "down", "--name", NAME, check=False)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
