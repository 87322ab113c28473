#!/usr/bin/env python3
"""check's CI formats on a real fleet file, each read back by the rules of its consumer.

The fleet file lies in a subdirectory whose name holds ',' and ':' (GitHub property escapes);
its keys_dir holds ',', ':' and a newline, and a published key there is garbage, so check
reports an error whose message contains all three (GitHub data escapes). The JSON is compared
field by field with the text diagnostics on stderr; the GitHub annotations are parsed back and
compared with the JSON, with GITHUB_WORKSPACE unset, set to a directory holding the file and to
one that does not; the GitLab report is validated against the Code Quality fields GitLab
documents and its lines compared with the JSON. Needs no root.
Usage: ci_formats.py WG_FLEET_BINARY
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema

BIN = os.path.realpath(sys.argv[1])
passed = failed = 0


def check(what, cond):
    global passed, failed
    print(("ok   " if cond else "FAIL ") + what)
    if cond:
        passed += 1
    else:
        failed += 1


def run(args, cwd, env_extra=None, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop and k not in ("GITHUB_WORKSPACE", "CI_PROJECT_DIR")}
    env.update(env_extra or {})
    p = subprocess.run([BIN] + args, cwd=cwd, env=env, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


# GitHub's toolkit (@actions/core, command.ts) escapes message data as % -> %25, CR -> %0D,
# LF -> %0A, and property values also : -> %3A and , -> %2C. Undone in the reverse order.
def unescape(s):
    for a, b in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        s = s.replace(a, b)
    return s


def parse_annotations(text):
    out = []
    for line in text.splitlines():
        m = re.fullmatch(r"::(error|warning|notice)(?: ([^:]*))?::(.*)", line)
        if not m:
            out.append({"unparsed": line})
            continue
        props = {}
        for kv in (m.group(2) or "").split(","):
            if kv:
                k, v = kv.split("=", 1)
                props[k] = unescape(v)
        out.append({"level": m.group(1), "props": props, "message": unescape(m.group(3))})
    return out


# The GitLab Code Quality report as GitLab documents it (docs.gitlab.com, "Code Quality report
# format"): an array of issues, each with these required fields; severity one of five words.
GITLAB_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path", "lines"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "lines": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {"begin": {"type": "integer", "minimum": 1}},
                    },
                },
            },
        },
    },
}

tmp = tempfile.mkdtemp(prefix="wgf-ci-formats.")
try:
    sub = os.path.join("ci", "sub,dir:x")
    os.makedirs(os.path.join(tmp, sub))
    keys = os.path.join(tmp, "keys,a:b\nc")
    os.makedirs(os.path.join(keys, "mesh"))
    with open(os.path.join(keys, "mesh", "erin.pub"), "w") as f:
        f.write("not a key\n")
    rel = os.path.join(sub, "fleet.yaml")
    with open(os.path.join(tmp, rel), "w") as f:
        f.write(
            f"state_dir: {tmp}/state\n"
            f"keys_dir: {json.dumps(keys)}\n"
            "fleets:\n"
            "  mesh:\n"
            "    controllers:\n"
            "      hub: { endpoint: 192.0.2.1 }\n"
            "    peers:\n"
            "      erin: { controller: hub }\n"
        )

    # -v: every pending member on a line of its own, as the JSON lists each.
    rc, _, text = run(["-v", "-c", rel, "check"], tmp)
    check("check of the broken file exits 1", rc == 1)
    # Without -v, the pending members are one line naming them, and nothing else changes.
    _, _, brief = run(["-c", rel, "check"], tmp)
    each_pending = [l for l in text.splitlines() if "no public key yet: pending" in l]
    check("without -v: one summary line instead of each pending member",
          len(each_pending) >= 2 and not any("no public key yet: pending" in l for l in brief.splitlines())
          and f"warning: {len(each_pending)} members without a public key yet" in brief and "(-v shows each)" in brief)
    check("without -v: the same summary counts", re.search(r"\d+ errors?, \d+ warnings?;.*", brief).group(0)
          == re.search(r"\d+ errors?, \d+ warnings?;.*", text).group(0))

    rc, out, _ = run(["-c", rel, "check", "--format", "json"], tmp)
    check("check --format json exits 1", rc == 1)
    doc = json.loads(out)
    check("json: exactly version and diagnostics, version 1", list(doc) == ["version", "diagnostics"] and doc["version"] == 1)
    diags = doc["diagnostics"]
    check("json: every diagnostic has exactly file, line, column, path, severity, message",
          all(list(d) == ["file", "line", "column", "path", "severity", "message"] for d in diags))
    m = re.search(r"(\d+) errors?, (\d+) warnings?; nothing would be applied", text)
    check("json: as many errors and warnings as the text counts",
          m and sum(d["severity"] == "error" for d in diags) == int(m.group(1))
          and sum(d["severity"] == "warning" for d in diags) == int(m.group(2)))
    tricky = [d for d in diags if all(c in d["message"] for c in ":,\n")]
    check("json: an error whose message holds ':', ',' and a newline", any(d["severity"] == "error" for d in tricky))
    for d in diags:
        line = f"{d['file']}:{d['line']}:{d['column']}: {d['severity']}: {d['path']}: {d['message']}\n"
        check(f"json matches the text diagnostic at {d['file']}:{d['line']}:{d['column']}", line in text)

    def github_matches(annotations, want_file, label):
        check(f"github ({label}): one annotation per diagnostic, every line parses",
              len(annotations) == len(diags) and all("unparsed" not in a for a in annotations))
        for a, d in zip(annotations, diags):
            p = a.get("props", {})
            check(f"github ({label}): {d['severity']} at line {d['line']}: level, file, line, col, title, message",
                  a.get("level") == d["severity"] and p.get("file") == want_file and p.get("line") == str(d["line"])
                  and p.get("col") == str(d["column"]) and p.get("title") == d["path"] and a.get("message") == d["message"])

    rc, out, _ = run(["-c", rel, "check", "--format", "github"], tmp)
    check("check --format github exits 1", rc == 1)
    check("github: the raw output holds the escapes of ',', ':' and the newline, and every line is a command",
          "%2C" in out and "%3A" in out and "%0A" in out and all(line.startswith("::") for line in out.splitlines()))
    github_matches(parse_annotations(out), rel, "GITHUB_WORKSPACE unset, file as given")

    absolute = os.path.join(tmp, rel)
    rc, out, _ = run(["-c", absolute, "check", "--format", "github"], "/", {"GITHUB_WORKSPACE": tmp})
    github_matches(parse_annotations(out), rel, "GITHUB_WORKSPACE holds the file: relative to it")
    rc, out, _ = run(["-c", rel, "check", "--format", "github"], tmp, {"GITHUB_WORKSPACE": os.path.join(tmp, "ci", "sub")})
    github_matches(parse_annotations(out), rel, "GITHUB_WORKSPACE elsewhere: as given")
    rc, out, _ = run(["-c", absolute, "check", "--format", "github"], "/", {"GITHUB_WORKSPACE": "/nonexistent-workspace"})
    github_matches(parse_annotations(out), absolute, "GITHUB_WORKSPACE not above the file: absolute as given")

    def gitlab_matches(out, want_path, label):
        report = json.loads(out)
        try:
            jsonschema.validate(report, GITLAB_SCHEMA)
            valid = True
        except jsonschema.ValidationError as e:
            print(e)
            valid = False
        check(f"gitlab ({label}): a valid Code Quality report", valid)
        check(f"gitlab ({label}): one issue per diagnostic", len(report) == len(diags))
        check(f"gitlab ({label}): fingerprints are unique", len({i["fingerprint"] for i in report}) == len(report))
        for i, d in zip(report, diags):
            sev_ok = i["severity"] in (("major", "critical") if d["severity"] == "error" else ("minor",))
            check(f"gitlab ({label}): {d['severity']} at line {d['line']}: path, line, severity, description",
                  i["location"]["path"] == want_path and i["location"]["lines"]["begin"] == d["line"] and sev_ok
                  and d["message"] in i["description"] and d["path"] in i["description"])
        return report

    rc, out, _ = run(["-c", rel, "check", "--format", "gitlab"], tmp)
    check("check --format gitlab exits 1", rc == 1)
    first = gitlab_matches(out, rel, "CI_PROJECT_DIR unset")
    rc, out, _ = run(["-c", absolute, "check", "--format", "gitlab"], "/", {"CI_PROJECT_DIR": tmp})
    second = gitlab_matches(out, rel, "CI_PROJECT_DIR holds the file")
    check("gitlab: the fingerprints do not depend on how the file was named",
          [i["fingerprint"] for i in first] == [i["fingerprint"] for i in second])

    # The other commands report the same diagnostics in the CI formats.
    rc, out, _ = run(["-c", rel, "addresses", "--format", "gitlab"], tmp)
    gitlab_matches(out, rel, "addresses")
    rc, out, _ = run(["-c", rel, "--node", "hub", "plan", "--format", "github"], tmp)
    github_matches(parse_annotations(out), rel, "plan")

    # --json is --format json; unknown formats and prometheus outside status are usage errors.
    rc_a, out_a, _ = run(["-c", rel, "check", "--json"], tmp)
    check("check --json is check --format json", rc_a == 1 and json.loads(out_a) == doc)
    rc, _, err = run(["-c", rel, "check", "--json", "--format", "json"], tmp)
    check("--json with --format is a usage error", rc == 1 and "excludes" in err)
    rc, _, err = run(["-c", rel, "check", "--format", "sarif"], tmp)
    check("an unknown format is a usage error that names the formats", rc == 1 and "unknown format 'sarif'" in err and "gitlab" in err)
    for cmd in (["check"], ["plan"], ["apply"], ["addresses"]):
        rc, _, err = run(["-c", rel] + cmd + ["--format", "prometheus"], tmp)
        check(f"{cmd[0]} --format prometheus is a usage error", rc == 1 and "only for status" in err)
    rc, _, err = run(["-c", rel, "status", "--format", "github", "--output", os.path.join(tmp, "x")], tmp)
    check("status --output wants json or prometheus", rc == 1 and "--output" in err)

    # A valid file: an empty report, and GitHub annotations only for its warnings.
    with open(os.path.join(tmp, rel), "w") as f:
        f.write("fleets:\n  mesh:\n    controllers:\n      hub: { endpoint: 192.0.2.1, public_key: " +
                "\"" + "A" * 43 + "=\" }\n")
    rc, out, _ = run(["-c", rel, "check", "--format", "gitlab"], tmp)
    check("a valid file: exit 0 and an empty GitLab report", rc == 0 and json.loads(out) == [])
    rc, out, _ = run(["-c", rel, "check", "--format", "json"], tmp)
    check("a valid file: exit 0 and no diagnostics", rc == 0 and json.loads(out) == {"version": 1, "diagnostics": []})
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
