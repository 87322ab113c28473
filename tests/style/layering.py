#!/usr/bin/env python3
"""The layers of reconciler/ link and include one way only.

Each directory of reconciler/ is one CMake library (linux/ is two: its pure codecs and the rest).
This reads every `target_link_libraries` of reconciler/*/CMakeLists.txt and every `#include
"DIR/..."` of its sources, and fails on any that reaches a layer the table below does not allow
(upward, or sideways from the engine into the real implementations). It also fails when apply/,
the engine over backend/'s interfaces, opens a file itself.

Usage: layering.py REPO
"""
import pathlib
import re
import sys

# Who may use whom (besides itself). cli builds the real implementations and hands them to the
# engine; sandbox is a module above cli.
BELOW = {
    "model": set(),
    "config": {"model"},
    "plan": {"config", "model"},
    "backend": {"plan", "config", "model"},
    "linux": {"backend", "plan", "config", "model"},
    "system": {"linux", "backend", "plan", "config", "model"},
    "apply": {"backend", "plan", "config", "model"},
    # store/: serve's store of enrolled clients, which every command that builds the desired
    # state reads (inputs/enrolled).
    "store": {"model"},
    "inputs": {"store", "apply", "backend", "plan", "config", "model"},
    "cli": {"serve", "store", "inputs", "apply", "system", "linux", "backend", "plan", "config", "model"},
    "sandbox": {"cli", "serve", "store", "inputs", "apply", "system", "linux", "backend", "plan", "config", "model"},
    # serve/ sits beside cli/: the libraries of `wg-fleet serve` (its HTTP API, the edge agent's
    # drop-in, the Headscale source, whose client keeps its mapping in state_dir).
    "serve": {"store", "inputs", "apply", "system", "linux", "backend", "plan", "config", "model"},
}
# A library's name to its layer.
LIB = {f"wgf_{d}": d for d in BELOW}
LIB["wgf_linux_codec"] = "linux"
LIB["wgf_backend_fake"] = "backend"
LIB["wgf_output"] = "cli"  # the output formats, a library of their own for tests
LIB["wgf_serve_store"] = "store"
LIB["wgf_headscale"] = LIB["wgf_headscale_client"] = LIB["wgf_headscale_serve"] = LIB["wgf_serve_agent"] = "serve"

# What opening a file looks like in C++ here: the engine leaves that to backend/'s implementations.
FILE_IO = re.compile(r"\b(?:open|openat|fopen|opendir|creat)\s*\(|\bstd::(?:i|o)?fstream\b|\bstd::filesystem\b|<fstream>|<filesystem>")


def main():
    repo = pathlib.Path(sys.argv[1])
    rec = repo / "reconciler"
    problems = []
    # The in-memory fakes are for tests: no library of the program may link them.
    for cm in sorted(rec.glob("*/CMakeLists.txt")):
        for m in re.finditer(r"target_link_libraries\(\s*(\S+)([^)]*)\)", cm.read_text()):
            if "wgf_backend_fake" in m.group(2):
                problems.append(f"{cm.relative_to(repo)}: {m.group(1)} links the in-memory fakes (wgf_backend_fake)")
    # A layer's CMake text: its CMakeLists.txt and any *.cmake file beside it (serve/headscale.cmake).
    def cmake_text(d):
        return "".join(f.read_text() for f in sorted((rec / d).glob("*")) if f.name == "CMakeLists.txt" or f.suffix == ".cmake")

    dirs = sorted(p.name for p in rec.iterdir() if p.is_dir() and cmake_text(p.name))
    for d in dirs:
        if d not in BELOW:
            problems.append(f"reconciler/{d}/: a layer this test does not know; add it to BELOW")
            continue
        allowed = BELOW[d] | {d}
        cmake = cmake_text(d)
        libraries = set(re.findall(r"add_library\(\s*(\S+)", cmake))
        for m in re.finditer(r"target_link_libraries\(\s*(\S+)([^)]*)\)", cmake):
            if m.group(1) not in libraries:
                continue  # the program itself (cli/main.cpp) sits on top of every layer
            for lib in re.findall(r"\bwgf_\w+", m.group(2)):
                layer = LIB.get(lib)
                if layer is None:
                    problems.append(f"reconciler/{d}/CMakeLists.txt: {m.group(1)} links {lib}, a library of no known layer")
                elif layer not in allowed:
                    problems.append(f"reconciler/{d}/CMakeLists.txt: {m.group(1)} links {lib} ({layer}/), which {d}/ may not use")
        for src in sorted((rec / d).glob("*.[ch]pp")):
            if (d, src.name) == ("cli", "main.cpp"):
                continue
            text = src.read_text()
            for n, line in enumerate(text.splitlines(), 1):
                inc = re.match(r'\s*#\s*include\s+"(\w+)/', line)
                if inc and inc.group(1) in BELOW and inc.group(1) not in allowed:
                    problems.append(f"{src.relative_to(repo)}:{n}: includes {inc.group(1)}/, which {d}/ may not use")
                code = line.split("//", 1)[0]
                if d == "apply" and FILE_IO.search(code):
                    problems.append(f"{src.relative_to(repo)}:{n}: apply/ opens files itself: {line.strip()}")
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} problem(s)")
        return 1
    print(f"layering: {len(dirs)} layers link and include one way only; apply/ opens no file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
