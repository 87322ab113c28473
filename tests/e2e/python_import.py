#!/usr/bin/env python3
"""`wg-fleet serve --import-python` through the command line, no root.

A clients.db made with the Python wg-fleet's SQLAlchemy schema (table clients: id, fleet_id,
public_key, assigned_ip, http_request_ip, hostname, timestamp) and the wg_<fleet>.conf files it
writes are imported; the result is read back through other commands: `render wg-quick` of the
server (each client a peer with its key and address, the server's private key that of the old
wg_<fleet>.conf), `addresses --json` and `render hosts` (host names). Importing again changes
nothing; another schema spelling is accepted. Every refusal (unknown fleet, address outside the
subnet or the server's, duplicate address or key, malformed key or host name, a missing or
disagreeing wg_<fleet>.conf, another key in state_dir, a clash with an enrolled client) names the
file, the row and the value, writes nothing, and never prints a private key.

Usage: python_import.py WG_FLEET
"""
import calendar
import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
SUBNET_SE = "fd00:a0a8:34d:2a00"
SUBNET_NW = "fd00:a0a8:34d:2000"
results = []


def check(what, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f"\n     {detail}"))


def genkey():
    return subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()


def pubkey(private):
    return subprocess.run(["wg", "pubkey"], input=private + "\n", capture_output=True, text=True, check=True).stdout.strip()


UPSTREAM_SCHEMA = """CREATE TABLE clients (
\tid INTEGER NOT NULL,
\tfleet_id VARCHAR NOT NULL,
\tpublic_key VARCHAR NOT NULL,
\tassigned_ip VARCHAR NOT NULL,
\thttp_request_ip VARCHAR NOT NULL,
\thostname VARCHAR,
\ttimestamp DATETIME NOT NULL,
\tPRIMARY KEY (id)
)"""


def make_db(path, rows, schema=UPSTREAM_SCHEMA, insert=None):
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    db.execute(schema)
    for r in rows:
        db.execute(insert or "INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?)", r)
    db.commit()
    db.close()


def conf_text(private, address, port):
    # What the Python manager's create_interface_config writes.
    return f"[Interface]\nAddress = {address}\nListenPort = {port}\nPrivateKey = {private}\n"


class Case:
    def __init__(self, root):
        self.root = root
        self.state = os.path.join(root, "state")
        self.confs = os.path.join(root, "wireguard")
        os.makedirs(self.confs, exist_ok=True)
        self.yaml = os.path.join(root, "fleet.yaml")
        self.db = os.path.join(root, "clients.db")

    def write_yaml(self, extra_se=""):
        with open(self.yaml, "w") as f:
            f.write(f"""domain: icpcnet.internal
prune_timeout: 30m
state_dir: {self.state}
hosts_file: {self.root}/hosts
fleets:
  southeast:
    ip6: {SUBNET_SE}::1
    subnet: {SUBNET_SE}::/64
    external_ip: 1.2.3.4
    port: 51820
{extra_se}  northwest:
    ip6: {SUBNET_NW}::1
    subnet: {SUBNET_NW}::/64
    external_ip: 1.2.3.4
    port: 51821
""")

    def wg(self, *args):
        return subprocess.run([BIN, "-q", "-c", self.yaml, "--node", "server", *args], capture_output=True, text=True)

    def import_(self, db=None, confs=None):
        return self.wg("serve", "--import-python", db or self.db, "--wg-conf-dir", confs or self.confs)


def digest_tree(path):
    """Every file under path with its content's hash: what "nothing written" compares. SQLite's
    write-ahead log index (-shm) and an empty log (-wal), which any reader of the store in WAL mode
    may leave behind, hold no data and are not counted."""
    if not os.path.exists(path):
        return None
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            if f.endswith("-shm") or (f.endswith("-wal") and os.path.getsize(p) == 0):
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def rendered_peers(case, fleet):
    """The server's wg-quick config as `render wg-quick` gives it: private key and peers."""
    r = case.wg("render", "wg-quick", "--fleet", fleet)
    private, peers, key = None, {}, None
    for line in r.stdout.splitlines():
        k, _, v = (s.strip() for s in line.partition("="))
        if k == "PrivateKey":
            private = v
        elif k == "PublicKey":
            key = v
        elif k == "AllowedIPs" and key:
            peers[key] = v
    return private, peers


def main():
    root = tempfile.mkdtemp(prefix="wgf-pyimport.")
    secrets = []
    try:
        case = Case(root)
        case.write_yaml()
        server_se, server_nw = genkey(), genkey()
        secrets += [server_se, server_nw]
        with open(os.path.join(case.confs, "wg_southeast.conf"), "w") as f:
            f.write(conf_text(server_se, f"{SUBNET_SE}::1", 51820))
        with open(os.path.join(case.confs, "wg_northwest.conf"), "w") as f:
            f.write(conf_text(server_nw, f"{SUBNET_NW}::1", 51821))
        keys = [pubkey(genkey()) for _ in range(4)]
        rows = [
            (1, "southeast", keys[0], f"{SUBNET_SE}:1234:5678:9abc:def0", "198.51.100.7", "excavator", "2026-11-30 16:00:00.123456"),
            (2, "southeast", keys[1], f"{SUBNET_SE}:ffff::2", "198.51.100.8", None, "2026-11-30 16:05:00.000000"),
            (3, "southeast", keys[2], f"{SUBNET_SE}::3", "198.51.100.9", "excavator2", "2026-11-30 16:06:00"),
            (5, "northwest", keys[3], f"{SUBNET_NW}:aaaa:bbbb:cccc:dddd", "203.0.113.4", "driller", "2026-11-30 15:59:59.5"),
        ]
        make_db(case.db, rows)

        r = case.import_()
        print(r.stdout + r.stderr, end="")
        check("the import exits 0", r.returncode == 0, r.stderr)
        check("no private key in its output", not any(s in r.stdout + r.stderr for s in secrets))
        for fleet, secret in (("southeast", server_se), ("northwest", server_nw)):
            kf = os.path.join(case.state, f"{fleet}.key")
            mode = oct(os.stat(kf).st_mode & 0o777) if os.path.exists(kf) else None
            check(f"{fleet}'s key file is 0600", mode == "0o600", str(mode))
            private, peers = rendered_peers(case, fleet)
            check(f"render wg-quick of {fleet}'s server has the old wg_{fleet}.conf's private key", private == secret)
            want = {k: f"{a}/128" for (_, fl, k, a, _, _, _) in rows if fl == fleet}
            check(f"render wg-quick of {fleet}'s server has each client as a peer with its key and address", peers == want,
                  f"{peers} != {want}")
        addrs = json.loads(case.wg("addresses", "--json").stdout)
        for (_, fl, k, a, _, _, _) in rows:
            got = [n for n, v in addrs["fleets"][fl]["nodes"].items() if f"{a}/64" in v["addresses"]]
            check(f"addresses --json: {a} is a peer of {fl}", len(got) == 1 and addrs["fleets"][fl]["nodes"][got[0]]["role"] == "peer")
        hosts = case.wg("render", "hosts").stdout.splitlines()
        for (_, fl, k, a, _, h, _) in rows:
            if h:
                check(f"render hosts: {a} {h}.{fl}.icpcnet.internal", f"{a} {h}.{fl}.icpcnet.internal" in hosts, "\n".join(hosts))
        check("render hosts: the client without a host name has no entry", not any(l.startswith(rows[1][3] + " ") for l in hosts))
        with sqlite3.connect(f"file:{case.state}/serve.db?mode=ro", uri=True) as db:
            stored = dict(db.execute("SELECT public_key, last_seen FROM clients").fetchall())
        utc = lambda text: calendar.timegm(datetime.datetime.fromisoformat(text).timetuple())  # noqa: E731
        want = {r[2]: utc(r[6]) for r in rows}
        check("each client keeps its timestamp (UTC, fraction dropped) as last seen", stored == want, f"{stored} != {want}")

        before = digest_tree(case.state)
        r = case.import_()
        check("importing again exits 0 and says they were enrolled already", r.returncode == 0 and "enrolled already" in r.stdout, r.stdout + r.stderr)
        after = digest_tree(case.state)
        check("importing again changes no client (serve.db's clients as before)",
              rendered_peers(case, "southeast") == (server_se, {k: f"{a}/128" for (_, fl, k, a, _, _, _) in rows if fl == "southeast"}))
        check("importing again keeps the key files", before["southeast.key"] == after["southeast.key"])
        # --json: the same import once more, its numbers against the rows, the keys against wg pubkey.
        r = case.wg("serve", "--import-python", case.db, "--wg-conf-dir", case.confs, "--json")
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        per_fleet = {fl: sum(1 for row in rows if row[1] == fl) for fl in ("southeast", "northwest")}
        check("--json: version 1, the source and store, nothing added, every row enrolled already",
              j.get("version") == 1 and j.get("source") == case.db and j.get("store") == os.path.join(case.state, "serve.db")
              and j.get("added") == 0 and j.get("unchanged") == len(rows), r.stdout + r.stderr)
        check("--json: per fleet its rows, its key file and the public key of its wg_<fleet>.conf",
              sorted((f["fleet"], f["clients"], f["key_file"], f["server_public_key"]) for f in j.get("fleets", []))
              == sorted((fl, per_fleet[fl], os.path.join(case.state, f"{fl}.key"), pubkey(sec))
                        for fl, sec in (("southeast", server_se), ("northwest", server_nw))), r.stdout)
        check("--json: the devices to adopt", sorted(j.get("adopt", [])) == ["wg_northwest", "wg_southeast"], r.stdout)
        check("--json: no private key", not any(sec in r.stdout for sec in secrets))

        # Another spelling of the schema: fleet/address/source_ip/host_name, epoch seconds.
        alt = Case(os.path.join(root, "alt"))
        alt.write_yaml()
        shutil.copy(os.path.join(case.confs, "wg_southeast.conf"), alt.confs)
        k = pubkey(genkey())
        make_db(alt.db, [("southeast", k, f"{SUBNET_SE}::42/128", "192.0.2.1", "rig", 1796054400)],
                schema="CREATE TABLE clients (fleet TEXT, public_key TEXT, address TEXT, source_ip TEXT, host_name TEXT, last_seen INTEGER)",
                insert="INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?)")
        r = alt.import_()
        check("another schema spelling (fleet, address/128, host_name, last_seen as epoch) is accepted", r.returncode == 0, r.stderr)
        check("... and its client is the server's peer", rendered_peers(alt, "southeast")[1] == {k: f"{SUBNET_SE}::42/128"})
        check("... with its host name", f"{SUBNET_SE}::42 rig.southeast.icpcnet.internal" in alt.wg("render", "hosts").stdout)

        refusals(root, case, rows, server_se, secrets)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


def refusals(root, imported, rows, server_se, secrets):
    """Each bad input on a fresh state directory (nothing created) and on the imported one
    (nothing changed), with the file, row and value named."""
    n = [0]

    def refused(what, db_rows, expect, conf=None, yaml_extra="", key_file=None, schema=UPSTREAM_SCHEMA, on_imported=True):
        n[0] += 1
        c = Case(os.path.join(root, f"bad{n[0]}"))
        c.write_yaml(yaml_extra)
        with open(os.path.join(c.confs, "wg_southeast.conf"), "w") as f:
            f.write(conf if conf is not None else conf_text(server_se, f"{SUBNET_SE}::1", 51820))
        if conf == "":
            os.unlink(os.path.join(c.confs, "wg_southeast.conf"))
        make_db(c.db, db_rows, schema=schema)
        if key_file:
            os.makedirs(c.state, mode=0o700)
            with open(os.path.join(c.state, "southeast.key"), "w") as f:
                f.write(key_file + "\n")
            os.chmod(os.path.join(c.state, "southeast.key"), 0o600)
        before = digest_tree(c.state)
        r = c.import_()
        out = r.stdout + r.stderr
        check(f"refused: {what} (exit 1)", r.returncode == 1, out)
        check(f"refused: {what}: the message says {expect!r}", all(e in out for e in expect) if isinstance(expect, tuple) else expect in out, out)
        check(f"refused: {what}: nothing written", digest_tree(c.state) == before, str(digest_tree(c.state)))
        check(f"refused: {what}: no private key printed", not any(s in out for s in secrets))
        if on_imported:
            # The same database against the state already imported: serve.db stays as it was.
            snap = digest_tree(imported.state)
            r = imported.import_(db=c.db, confs=c.confs)
            after = digest_tree(imported.state)
            check(f"refused on the imported state too: {what}", r.returncode == 1 and after == snap, r.stdout + r.stderr + str({k: (snap.get(k), after.get(k)) for k in set(snap) | set(after) if snap.get(k) != after.get(k)}))

    k = lambda: pubkey(genkey())  # noqa: E731
    t = "2026-11-30 16:00:00"
    refused("an unknown fleet", [(1, "south", k(), f"{SUBNET_SE}::5", "x", None, t)], ("clients row 1: fleet_id 'south'", "no such fleet"))
    refused("an address outside the subnet", [(7, "southeast", k(), "fd00:beef::5", "x", None, t)],
            ("clients row 7: assigned_ip 'fd00:beef::5'", "outside fleets.southeast.subnet"))
    refused("the server's own address", [(8, "southeast", k(), f"{SUBNET_SE}::1", "x", None, t)],
            ("clients row 8: assigned_ip", "the server's own address"))
    refused("a duplicate address", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t), (2, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("clients row 2: assigned_ip", "the same address as row 1"))
    dup = k()
    refused("a duplicate key", [(1, "southeast", dup, f"{SUBNET_SE}::5", "x", None, t), (4, "southeast", dup, f"{SUBNET_SE}::6", "x", None, t)],
            ("clients row 4: public_key", "the same key as row 1"))
    refused("a malformed key", [(3, "southeast", "not-a-key", f"{SUBNET_SE}::5", "x", None, t)],
            ("clients row 3: public_key 'not-a-key'", "not a WireGuard public key"))
    refused("a host name wg-fleet does not accept", [(3, "southeast", k(), f"{SUBNET_SE}::5", "x", "Bad.Name", t)],
            ("clients row 3: hostname 'Bad.Name'", "not a host name"))
    refused("a malformed timestamp", [(3, "southeast", k(), f"{SUBNET_SE}::5", "x", None, "yesterday")],
            ("clients row 3: timestamp 'yesterday'", "not a time"))
    refused("no wg_southeast.conf for a fleet with clients", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("wg_southeast.conf: missing",), conf="")
    refused("a ListenPort other than the fleet's port", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("wg_southeast.conf: ListenPort is 51999", "set port: 51999"), conf=conf_text(server_se, f"{SUBNET_SE}::1", 51999))
    bad_secret = "AAAA" + server_se[4:-6] + "!!!!!="
    secrets.append(bad_secret)
    refused("a malformed PrivateKey (its text not shown)", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("wg_southeast.conf:4: PrivateKey is not a base64 WireGuard key",), conf=conf_text(bad_secret, f"{SUBNET_SE}::1", 51820))
    refused("an Address without the fleet's ip6", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("does not hold fleets.southeast.ip6",), conf=conf_text(server_se, f"{SUBNET_SE}::9", 51820))
    other = genkey()
    secrets.append(other)
    refused("another private key in state_dir", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("southeast.key holds another private key", "move that file away"), key_file=other, on_imported=False)
    refused("a public_key: in the file that is not the server's", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("server public key", "set public_key: " + pubkey(server_se)), yaml_extra=f"    public_key: {pubkey(other)}\n",
            on_imported=False)
    refused("an interface: other than wg_<fleet>", [(1, "southeast", k(), f"{SUBNET_SE}::5", "x", None, t)],
            ("fleets.southeast.interface is 'wgse'", "remove interface:"), yaml_extra="    interface: wgse\n", on_imported=False)
    refused("a database without a clients table", [], ("no table clients",), schema="CREATE TABLE other (x)", on_imported=False)
    # Against the imported state only: the address of an enrolled client under another key.
    n[0] += 1
    c = Case(os.path.join(root, f"bad{n[0]}"))
    make_db(c.db, [(9, "southeast", k(), rows[0][3], "x", None, t)])
    snap = digest_tree(imported.state)
    r = imported.import_(db=c.db)
    out = r.stdout + r.stderr
    check("refused: an enrolled client's address under another key", r.returncode == 1 and "clients row 9: assigned_ip" in out
          and "enrolled in" in out, out)
    check("refused: an enrolled client's address under another key: nothing written", digest_tree(imported.state) == snap)


if __name__ == "__main__":
    sys.exit(main())
