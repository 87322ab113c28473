#!/usr/bin/env python3
"""The secrets audit's search: does any target file hold a secret?

  secrets_search.py [--key FILE]... [--secret FILE]... TARGET...

--key FILE: a WireGuard private key (base64 of 32 bytes), looked for as base64 (also cut to 32
characters and URL-safe), hex (both cases) and raw bytes. --secret FILE: any other secret (a
token), its content without the trailing newline, looked for as text, base64 and hex. A TARGET
directory is searched whole. The secret files themselves, and files ending in .key, are not
targets. Prints a LEAK line per find; exit 1 if there was one.
"""
import argparse
import base64
import os
import sys


def needles_of_key(path):
    raw = base64.b64decode(open(path).read().strip())
    assert len(raw) == 32, path
    b64 = base64.b64encode(raw).decode()
    forms = [("base64", b64), ("base64 cut to 32 chars", b64[:32]), ("url-safe base64", base64.urlsafe_b64encode(raw).decode()[:43]),
             ("hex", raw.hex()), ("HEX", raw.hex().upper())]
    return [(path, form, n.encode()) for form, n in forms] + [(path, "raw bytes", raw)]


def needles_of_secret(path):
    text = open(path, "rb").read().rstrip(b"\r\n ")
    assert len(text) >= 8, f"{path}: too short to search for"
    return [(path, "text", text), (path, "base64", base64.b64encode(text)[:max(8, len(text) * 4 // 3 - 2)]),
            (path, "hex", text.hex().encode())]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", action="append", default=[])
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("targets", nargs="+")
    a = ap.parse_args()
    needles = [n for k in a.key for n in needles_of_key(k)] + [n for s in a.secret for n in needles_of_secret(s)]
    own = {os.path.realpath(p) for p in a.key + a.secret}
    files = []
    for t in a.targets:
        if os.path.isdir(t):
            for root, _, names in os.walk(t):
                files += [os.path.join(root, n) for n in names]
        else:
            files.append(t)
    found = searched = 0
    for f in files:
        if f.endswith(".key") or os.path.realpath(f) in own or not os.path.isfile(f):
            continue
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:  # a temporary file renamed away after the listing
            continue
        searched += 1
        for src, form, n in needles:
            if n in data:
                print(f"LEAK: {f} holds the secret {src} as {form}")
                found += 1
    print(f"searched {searched} files for {len(a.key)} keys and {len(a.secret)} other secrets")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
