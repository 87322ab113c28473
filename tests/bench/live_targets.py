#!/usr/bin/env python3
"""One table of issue 9's targets from the --json of several bench_live.sh runs.

    live_targets.py SHAPE:FILE.json ...
"""

import json
import sys

ROWS = [
    ("load", "full load vs `wg setconf`"),
    ("noop", "no-op `apply` vs no-op `wg syncconf`"),
    ("watch_edit", "`watch` one-peer edit (rename → journal line) vs one-peer `wg syncconf`"),
    ("device_read", "device read (`-v` \"device\") vs `wg show dump`"),
    ("get_exchange", "UAPI `get=1` exchange vs `wg show dump`'s"),
]


def main(argv):
    runs = []
    for arg in argv:
        shape, _, path = arg.partition(":")
        with open(path) as f:
            r = json.load(f)
        runs.append((shape, r))
    print("| target | " + " | ".join(f"{s} {r['fleet']['device_peers']}" for s, r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for key, what in ROWS:
        cells = []
        for _, r in runs:
            t = r.get("targets", {}).get(key)
            if not t or t["ratio"] != t["ratio"]:
                cells.append("–")
                continue
            c = f"{t['ratio']:.2f}× ({t['wgf_s'] * 1000:.0f} / {t['wg_s'] * 1000:.0f} ms)"
            if t["limit"] is not None:
                c += f" ≤ {t['limit']}×: **{'met' if t['met'] else 'NOT met'}**"
            cells.append(c)
        print(f"| {what} | " + " | ".join(cells) + " |")
    cells = []
    for _, r in runs:
        t = r.get("targets", {}).get("rss")
        if not t:
            cells.append("–")
            continue
        c = f"{t['peak_mb']:.1f} MB"
        if t["limit"] is not None:
            c += f" < {t['limit']} MB: **{'met' if t['met'] else 'NOT met'}**"
        cells.append(c)
    print("| peak RSS of apply and watch | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
