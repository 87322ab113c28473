#!/usr/bin/env python3
"""`keygen --format text|json|github|gitlab`: the same keys in every format, checked against
`wg pubkey` of the private key file and against the published file; a key generated is reported
(json "generated", a notice in the CI formats) and a second run generates none; an error (a node
in no fleet) is an annotation in the CI formats; the private key is in no output.

Usage: keygen_formats.py WG_FLEET_BINARY   (no root: everything lives in a temporary directory)
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

failures = 0


def check(what, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def main():
    wgf = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="wgf-keygen.") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "keys").mkdir()
        fleet = tmp / "fleet.yaml"
        fleet.write_text(f"state_dir: {tmp}/state\nkeys_dir: {tmp}/keys\n"
                         "fleets:\n"
                         "  mesh:\n    controllers:\n      hub: { endpoint: 192.0.2.1 }\n    peers:\n      erin: {}\n"
                         "  lab:\n    port: 51821\n    controllers:\n      hub: { endpoint: 192.0.2.1 }\n")

        def run(*args, node="hub"):
            return subprocess.run([wgf, "-c", str(fleet), "--node", node, "keygen", *args], capture_output=True, text=True)

        first = run("--format", "json")
        check("keygen --format json exits 0", first.returncode == 0)
        doc = json.loads(first.stdout)
        keys = {k["fleet"]: k for k in doc["keys"]}
        check("json names the node and every fleet of it", doc["node"] == "hub" and set(keys) == {"mesh", "lab"})
        secrets = {}
        for f in ("mesh", "lab"):
            keyfile = tmp / "state" / f"{f}.key"
            secrets[f] = keyfile.read_text().strip()
            pub = subprocess.run(["wg", "pubkey"], input=secrets[f] + "\n", capture_output=True, text=True).stdout.strip()
            check(f"{f}: public_key is wg pubkey of the key file", keys[f]["public_key"] == pub)
            published = tmp / "keys" / f / "hub.pub"
            check(f"{f}: published where json says, with that key",
                  keys[f]["published"] == str(published) and published.read_text().strip() == pub)
            check(f"{f}: the first run generated it", keys[f]["generated"] is True)

        again = json.loads(run("--format", "json").stdout)
        check("a second run generates nothing and keeps the keys",
              all(not k["generated"] for k in again["keys"]) and {k["fleet"]: k["public_key"] for k in again["keys"]} ==
              {f: k["public_key"] for f, k in keys.items()})

        text = run()
        check("text: one line per fleet, FLEET KEY",
              sorted(text.stdout.splitlines()) == sorted(f"{f} {k['public_key']}" for f, k in keys.items()))

        # A fresh key for one fleet, so the CI formats have a generated key to report.
        (tmp / "state" / "lab.key").unlink()
        gh = run("--format", "github")
        new_lab = json.loads(run("--format", "json").stdout)
        lab_pub = {k["fleet"]: k["public_key"] for k in new_lab["keys"]}["lab"]
        lines = gh.stdout.splitlines()
        check("github: exit 0 and only annotations on stdout", gh.returncode == 0 and lines and all(l.startswith("::") for l in lines))
        check("github: a notice for the generated key, none for the kept one",
              sum(l.startswith("::notice") and lab_pub in l for l in lines) == 1 and not any(keys["mesh"]["public_key"] in l for l in lines))
        (tmp / "state" / "lab.key").unlink()
        gl = run("--format", "gitlab")
        report = json.loads(gl.stdout)
        lab_pub = (tmp / "keys" / "lab" / "hub.pub").read_text().strip()
        notices = [r for r in report if lab_pub in r["description"]]
        check("gitlab: one info finding for the generated key, on the fleet file",
              gl.returncode == 0 and len(notices) == 1 and notices[0]["severity"] == "info" and
              notices[0]["location"]["path"].endswith("fleet.yaml") and notices[0]["location"]["lines"]["begin"] >= 1)

        bad = run("--format", "github", node="nobody")
        check("github: a node in no fleet is an error annotation and exit 1",
              bad.returncode == 1 and any(l.startswith("::error") and "nobody" in l for l in bad.stdout.splitlines()))

        outputs = "".join(r.stdout + r.stderr for r in (first, text, gh, gl, bad))
        secrets = [(tmp / "state" / f"{f}.key").read_text().strip() for f in ("mesh", "lab")] + list(secrets.values())
        check("no private key in any output", not any(s and s in outputs for s in secrets))
    print(f"keygen_formats: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
