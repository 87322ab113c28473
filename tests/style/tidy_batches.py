#!/usr/bin/env python3
"""Groups sources into batches for clang-tidy (tests/style/clang_tidy.sh).

Most of clang-tidy's time on one file goes to parsing and matching the standard library, fmt and
nlohmann headers it includes, the same for every file. A batch is one translation unit that
includes several sources compiled with the same flags, so those headers are parsed and matched
once per batch instead of once per file. Findings in a batched source are still reported at its
own path and line (HeaderFilterRegex covers reconciler/).

    tidy_batches.py BUILD_DIR OUT_DIR MAX_PER_BATCH FILE...

Writes OUT_DIR/batch-N.cpp and OUT_DIR/compile_commands.json, and prints the batch paths, one per
line. A file missing from BUILD_DIR's compile_commands.json is an error (exit 1).
"""

import json
import os
import shlex
import sys


def flags_without_io(entry):
    """The compile command without its output and input: the key sources can share a batch by."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c"):
            skip = True
            continue
        if os.path.realpath(os.path.join(entry["directory"], a)) == os.path.realpath(entry["file"]):
            continue
        out.append(a)
    return tuple(out)


def main():
    if len(sys.argv) < 5:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build, out_dir, per_batch, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    with open(os.path.join(build, "compile_commands.json"), encoding="utf-8") as f:
        entries = {os.path.realpath(os.path.join(e["directory"], e["file"])): e for e in json.load(f)}

    groups = {}  # flags -> (directory, [sources])
    missing = []
    for name in files:
        path = os.path.realpath(name)
        entry = entries.get(path)
        if entry is None:
            missing.append(name)
            continue
        groups.setdefault(flags_without_io(entry), (entry["directory"], []))[1].append(path)
    if missing:
        print(f"tidy_batches.py: not in {build}/compile_commands.json: {', '.join(missing)}", file=sys.stderr)
        return 1

    commands, batches = [], []
    for flags, (directory, sources) in groups.items():
        for start in range(0, len(sources), per_batch):
            batch = os.path.join(out_dir, f"batch-{len(batches)}.cpp")
            with open(batch, "w", encoding="utf-8") as f:
                f.write("// Sources checked together by tests/style/clang_tidy.sh; generated.\n")
                for src in sources[start : start + per_batch]:
                    f.write(f'#include "{src}"  // NOLINT(bugprone-suspicious-include)\n')
            commands.append({"directory": directory, "file": batch, "arguments": [*flags, "-c", batch]})
            batches.append(batch)
    with open(os.path.join(out_dir, "compile_commands.json"), "w", encoding="utf-8") as f:
        json.dump(commands, f, indent=1)
    print("\n".join(batches))
    return 0


if __name__ == "__main__":
    sys.exit(main())
