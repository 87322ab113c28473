#!/usr/bin/env python3
"""Runs one command and records its wall time and peak RSS, for tests/bench/bench_live.sh.

Meant to run inside the network namespace of the device under test (`ip netns exec NS
live_run.py ...`), so that entering the namespace is not part of the figure. The wall time is
taken with a monotonic clock around the command; the peak RSS and CPU times come from GNU time
(`/usr/bin/time -f '%e %M %U %S'`), which wraps the command in both cases so wg and wg-fleet pay
the same small fork/exec cost. With --strace the command runs under `strace --seccomp-bpf`
instead (only connect, close and sendto stop the tracee, so the rest runs at full speed) and the
trace goes to the given file: live_bench.py reads the UAPI exchange windows from it.

    live_run.py --result FILE [--stdout FILE] [--stderr FILE] [--strace FILE [--strace-size N]] -- CMD...

Writes {"rc", "wall_s", "rss_kb", "user_s", "sys_s"} as JSON to --result; exits 0 unless it
could not run the command at all (the command's own status is in "rc").
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--result", required=True)
    ap.add_argument("--stdout", default=os.devnull)
    ap.add_argument("--stderr", default=os.devnull)
    ap.add_argument("--strace")
    ap.add_argument("--strace-size", type=int, default=8, help="bytes of each sendto buffer to keep")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command")

    fd, tfile = tempfile.mkstemp(prefix="live_run.", dir=os.path.dirname(os.path.abspath(a.result)))
    os.close(fd)
    if a.strace:
        argv = ["strace", "-f", "--seccomp-bpf", "-ttt", "-s", str(a.strace_size),
                "-e", "trace=connect,close,sendto", "-o", a.strace, "--"] + cmd
    else:
        argv = ["/usr/bin/time", "-f", "%e %M %U %S", "-o", tfile, "--"] + cmd
    try:
        with open(a.stdout, "wb") as so, open(a.stderr, "wb") as se:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se)
            rc = p.wait()
            wall = time.perf_counter() - t0
        res = {"rc": rc, "wall_s": wall, "rss_kb": None, "user_s": None, "sys_s": None}
        if not a.strace:
            # GNU time writes "Command exited with non-zero status N" first when it fails.
            lines = [l for l in open(tfile).read().splitlines() if l.strip()]
            if lines:
                f = lines[-1].split()
                if len(f) == 4:
                    res.update(rss_kb=int(f[1]), user_s=float(f[2]), sys_s=float(f[3]))
    finally:
        os.unlink(tfile)
    with open(a.result, "w") as out:
        json.dump(res, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
