#!/usr/bin/env python3
"""`wg-fleet watch` taking edits: the time from an edit's rename until the journal shows its op.

Usage: watch_edits.py WGF_SCRIPT CONFIG JOURNAL EDITS NEEDLE [ALT_CONFIG_TEXT_FILE]

WGF_SCRIPT runs wg-fleet for the node (tests/bench/bench_forwards.sh's "$tmp/wgf"); it is started
as `WGF_SCRIPT -v watch --interval 3600`. CONFIG is the file it watches, whose text now is the
"without" text; ALT is a file holding the "with" text (the same plus one change). EDITS times the
file is replaced by rename (as editors do: a temporary file beside it, fsync, rename), alternating
"with" and "without"; each time the script waits until JOURNAL has a new line containing NEEDLE.
Prints the median (min-max) latency in ms, and watch's `-v` timing lines of the last edit of each
kind (loading the file, then reconciling). Times are reported, never asserted. The watch process is stopped on exit, also on
failure (SIGTERM, then SIGKILL by PID).
"""
import os
import statistics
import subprocess
import sys
import time

from live_bench import wait_in_file, write_by_rename


def wait_for(path, needle, offset, timeout, proc):
    return wait_in_file(path, needle, offset, timeout, proc, lambda: SystemExit(f"watch_edits: watch exited {proc.returncode}"))


def main():
    script, config, journal, edits, needle, alt = sys.argv[1:7]
    without = open(config).read()
    with_text = open(alt).read()
    err_path = config + ".watch.err"
    err = open(err_path, "w")
    proc = subprocess.Popen([script, "-v", "watch", "--interval", "3600"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    try:
        if wait_for(err_path, " watching ", 0, 300, proc) is None:
            raise SystemExit("watch_edits: watch did not start within 300 s")
        lat = []
        timings = {}
        for i in range(int(edits)):
            text, kind = (with_text, "add") if i % 2 == 0 else (without, "remove")
            j_off = os.path.getsize(journal) if os.path.exists(journal) else 0
            e_off = os.path.getsize(err_path)
            # The temporary file's own event is ignored by watch; let it pass before the rename.
            t0 = write_by_rename(config, text, settle=0.3)
            t1 = wait_for(journal, needle, j_off, 60, proc)
            if t1 is None:
                raise SystemExit(f"watch_edits: edit {i} not in the journal within 60 s")
            lat.append((t1 - t0) * 1000)
            time.sleep(0.2)
            with open(err_path, errors="replace") as f:
                f.seek(e_off)
                lines = [l.split(" timing: ", 1)[1] for l in f.read().splitlines() if " timing: " in l]
            if lines:
                timings[kind] = " | ".join(lines)
        if os.path.exists(config) and open(config).read() != without:
            write_by_rename(config, without, settle=0.3)
        print(f"{statistics.median(lat):.1f} ms ({min(lat):.1f}–{max(lat):.1f}) over {len(lat)} edits")
        for kind, line in timings.items():
            print(f"  watch -v, {kind}: {line}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()
        os.unlink(err_path)


if __name__ == "__main__":
    main()
