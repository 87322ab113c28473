"""Network namespaces for the Python tests and benchmarks: enter one, and remove one with
everything that runs in it (standard library only: the scripts that import this run under any
python3, with or without the packages of a particular test).

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
    import wgf_netns
"""
import ctypes
import os
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000


def enter(ns):
    """This process's sockets open in namespace `ns` from here on (its threads' too, when they
    start after this call)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def pids(ns):
    """The processes in namespace `ns`, this one left out (it may have entered it)."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


def remove(ns, ifnames=(), grace=5.0):
    """Ends every process in `ns` (SIGTERM, then SIGKILL after `grace` seconds for what is left:
    wireguard-go removes its socket on SIGTERM), deletes the namespace, and removes the UAPI
    socket of each of `ifnames` that is left behind. Never raises: it runs in `finally`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = pids(ns)
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in left):
            time.sleep(0.05)
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    for ifname in ifnames:
        try:
            os.remove(f"/var/run/wireguard/{ifname}.sock")
        except FileNotFoundError:
            pass
