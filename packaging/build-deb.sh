#!/usr/bin/env bash
# Builds the Debian package wg-fleet_VERSION-RELEASE_ARCH.deb from the install rules, in a build
# tree of its own (prefix /usr, Debian's hardening flags from dpkg-buildflags, as debhelper would
# pass them), and prints its path.
#
#   packaging/build-deb.sh [BUILD_DIR]     (default: build-deb; ./run.sh package calls it)
#   packaging/build-deb.sh --cmake-args    the cmake arguments of a package build, one per line
#   packaging/build-deb.sh --configured DIR  exit 0 when DIR is a tree configured with them
#
# Needs cmake, g++, dpkg-dev (dpkg-shlibdeps computes Depends) and the build dependencies of
# ./run.sh deps. Check the result with `lintian --fail-on error,warning BUILD_DIR/wg-fleet_*.deb`.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$src"  # dpkg-buildflags maps this directory out of the debug information

# The package's build settings: prefix /usr, Debian's hardening flags. A build tree configured
# with exactly these (./run.sh build configures build/ so) is packaged as it is, tests and all:
# nothing is compiled twice.
args=(-DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWGF_WERROR=ON
      "-DCMAKE_CXX_FLAGS=$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CXXFLAGS)"
      "-DCMAKE_EXE_LINKER_FLAGS=$(dpkg-buildflags --get LDFLAGS)")
if [[ ${1:-} == --cmake-args ]]; then
    printf '%s\n' "${args[@]}"
    exit 0
fi

# Whether the tree in $1 was configured with the package's settings.
configured_for_package() {
    local cache=$1/CMakeCache.txt a key value
    [[ -f $cache ]] || return 1
    for a in "${args[@]}"; do
        key=${a#-D} key=${key%%=*} value=${a#*=}
        awk -v k="$key:" -v v="$value" 'index($0, k) == 1 { sub(/^[^=]*=/, ""); found = ($0 == v) } END { exit !found }' "$cache" ||
            return 1
    done
}
if [[ ${1:-} == --configured ]]; then
    configured_for_package "$(realpath -m "$2")"
    exit
fi

out=$(realpath -m "${1:-$src/build-deb}")
if configured_for_package "$out"; then
    cmake --build "$out" --target wg-fleet -j"$(nproc 2>/dev/null || echo 2)" >&2
else
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$src" -B "$out" "${args[@]}" -DWGF_TESTS=OFF "${launcher[@]}" >/dev/null
    cmake --build "$out" -j"$(nproc 2>/dev/null || echo 2)" >&2
fi
rm -f "$out"/wg-fleet_*.deb
(cd "$out" && cpack -G DEB >&2)
ls "$out"/wg-fleet_*.deb
