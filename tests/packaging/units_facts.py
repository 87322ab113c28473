#!/usr/bin/env python3
"""The systemd units' facts: the settings issue 10 requires are present, the ones that would break
a network tool (ProtectKernelTunables, PrivateDevices, ...) are absent, the sandbox is the same in
both units, and the writable paths cover the defaults the JSON Schema gives for the paths wg-fleet
writes. Checked twice: by reading the unit files, and by systemd's own reading of them
(`systemd-analyze security --offline=true --json=short`, one verdict per setting).

    units_facts.py SOURCE_DIR wg-fleet.service wg-fleet-apply.service
"""
import json
import os
import re
import shlex
import subprocess
import sys

TRUE = {"yes", "true", "on", "1"}
# wireguard-go's UAPI sockets: /var/run/wireguard/IFNAME.sock (wg(8), "the userspace implementation").
UAPI_SOCKET_DIR = "/run/wireguard"
NEEDED_CAPS = {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}
FAMILIES = {"AF_NETLINK", "AF_UNIX", "AF_INET", "AF_INET6"}

failures = 0


def check(what, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def parse_unit(path):
    """{section: {key: [values in order]}}; an empty assignment resets the list, as systemd does."""
    sections, current = {}, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        key, _, value = line.partition("=")
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def words(values):
    return [w for v in values for w in shlex.split(v)]


def is_true(service, key):
    v = service.get(key, [])
    return bool(v) and v[-1].lower() in TRUE


def covered(path, writable):
    """True if PATH lies in one of the writable directories (a leading '-' only makes it optional)."""
    for w in writable:
        w = w.lstrip("-").rstrip("/") or "/"
        if path == w or path.startswith(w + "/") or w == "/":
            return True
    return False


def sandbox_block(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^# --- sandbox.*?$(.*)^# --- end of sandbox ---$", text, re.M | re.S)
    return m.group(1) if m else None


def systemd_view(unit):
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--json=short", unit],
                         capture_output=True, text=True, check=False)
    try:
        return {e["json_field"]: e["set"] for e in json.loads(out.stdout)}
    except (json.JSONDecodeError, KeyError, TypeError):
        print(out.stdout + out.stderr)
        return {}


def main():
    source, units = sys.argv[1], sys.argv[2:]
    with open(os.path.join(source, "schema", "wg-fleet.schema.json"), encoding="utf-8") as f:
        props = json.load(f)["properties"]
    state_dir = props["state_dir"]["default"]
    hosts_file = props["hosts_file"]["default"]
    http_routes_dir = props["http_routes_dir"]["default"]

    parsed = {os.path.basename(u): parse_unit(u) for u in units}
    binaries = set()
    for name, unit in parsed.items():
        svc = unit.get("Service", {})
        exec_start = words(svc.get("ExecStart", []))
        binaries.add(exec_start[0] if exec_start else None)

        caps = set(words(svc.get("CapabilityBoundingSet", [])))
        check(f"{name}: CapabilityBoundingSet is exactly {sorted(NEEDED_CAPS)} (has {sorted(caps)})", caps == NEEDED_CAPS)
        ambient = set(words(svc.get("AmbientCapabilities", [])))
        check(f"{name}: AmbientCapabilities adds nothing beyond the bounding set", ambient <= NEEDED_CAPS)
        families = words(svc.get("RestrictAddressFamilies", []))
        check(f"{name}: RestrictAddressFamilies allows exactly {sorted(FAMILIES)} (has {families})",
              set(families) == FAMILIES and not any(f.startswith("~") for f in families))
        for key in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                    "ProtectClock", "LockPersonality", "RestrictRealtime", "RestrictSUIDSGID", "RestrictNamespaces",
                    "MemoryDenyWriteExecute"):
            check(f"{name}: {key}=yes", is_true(svc, key))
        check(f"{name}: ProtectSystem=strict", svc.get("ProtectSystem", [""])[-1] == "strict")
        check(f"{name}: ProtectHome=yes", is_true(svc, "ProtectHome"))
        filters = svc.get("SystemCallFilter", [])
        check(f"{name}: SystemCallFilter allows @system-service first", bool(filters) and "@system-service" in filters[0].split())
        check(f"{name}: SystemCallArchitectures=native", svc.get("SystemCallArchitectures", [""])[-1] == "native")
        check(f"{name}: KillMode=process (a userspace WireGuard outlives the unit's main process)",
              svc.get("KillMode", [""])[-1] == "process")

        # The exclusions: each would break what wg-fleet owns.
        check(f"{name}: no ProtectKernelTunables (the sysctls wg-fleet sets)", not is_true(svc, "ProtectKernelTunables"))
        check(f"{name}: no PrivateDevices (/dev/net/tun for wireguard-go)", not is_true(svc, "PrivateDevices"))
        check(f"{name}: no PrivateNetwork (the host's network is the point)", not is_true(svc, "PrivateNetwork"))
        check(f"{name}: no ProcSubset=pid (/proc/sys)", svc.get("ProcSubset", ["all"])[-1] != "pid")
        check(f"{name}: runs as root (no User=, no DynamicUser=: the paths it manages are root's)",
              not svc.get("User") and not is_true(svc, "DynamicUser"))
        devices = svc.get("DeviceAllow", [])
        check(f"{name}: DeviceAllow=/dev/net/tun rw", any(d.split()[:2] == ["/dev/net/tun", "rw"] for d in devices))

        # Writable: what the schema's defaults and wireguard-go write.
        state_dirs = words(svc.get("StateDirectory", []))
        check(f"{name}: StateDirectory= is state_dir's default {state_dir}",
              [f"/var/lib/{d}" for d in state_dirs] == [state_dir])
        writable = words(svc.get("ReadWritePaths", []))
        hidden = words(svc.get("InaccessiblePaths", [])) + words(svc.get("ReadOnlyPaths", []))
        for path, why in ((os.path.dirname(hosts_file), f"hosts_file's directory ({hosts_file} is replaced by rename)"),
                          (http_routes_dir, "http_routes_dir"), (UAPI_SOCKET_DIR, "wireguard-go's UAPI socket directory")):
            check(f"{name}: {path} is writable: {why}", covered(path, writable) and not covered(path, hidden))

    check(f"both units run the same binary ({sorted(map(str, binaries))})", len(binaries) == 1 and None not in binaries)
    serve = parsed.get("wg-fleet-serve.service", {})
    check("wg-fleet-serve.service: Type=notify", serve.get("Service", {}).get("Type", [""])[-1] == "notify")
    check("wg-fleet-serve.service: runs serve", words(serve.get("Service", {}).get("ExecStart", []))[1:] == ["serve"])
    check("wg-fleet-serve.service: Conflicts=wg-fleet.service", "wg-fleet.service" in words(serve.get("Unit", {}).get("Conflicts", [])))
    check("wg-fleet-serve.service: the drop-in directory is writable",
          covered("/etc/wg-fleet.d", words(serve.get("Service", {}).get("ReadWritePaths", []))))
    watch = parsed.get("wg-fleet.service", {}).get("Service", {})
    check("wg-fleet.service: Type=notify", watch.get("Type", [""])[-1] == "notify")
    check("wg-fleet.service: runs watch", words(watch.get("ExecStart", []))[1:] == ["watch"])
    check("wg-fleet.service: WatchdogSec= set", bool(watch.get("WatchdogSec")) and watch["WatchdogSec"][-1] not in ("0", "infinity"))
    once = parsed.get("wg-fleet-apply.service", {}).get("Service", {})
    check("wg-fleet-apply.service: Type=oneshot", once.get("Type", [""])[-1] == "oneshot")
    check("wg-fleet-apply.service: runs apply", words(once.get("ExecStart", []))[1:] == ["apply"])
    check("wg-fleet-apply.service: RemainAfterExit=yes", is_true(once, "RemainAfterExit"))

    blocks = [sandbox_block(os.path.join(source, "packaging", n + ".in")) for n in parsed]
    check("the sandbox block is the same in both units", blocks[0] is not None and all(b == blocks[0] for b in blocks))

    # systemd's reading of the same files: True = the unit restricts it, False = it does not.
    must_restrict = ["NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "ProtectKernelModules",
                     "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "LockPersonality", "RestrictRealtime",
                     "RestrictSUIDSGID", "MemoryDenyWriteExecute", "SystemCallArchitectures", "RestrictAddressFamilies_AF_PACKET",
                     "RestrictAddressFamilies_OTHER", "CapabilityBoundingSet_CAP_SYS_ADMIN", "CapabilityBoundingSet_CAP_SYS_MODULE",
                     "CapabilityBoundingSet_CAP_SYS_PTRACE", "RestrictNamespaces_net", "RestrictNamespaces_user",
                     "SystemCallFilter_privileged", "SystemCallFilter_mount", "SystemCallFilter_module"]
    must_allow = ["ProtectKernelTunables", "PrivateDevices", "PrivateNetwork", "ProcSubset", "CapabilityBoundingSet_CAP_NET_ADMIN",
                  "RestrictAddressFamilies_AF_NETLINK", "RestrictAddressFamilies_AF_UNIX", "RestrictAddressFamilies_AF_INET_INET6"]
    for unit in units:
        name = os.path.basename(unit)
        view = systemd_view(unit)
        for field in must_restrict:
            check(f"{name}: systemd reads {field} as restricted", view.get(field) is True)
        for field in must_allow:
            check(f"{name}: systemd reads {field} as not restricted", view.get(field) is False)

    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
