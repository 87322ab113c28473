#!/usr/bin/env bash
# Builds the Debian package wg-fleet_VERSION-RELEASE_ARCH.deb from the install rules, in a build
# tree of its own (prefix /usr, Debian's hardening flags from dpkg-buildflags, as debhelper would
# pass them), and prints its path.
#
#   packaging/build-deb.sh [BUILD_DIR]     (default: build-deb; ./run.sh package calls it)
#
# Needs cmake, g++, dpkg-dev (dpkg-shlibdeps computes Depends) and the build dependencies of
# ./run.sh deps. Check the result with `lintian --fail-on error,warning BUILD_DIR/wg-fleet_*.deb`.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "${1:-$src/build-deb}")
cd "$src"  # dpkg-buildflags maps this directory out of the debug information

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src" -B "$out" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWGF_TESTS=OFF -DWGF_WERROR=ON \
    -DCMAKE_CXX_FLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CXXFLAGS)" \
    -DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" "${launcher[@]}" >/dev/null
cmake --build "$out" -j"$(nproc 2>/dev/null || echo 2)" >&2
rm -f "$out"/wg-fleet_*.deb
(cd "$out" && cpack -G DEB >&2)
ls "$out"/wg-fleet_*.deb
