#!/usr/bin/env python3
"""Run a command several times; print one line per run: "RC WALL_S CPU_S MAXRSS_KB".

Each run goes through GNU time (`/usr/bin/time -f '%x %M'`), which reports
the command's own peak RSS. Measuring from here with wait4 would not do: a
child forked from Python starts with Python's high-water mark (about 14 MB),
which exec keeps, so small runs would all read as Python's size. Wall time is
a monotonic clock around the run (GNU time's %e has 10 ms steps); RC is GNU
time's exit status (the command's, or 128 + N if signal N ended it); CPU is user
+ system time from wait4, which includes the command's. A run that outlives
--timeout is killed, its peak RSS so far read from /proc (VmHWM), and
reported with RC "timeout"; the remaining runs are then skipped. The
command's stdout goes to /dev/null; its stderr is kept in --stderr.

    run_timed.py --runs 5 --timeout 120 --stderr ERRFILE -- CMD ARGS...
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

GNU_TIME = "/usr/bin/time"


def vm_hwm_kb(pid: int) -> int:
    """Peak RSS so far of pid's children (the command under GNU time), in KiB."""
    best = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return 0
    for k in kids:
        try:
            with open(f"/proc/{k}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]))
        except OSError:
            pass
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--stderr", default=os.devnull)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command")
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"run_timed: {GNU_TIME} is missing (Debian package 'time')")
    with open(a.stderr, "wb") as err, open(os.devnull, "wb") as null, \
            tempfile.NamedTemporaryFile("r", prefix="run_timed.") as tf:
        for _ in range(a.runs):
            timed_out = threading.Event()
            hwm = [0]
            t0 = time.perf_counter()
            p = subprocess.Popen([GNU_TIME, "-o", tf.name, "-f", "%x %M", *cmd], stdin=subprocess.DEVNULL,
                                 stdout=null, stderr=err, start_new_session=True)

            def kill(p=p, ev=timed_out):
                hwm[0] = vm_hwm_kb(p.pid)
                ev.set()
                os.killpg(p.pid, signal.SIGKILL)

            timer = threading.Timer(a.timeout, kill)
            timer.start()
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            timer.cancel()
            p.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
            cpu = ru.ru_utime + ru.ru_stime
            if timed_out.is_set():
                rc, rss = "timeout", hwm[0]
            else:
                # GNU time exits with the command's status, or 128 + N if signal N ended it
                # (when its %x says 0); the last line of its report is the format's.
                tf.seek(0)
                lines = tf.read().splitlines()
                rc, rss = str(p.returncode), (lines[-1].split()[-1] if lines else "0")
            print(f"{rc} {wall:.4f} {cpu:.4f} {rss}", flush=True)
            if timed_out.is_set():
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
