#!/usr/bin/env python3
"""The JSON of every command that prints results (README "JSON output"): each shape has
"version": 1, and its values agree with a source other than the JSON writer itself.

- check --json: every diagnostic of each examples/invalid file is a line of its golden .expected
  (the text output, checked byte for byte by golden_examples), and the counts match its summary;
- addresses --json: the clan reference vectors (/work/shared/reference/clan-address-plan.md, as
  recorded here) and the roles the YAML gives;
- keygen --json: the public key of the private key file, by `wg pubkey`;
- render hosts|wg-quick|nixos|networkd --json: the text the same command prints without --json
  (hosts: each line, and each address is the node's in addresses --json); files written with
  --dir/--all hold the content the JSON gives;
- version --json: the project's version in CMakeLists.txt and what --version prints;
- on an error, every one of them (and plan and status) prints check's diagnostics shape on stdout, with
  the error stderr names, and exits as in text.
No root: everything lives in a temporary directory.
Usage: json_shapes.py WG_FLEET_BINARY SOURCE_DIR
"""
import ipaddress
import json
import pathlib
import re
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
SRC = pathlib.Path(sys.argv[2])
failures = 0


def check(what, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def run(*args, cwd=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def diagnostics_shape(out):
    """check's shape: {"version": 1, "diagnostics": [{file, line, column, path, severity, message}]}."""
    try:
        j = json.loads(out)
    except ValueError:
        return None
    if j.get("version") != 1 or not isinstance(j.get("diagnostics"), list):
        return None
    for d in j["diagnostics"]:
        if list(d) != ["file", "line", "column", "path", "severity", "message"] or d["severity"] not in ("error", "warning"):
            return None
    return j


def check_invalid_examples():
    inv = SRC / "examples" / "invalid"
    for f in sorted(inv.glob("*.yaml")):
        p = run("-c", f.name, "--dropin-dir", "/nonexistent", "check", "--json", cwd=inv)
        j = diagnostics_shape(p.stdout)
        check(f"check --json {f.name}: exit 1 and the diagnostics shape", p.returncode == 1 and j is not None)
        if j is None:
            continue
        golden = (inv / (f.stem + ".expected")).read_text(errors="replace").splitlines()
        for d in j["diagnostics"]:
            head = f"{d['file']}:{d['line']}:{d['column']}: {d['severity']}: " if d["line"] else f"{d['file']}: {d['severity']}: "
            line = head + (f"{d['path']}: " if d["path"] else "") + d["message"]
            check(f"  {d['path'] or '(no path)'} is a line of {f.stem}.expected", line in golden)
        summary = golden[-1]
        errors = sum(d["severity"] == "error" for d in j["diagnostics"])
        m = re.search(r": (\d+) errors?, (\d+) warnings?;", summary)
        check(f"  as many errors as {f.stem}.expected counts", m is not None and int(m.group(1)) == errors)
        # addresses, plan and status print the same diagnostics when the file is invalid
        for cmd in ("addresses", "plan", "status"):
            a = run("-c", f.name, "--dropin-dir", "/nonexistent", cmd, "--json", cwd=inv)
            check(f"  {cmd} --json: exit 1 and check's diagnostics", a.returncode == 1 and diagnostics_shape(a.stdout) == j)
    for f in sorted((SRC / "examples").glob("*.yaml")):
        p = run("-c", str(f), "--dropin-dir", "/nonexistent", "check", "--json")
        j = diagnostics_shape(p.stdout)
        check(f"check --json {f.name} (valid): exit 0, no error", p.returncode == 0 and j is not None
              and all(d["severity"] == "warning" for d in j["diagnostics"]))


# The clan reference vectors: fleet /40s, controller /56 ::1 addresses, peer suffixes.
CLAN_FLEET = """fleets:
  wg-test-one:
    controllers:
      controller1: {endpoint: 192.0.2.1}
      controller2: {endpoint: 192.0.2.2}
    peers:
      peer1: {controller: controller1}
      peer2: {controller: controller2}
  wireguard:
    port: 51821
    controllers:
      controller: {endpoint: 192.0.2.3}
    peers:
      peer1: {}
"""
CLAN_EXPECTED = {
    "wg-test-one": ("fd51:19c1::/40", {
        "controller1": ("controller", ["fd51:19c1:3b:f700::1/40"]),
        "controller2": ("controller", ["fd51:19c1:c1:aa00::1/40"]),
        # one address per controller, in controller-name order
        "peer1": ("peer", ["fd51:19c1:3b:f700:6987:50a0:9b93:4337/56", "fd51:19c1:c1:aa00:6987:50a0:9b93:4337/56"]),
        "peer2": ("peer", ["fd51:19c1:3b:f700:3b21:3ced:3e:89b3/56", "fd51:19c1:c1:aa00:3b21:3ced:003e:89b3/56"]),
    }),
    "wireguard": ("fd28:387a::/40", {
        "controller": ("controller", ["fd28:387a:c1:4700::1/40"]),
        "peer1": ("peer", ["fd28:387a:c1:4700:6987:50a0:9b93:4337/56"]),
    }),
}


def same_interfaces(a, b):
    return [ipaddress.ip_interface(x) for x in a] == [ipaddress.ip_interface(x) for x in b]


def check_addresses(tmp):
    fleet = tmp / "clan.yaml"
    fleet.write_text(CLAN_FLEET)
    p = run("-c", str(fleet), "--dropin-dir", "/nonexistent", "addresses", "--json")
    j = json.loads(p.stdout)
    check("addresses --json: version 1, the fleets of the file", p.returncode == 0 and j["version"] == 1
          and list(j) == ["version", "fleets"] and set(j["fleets"]) == set(CLAN_EXPECTED))
    for name, (prefix, nodes) in CLAN_EXPECTED.items():
        f = j["fleets"][name]
        check(f"addresses --json: {name} /40 is the reference's", ipaddress.ip_network(f["prefix"]) == ipaddress.ip_network(prefix))
        check(f"addresses --json: {name} has the file's nodes", set(f["nodes"]) == set(nodes))
        for node, (role, addrs) in nodes.items():
            got = f["nodes"].get(node, {})
            check(f"addresses --json: {name}.{node} is a {role} at the reference's addresses",
                  got.get("role") == role and same_interfaces(got.get("addresses", []), addrs))
    return fleet, j


def check_keygen(tmp):
    fleet = tmp / "keygen.yaml"
    fleet.write_text(f"state_dir: {tmp}/state\nfleets:\n  mesh:\n    controllers:\n      hub: {{ endpoint: 192.0.2.1 }}\n")
    p = run("-c", str(fleet), "--dropin-dir", "/nonexistent", "--node", "hub", "keygen", "--json")
    j = json.loads(p.stdout)
    priv = (tmp / "state" / "mesh.key").read_text()
    pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True).stdout.strip()
    check("keygen --json: version 1, the node, one key", p.returncode == 0 and j["version"] == 1 and j["node"] == "hub"
          and len(j["keys"]) == 1)
    check("keygen --json: the public key is wg pubkey's of the key file", j["keys"][0]["public_key"] == pub
          and j["keys"][0]["fleet"] == "mesh")
    check("keygen --json: the private key is not printed", priv.strip() not in p.stdout)
    check_error("keygen", fleet, ["keygen"], node="nobody")


def check_error(what, fleet, args, node):
    """An error in JSON: check's shape on stdout, its last error the message on stderr; exit as in text."""
    text = run("-c", str(fleet), "--dropin-dir", "/nonexistent", "--node", node, *args)
    p = run("-c", str(fleet), "--dropin-dir", "/nonexistent", "--node", node, *args, "--json")
    j = diagnostics_shape(p.stdout)
    last = [d for d in (j or {}).get("diagnostics", []) if d["severity"] == "error"][-1:]
    check(f"{what} --json, node {node} in no fleet: exit {text.returncode} as in text, the error in check's shape",
          text.returncode == 1 and p.returncode == 1 and j is not None and len(last) == 1 and last[0]["file"] is None
          and ("wg-fleet: " + last[0]["message"]) in p.stderr.splitlines())


def check_render(tmp, fleet, addresses):
    base = ["-c", str(fleet), "--dropin-dir", "/nonexistent", "--node", "peer1"]
    # hosts: each entry is a line of the text, in order, at the node's address of its fleet
    text = run(*base, "render", "hosts", "--all").stdout.splitlines()
    j = json.loads(run(*base, "render", "hosts", "--all", "--json").stdout)
    lines = [l for l in text if l and not l.startswith("#")]
    check("render hosts --json: version 1, node null with --all, the text's lines in order",
          j["version"] == 1 and j["node"] is None and [f"{e['address']} {e['name']}" for e in j["entries"]] == lines)
    for e in j["entries"]:
        node, fl = e["name"].split(".", 1)
        addrs = [ipaddress.ip_interface(a).ip for a in addresses["fleets"][fl]["nodes"][node]["addresses"]]
        check(f"render hosts --json: {e['name']} is at one of its addresses in addresses --json",
              ipaddress.ip_address(e["address"]) in addrs)
    mine = json.loads(run(*base, "render", "hosts", "--json").stdout)
    check("render hosts --json: node is --node without --all", mine["node"] == "peer1")
    # wg-quick, nixos, networkd: the content is the text, the file named as the text names it
    for sub, extra in (("wg-quick", ["--fleet", "wireguard"]), ("nixos", []), ("networkd", [])):
        t = run(*base, "render", sub, *extra).stdout
        j = json.loads(run(*base, "render", sub, *extra, "--json").stdout)
        ok = j["version"] == 1 and j["node"] == "peer1" and all(f["path"] is None for f in j["files"])
        if sub == "networkd":
            # the text shows each file under a "# ==> NAME <==" line, a blank line between two
            ok = ok and len(j["files"]) >= 2 and "\n".join(f"# ==> {f['name']} <==\n{f['content']}" for f in j["files"]) == t
        elif sub == "wg-quick":
            ok = ok and [(f["name"], f["content"]) for f in j["files"]] == [("wireguard.conf", t)]
        else:
            ok = ok and [(f["name"], f["content"]) for f in j["files"]] == [("peer1.nix", t)]
        check(f"render {sub} --json: version 1, the node, the text as the file's content", ok)
    out = tmp / "networkd"
    out.mkdir()
    j = json.loads(run(*base, "render", "networkd", "--dir", str(out), "--json").stdout)
    check("render networkd --dir --json: every file written where its path says, with its content",
          len(j["files"]) >= 2 and all(pathlib.Path(f["path"]) == out / f["name"] and (out / f["name"]).read_text() == f["content"]
                                      for f in j["files"]))
    nix = tmp / "nix"
    j = json.loads(run(*base, "render", "nixos", "--all", str(nix), "--json").stdout)
    check("render nixos --all --json: node null, every module and default.nix written with its content",
          j["node"] is None and {f["name"] for f in j["files"]} == {f"{n}.nix" for n in
                                                                  ["controller1", "controller2", "controller", "peer1", "peer2", "default"]}
          and all((nix / f["name"]).read_text() == f["content"] for f in j["files"]))
    for sub in (["render", "hosts"], ["render", "wg-quick"], ["render", "nixos"], ["render", "networkd"], ["plan"], ["status"]):
        check_error(" ".join(sub), fleet, sub, node="nobody")


def check_version():
    """version --json: the release is the project's (CMakeLists.txt) and what --version prints."""
    project = re.search(r"project\(wg-fleet VERSION (\S+)", (SRC / "CMakeLists.txt").read_text()).group(1)
    j = json.loads(run("version", "--json").stdout)
    check("version --json: version 1, wg-fleet, the project's release, as --version says",
          j == {"version": 1, "name": "wg-fleet", "release": project} and run("--version").stdout.strip() == f"wg-fleet {project}"
          and run("version").stdout.strip() == f"wg-fleet {project}")


def main():
    check_version()
    check_invalid_examples()
    with tempfile.TemporaryDirectory(prefix="wgf-json.") as t:
        tmp = pathlib.Path(t)
        fleet, addresses = check_addresses(tmp)
        check_render(tmp, fleet, addresses)
        check_keygen(tmp)
    print("all JSON shapes agree" if failures == 0 else f"{failures} failed")
    sys.exit(1 if failures else 0)


main()
