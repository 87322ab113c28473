#!/usr/bin/env python3
"""A mistyped command, option or choice is a usage error (exit 1) that suggests the nearest one.

Every command and option comes from `wg-fleet help-commands`, so a new one is covered without
editing this test: each command name with two letters swapped, each long option with a letter
dropped, each choice of a positional argument with a letter doubled. A word close to nothing is
named as not a command, with no guess. A node name in no fleet suggests the nearest node."""
import subprocess
import sys

BIN = sys.argv[1]
EXAMPLE = sys.argv[2]  # a fleet file whose subnet fleets' server is named "server"
failures = []


def run(args):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def expect(args, wanted):
    rc, err = run(args)
    ok = rc == 1 and wanted in err
    print(("ok   " if ok else "FAIL ") + " ".join(args) + (" -> " + err.strip().splitlines()[-1] if err.strip() else ""))
    if not ok:
        failures.append(args)


def swap(word):
    if len(word) < 3:  # "up": a letter doubled instead
        return word + word[-1]
    i = max(1, len(word) // 2 - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


lines = subprocess.run([BIN, "help-commands"], capture_output=True, text=True, check=True).stdout.splitlines()
commands = {}
for line in lines:
    path, _, opts = line.partition("\t")
    commands[tuple(path.split())] = opts.split()
globals_ = subprocess.run([BIN, "help-commands", "--globals"], capture_output=True, text=True, check=True).stdout.split()
assert len(commands) >= 10, commands

for path, opts in commands.items():
    # The command itself, mistyped at its last word.
    typo = swap(path[-1])
    if typo != path[-1]:
        expect(list(path[:-1]) + [typo], f"did you mean '{' '.join(path)}'?")
    longs = [o for o in opts if o.startswith("--")] + [o for o in globals_ if o.startswith("--") and o != "--help"]
    for o in opts:
        if o.startswith("--") and len(o) > 5:
            dropped = o[:4] + o[5:]
            # Another option as close as the intended one may be named instead; never a far one.
            rc, err = run(list(path) + [dropped])
            named = [w.rstrip("?") for w in err.split() if w.startswith("--") and w.rstrip("?") in longs]
            ok = rc == 1 and "did you mean" in err and named and (named[-1] == o or len(named[-1]) >= len(dropped))
            print(("ok   " if ok else "FAIL ") + " ".join(path) + " " + dropped + " -> " + (named[-1] if named else "nothing"))
            if not ok:
                failures.append(list(path) + [dropped])
        if o.startswith("<") and ":" in o:
            for choice in o[o.index(":") + 1:-1].split(","):
                expect(list(path) + [choice + choice[-1]], f"did you mean '{choice}'?")

# A global option mistyped before the command, and a word close to no command.
expect(["--nod", "x", "plan"], "did you mean --node?")
expect(["frobnicate"], "'frobnicate' is not a command; see wg-fleet --help")
rc, err = run(["frobnicate"])
if "did you mean" in err:
    failures.append(["frobnicate (guessed)"])
# A node name that is in no fleet: the nearest node is suggested.
for cmd in (["plan"], ["status"], ["render", "hosts"], ["render", "wg-quick", "--fleet", "southeast"]):
    expect(["-c", EXAMPLE, "--node", "serverr"] + cmd, "did you mean 'server'?")
# Hidden commands are never suggested.
rc, err = run(["help-command"])
if "help-commands" in err:
    failures.append(["help-command (suggested a hidden command)"])

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
