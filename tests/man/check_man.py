#!/usr/bin/env python3
"""The man pages are complete and clean, checked against the binary and the sources.

usage: check_man.py WG_FLEET_BINARY REPO_ROOT

- both pages pass `mandoc -T lint -W style` with no warning or error, and style notes only of
  the kinds ALLOWED_STYLE lists with their reason; `groff -ww -z -man` prints nothing;
- wg-fleet(8): every command of `wg-fleet help-commands` (a positional with choices, such as
  sandbox's action, counts as one command per choice) has an entry in COMMANDS whose tag starts
  with its words, and every option name (short and long) of the command appears in that entry;
  every global option (`help-commands --globals`) appears in GLOBAL OPTIONS;
- wg-fleet(8): every exit code of reconciler/cli/common.hpp is a tag in EXIT STATUS, every
  signal the sources block for signalfd is in SIGNALS, every environment variable the sources
  read or set (getenv/setenv, and libsystemd's for sd_notify) is in ENVIRONMENT, and every
  absolute path and state-directory file named in the sources is in FILES;
- wg-fleet.yaml(5) and schema/wg-fleet.schema.json: every key of `wg-fleet help-keys` (the
  parser's own tables) is a tag in the section of the page for its mapping, and a property of
  the schema at the same path; and every property the schema names is a key the parser accepts.

Prints one line per check that failed (and a count); exits 1 on any failure.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys

# Lint notes accepted, at mandoc's STYLE level only, each with the reason it stays.
ALLOWED_STYLE = {
    "input text line longer than 80 bytes":
        "the pages break source lines at clauses, up to about 100 bytes; readers never see source "
        "lines (both formatters fill them), and rewrapping every paragraph would rewrite both "
        "pages while others document their commands in them",
}

# The section of wg-fleet.yaml(5) that documents the keys of each mapping, by the mapping's path.
# A new mapping in the parser fails here until the page has a section for it.
KEY_SECTIONS = {
    "": "TOP-LEVEL KEYS",
    "fleets.*": "FLEETS",
    "fleets.*.controllers.*": "MEMBERS",
    "fleets.*.peers.*": "MEMBERS",
    "forwards[]": "FORWARDS",
    "http_routes[]": "HTTP ROUTES",
    "serve": "SERVE",
    "firewall": "FIREWALL",
    "fleets.*.headscale": "HEADSCALE",
}

# Variables read through libsystemd rather than by name in our sources.
LIBSYSTEMD_ENV = {"sd_notify": ["NOTIFY_SOCKET"], "sd_watchdog_enabled": ["WATCHDOG_USEC", "WATCHDOG_PID"]}

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


# --- roff to text -----------------------------------------------------------------------------

ESCAPES = [(r"\-", "-"), (r"\(em", "\u2014"), (r"\(en", "\u2013"), (r"\(->", "\u2192"), (r"\(lq", '"'),
           (r"\(rq", '"'), (r"\&", ""), (r"\e", "\\"), (r"\ ", " "), (r"\|", ""), (r"\%", "")]


def plain(s):
    s = re.sub(r"\\f[BIRP]|\\f\[[A-Z]*\]", "", s)
    for a, b in ESCAPES:
        s = s.replace(a, b)
    return s


def macro_args(rest):
    args, cur, quoted, i = [], "", False, 0
    while i < len(rest):
        c = rest[i]
        if c == '"':
            if quoted and i + 1 < len(rest) and rest[i + 1] == '"':
                cur += '"'
                i += 1
            else:
                quoted = not quoted
        elif c in " \t" and not quoted:
            if cur:
                args.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur:
        args.append(cur)
    return args


def line_text(line):
    """The text a source line contributes (macros with font arguments as their words)."""
    if line.startswith(".\\\"") or line.startswith("'\\\""):
        return ""
    if not line.startswith("."):
        return plain(line)
    name, _, rest = line[1:].partition(" ")
    args = macro_args(rest)
    if name in ("BR", "RB", "BI", "IB", "IR", "RI"):
        return plain("".join(args))
    if name in ("B", "I", "SH", "SS"):
        return plain(" ".join(args))
    return ""


def sections(path):
    """{section name: [source lines]} of a page."""
    out, cur = {}, None
    for line in path.read_text().splitlines():
        if line.startswith(".SH"):
            cur = plain(" ".join(macro_args(line[3:]))).strip()
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def entries(lines):
    """The .TP entries of a section: [(tag text, whole text)]."""
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith(".TP") and i + 1 < len(lines):
            tag = line_text(lines[i + 1]).strip()
            body, j = [], i + 2
            while j < len(lines) and not lines[j].startswith(".TP"):
                body.append(line_text(lines[j]))
                j += 1
            out.append((tag, tag + "\n" + "\n".join(body)))
            i = j
        else:
            i += 1
    return out


def text_of(lines):
    return "\n".join(line_text(l) for l in lines)


def has_word(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


# --- checks -----------------------------------------------------------------------------------

def lint(pages):
    for page in pages:
        if not shutil.which("mandoc"):
            fail("mandoc is not installed (Debian package mandoc; ./run.sh deps)")
            break
        r = run("mandoc", "-T", "lint", "-W", "style", str(page))
        for line in (r.stdout + r.stderr).splitlines():
            m = re.match(r"mandoc: [^:]+:\d+:\d+: ([A-Z]+): (.*)", line)
            if not m:
                fail(f"mandoc: {line}")
            elif m.group(1) != "STYLE" or not any(m.group(2).startswith(k) for k in ALLOWED_STYLE):
                fail(line)
    for page in pages:
        if not shutil.which("groff"):
            fail("groff is not installed (Debian package groff-base; ./run.sh deps)")
            break
        r = run("groff", "-ww", "-z", "-man", str(page))
        for line in (r.stdout + r.stderr).splitlines():
            fail(f"groff -ww: {page.name}: {line}")
        if r.returncode != 0:
            fail(f"groff -ww: {page.name}: exit {r.returncode}")


def check_commands(binary, man8):
    secs = sections(man8)
    cmds = entries(secs.get("COMMANDS", []))
    out = run(binary, "help-commands")
    lines = [l for l in out.stdout.splitlines() if l]
    if out.returncode != 0 or len(lines) < 8:
        fail(f"help-commands: exit {out.returncode}, {len(lines)} commands")
    for line in lines:
        path, _, opts = line.partition("\t")
        tokens = opts.split()
        paths = [path]
        for t in tokens:
            m = re.fullmatch(r"<[^:>]+:([^>]+)>", t)
            if m and paths == [path]:
                paths = [f"{path} {c}" for c in m.group(1).split(",")]
        names = [t for t in tokens if t.startswith("-")]
        for p in paths:
            words = p.split()
            found = [body for tag, body in cmds if tag.split()[:len(words)] == words]
            if not found:
                fail(f"wg-fleet.8: COMMANDS has no entry for `{p}`")
                continue
            for n in names:
                if not any(has_word(body, n) for body in found):
                    fail(f"wg-fleet.8: the entry of `{p}` does not mention its option {n}")
    out = run(binary, "help-commands", "--globals")
    globals_text = text_of(secs.get("GLOBAL OPTIONS", []))
    if out.returncode != 0 or not out.stdout.split():
        fail(f"help-commands --globals: exit {out.returncode}")
    for n in out.stdout.split():
        if not has_word(globals_text, n):
            fail(f"wg-fleet.8: GLOBAL OPTIONS does not mention {n}")


def source_files(root):
    return sorted(p for p in (root / "reconciler").rglob("*") if p.suffix in (".cpp", ".hpp"))


def check_exit_signals_env_files(root, man8):
    secs = sections(man8)
    exit_tags = {tag for tag, _ in entries(secs.get("EXIT STATUS", []))}
    codes = re.findall(r"inline constexpr int k\w+ = (\d+);", (root / "reconciler/cli/common.hpp").read_text())
    if not codes:
        fail("no exit codes found in reconciler/cli/common.hpp")
    for c in codes:
        if c not in exit_tags:
            fail(f"wg-fleet.8: EXIT STATUS has no entry for exit code {c}")

    signals, env, paths, state_files = set(), set(), set(), set()
    for f in source_files(root):
        text = f.read_text()
        signals.update(re.findall(r"sigaddset\(\s*&\w+\s*,\s*(SIG[A-Z0-9]+)\s*\)", text))
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if re.search(r"\b(getenv|setenv)\s*\(", line):
                for near in lines[max(0, i - 2):i + 1]:
                    env.update(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', near))
        for call, names in LIBSYSTEMD_ENV.items():
            if re.search(r"\b" + call + r"\s*\(", text):
                env.update(names)
        for p in re.findall(r'"(/(?:etc|var|run)/[^":\s]*)"', text):
            paths.add(p.rstrip("/"))
        state_files.update(re.findall(r'"/(lock|[a-z_]+\.(?:json|log|cache))"', text))
    if not signals:
        fail("no signal handling found in the sources (sigaddset)")
    sig_text = text_of(secs.get("SIGNALS", []))
    for s in sorted(signals):
        if not has_word(sig_text, s):
            fail(f"wg-fleet.8: SIGNALS does not mention {s}")
    env_text = text_of(secs.get("ENVIRONMENT", []))
    for e in sorted(env):
        if not has_word(env_text, e):
            fail(f"wg-fleet.8: ENVIRONMENT does not mention {e}")
    files_text = text_of(secs.get("FILES", []))
    for p in sorted(paths):
        if p not in files_text:
            fail(f"wg-fleet.8: FILES does not mention {p}")
    for s in sorted(state_files):
        if "/" + s not in files_text:
            fail(f"wg-fleet.8: FILES does not mention the state directory's {s}")


class Schema:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target = self.doc
            for part in ref[2:].split("/"):
                target = target[part]
            node = {**{k: v for k, v in node.items() if k != "$ref"}, **target}
        return node

    def branches(self, node):
        """The node and every subschema whose keywords also apply at its place."""
        node = self.resolve(node)
        if not isinstance(node, dict):  # true / false schemas name no properties
            return
        yield node
        for k in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(k, []):
                yield from self.branches(sub)
        for k in ("then", "else"):
            if k in node:
                yield from self.branches(node[k])

    def child(self, node, part):
        found = []
        for b in self.branches(node):
            if part == "*":
                for k in ("additionalProperties",):
                    if isinstance(b.get(k), dict):
                        found.append(b[k])
                found.extend(b.get("patternProperties", {}).values())
            elif part == "[]":
                if isinstance(b.get("items"), dict):
                    found.append(b["items"])
            elif part in b.get("properties", {}):
                found.append(b["properties"][part])
        return found

    def has(self, path):
        nodes = [self.doc]
        for part in split_path(path):
            nodes = [c for n in nodes for c in self.child(n, part)]
            if not nodes:
                return False
        return True

    def paths(self, node=None, prefix=(), depth=0):
        """Every property path the schema names."""
        node = self.doc if node is None else node
        if depth > 12:
            return
        for b in self.branches(node):
            for k, v in b.get("properties", {}).items():
                yield prefix + (k,)
                yield from self.paths(v, prefix + (k,), depth + 1)
            if isinstance(b.get("additionalProperties"), dict):
                yield from self.paths(b["additionalProperties"], prefix + ("*",), depth + 1)
            for v in b.get("patternProperties", {}).values():
                yield from self.paths(v, prefix + ("*",), depth + 1)
            if isinstance(b.get("items"), dict):
                yield from self.paths(b["items"], prefix + ("[]",), depth + 1)


def split_path(path):
    """"forwards[].name" -> ["forwards", "[]", "name"]."""
    out = []
    for part in path.split("."):
        while part.endswith("[]"):
            out.append(part[:-2]) if part[:-2] else None
            out.append("[]")
            part = ""
        if part:
            out.append(part)
    return out


def join_path(parts):
    return ".".join(parts).replace(".[]", "[]")


def check_keys(binary, root, man5):
    out = run(binary, "help-keys")
    keys = [k for k in out.stdout.splitlines() if k]
    if out.returncode != 0 or len(keys) < 20:
        fail(f"help-keys: exit {out.returncode}, {len(keys)} keys")
    secs = sections(man5)
    schema = Schema(json.loads((root / "schema/wg-fleet.schema.json").read_text()))
    for k in keys:
        parts = split_path(k)
        parent, key = join_path(parts[:-1]), parts[-1]
        sec = KEY_SECTIONS.get(parent)
        if sec is None:
            fail(f"wg-fleet.yaml.5: no section is known for the keys under '{parent}' ({k}): add one to the page and to KEY_SECTIONS")
        elif sec not in secs:
            fail(f"wg-fleet.yaml.5: section {sec} is missing")
        elif not any(tag.split()[:1] == [key] for tag, _ in entries(secs[sec])):
            fail(f"wg-fleet.yaml.5: {sec} does not document the key {k}")
        if not schema.has(k):
            fail(f"schema/wg-fleet.schema.json: no property at {k}")
    accepted = set(keys)
    for p in sorted({join_path(p) for p in schema.paths()}):
        if p not in accepted:
            fail(f"schema/wg-fleet.schema.json: property {p} is not a key the parser accepts")


def main():
    binary, root = sys.argv[1], pathlib.Path(sys.argv[2])
    man8, man5 = root / "man/wg-fleet.8", root / "man/wg-fleet.yaml.5"
    lint([man8, man5])
    check_commands(binary, man8)
    check_exit_signals_env_files(root, man8)
    check_keys(binary, root, man5)
    print(f"{len(failures)} failed" if failures else "man pages: lint clean; every command, option, exit code, signal, "
          "environment variable, file and YAML key documented; schema in step with the parser")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
