#!/usr/bin/env bash
# wg-fleet's one entry point for people and CI: install what is needed (Debian 12), build, and
# run the demo or the test suite.
#
#   ./run.sh demo     install, build, run the demo on the embedded example fleet
#   ./run.sh test     install, build, run the whole test suite (also under ASan+UBSan)
#   ./run.sh deps     install the Debian packages only
#   ./run.sh build    configure and build into build/
#   ./run.sh bench    run the benchmarks (see BENCHMARKS.md; the backend ones as root)
#   ./run.sh package  build the Debian package build-deb/wg-fleet_*.deb (packaging/build-deb.sh)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  cmake g++ make pkg-config
  libyaml-dev libnl-3-dev libnl-genl-3-dev libnl-route-3-dev libnftnl-dev libmnl-dev
  libspdlog-dev libfmt-dev libsodium-dev nlohmann-json3-dev libcli11-dev libsystemd-dev catch2
  python3 python3-jsonschema python3-yaml
  iproute2 iputils-ping nftables wireguard-tools wireguard-go procps radvd
  clang-format clang-tidy
  # systemd-analyze checks the units (tests/packaging); systemd.pc names their directory;
  # systemd-networkd reads the files of `render networkd` (test render_networkd_systemd)
  systemd
  # the system calls wg-fleet and wireguard-go make, against the units' filter (tests/packaging)
  strace
  # the Debian package: dpkg-shlibdeps computes Depends, lintian checks it, man-db finds its pages
  dpkg-dev
  lintian
  man-db
  nix-bin  # nix-instantiate parses and evaluates the `render nixos` modules (tests/nixos)
  jq  # examples/ci/github-workflow.yml lists the fleet's nodes with it (test ci_example_workflow)
  shellcheck  # examples/client/wg-fleet-register is checked with it (test client_example)
  curl  # the client example's ping unit runs it (test client_example)
  # promtool checks the metrics of `status --format prometheus` (tests/e2e/metrics_e2e.sh)
  prometheus
  # zsh's own completion system runs the zsh completion function (tests/completion)
  zsh
  # both man pages are linted (tests/man)
  mandoc
  groff-base
  libsqlite3-dev  # serve's store of enrolled clients (state_dir/serve.db)
  libcpp-httplib-dev  # serve's HTTP API and its Headscale source's client
  python3-html5lib  # serve's dashboard is parsed strictly as HTML5 (tests/serve)
  curl  # the wg-quick client of serve registers and pings with it (tests/serve/wg_quick_e2e.py)
  openssl  # the Headscale stand-in test makes a self-signed certificate for its TLS server (tests/headscale)
  patch  # applies plan's file diffs, the unified diff's consumer (unit test unified_diff, tests/e2e/plan_e2e.sh)
  diffutils  # GNU diff -u, the unified diff's reference text (unit test unified_diff)
  caddy  # adapts and validates the http_routes snippets, and serves them (unit tests [caddy], tests/e2e/caddy_routes_e2e.sh)
)
JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) != 0 ]]; then
    echo "run.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "run.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  local dir=${1:-build}; shift || true
  # Configured as the Debian package is (prefix /usr, Debian's hardening flags), so the package
  # test packages this tree instead of compiling everything again.
  local package=()
  mapfile -t package < <(packaging/build-deb.sh --cmake-args)
  cmake -S . -B "$dir" "${package[@]}" -DWGF_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$JOBS"
}

demo() {
  # The demo fleet (examples/demo.yaml: two hubs, three peers) in network namespaces on this
  # machine, with real WireGuard (the kernel's, else wireguard-go): plan and apply on every node,
  # then an all-pairs reachability matrix. KEEP=1 leaves it up (`wg-fleet sandbox down` removes it).
  local bin=build/reconciler/cli/wg-fleet cfg=examples/demo.yaml rc=0
  echo "== wg-fleet check $cfg"
  "$bin" -c "$cfg" -q check
  "$bin" -c "$cfg" addresses
  echo "== wg-fleet sandbox up $cfg"
  "$bin" sandbox down --name demo >/dev/null 2>&1 || true
  "$bin" sandbox up "$cfg" --name demo || rc=$?
  if [[ $rc == 0 ]]; then
    echo "== wg-fleet sandbox test"
    "$bin" sandbox test --name demo || rc=$?
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "KEEP=1: the sandbox stays up; try: $bin sandbox exec --name demo alice ping -c1 hub2.demo"
  else
    "$bin" sandbox down --name demo
  fi
  return $rc
}

# phase NAME: closes the running phase (its duration goes to $durations) and starts NAME.
phase_name='' phase_start=0 durations=''
phase() {
  [[ -n $phase_name ]] && durations+="${durations:+, }$phase_name $(minutes $((SECONDS - phase_start)))"
  phase_name=${1:-} phase_start=$SECONDS
}
minutes() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

run_tests() {
  # The durations are printed also when a phase fails.
  trap 'phase; echo "== run.sh test: $(minutes $SECONDS) in all ($durations)"' EXIT
  phase build
  build build
  phase ctest
  (cd build && ctest --output-on-failure -j"$JOBS")
  echo "== unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer"
  phase "asan build"
  # A unity build: the sanitizers' instrumentation of every inline function a source instantiates
  # is compiled once per batch of sources instead of once per source (BENCHMARKS.md, "CI time").
  cmake -S . -B build-asan -DWGF_WERROR=ON -DWGF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_UNITY_BUILD=ON >/dev/null
  cmake --build build-asan -j"$JOBS" --target unit_test_binaries
  phase "asan ctest"
  # The style checks read the sources, not the binaries: once is enough.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$JOBS" -L unit -E '^style_')
}

run_bench() {
  local rc=0
  tests/bench/bench_check.sh || rc=$?
  if [[ $(id -u) != 0 ]]; then
    echo "run.sh bench: the backend benchmarks need root (network namespaces); not run"
    return $rc
  fi
  echo "== the UAPI and nftables backends next to wg and nft (tests/bench/bench_*.cpp)"
  cmake -S . -B build -DWGF_WERROR=ON >/dev/null
  cmake --build build -j"$JOBS" --target bench_uapi_peers bench_nft_rules >/dev/null
  local b
  for b in bench_uapi_peers bench_nft_rules; do
    build/tests/bench/$b || { ((rc)) || rc=1; }
  done
  # serve's enrollment API: registrations/s, time until live, the dashboard (BENCHMARKS.md, 6)
  echo "== wg-fleet serve (tests/bench/bench_serve.py)"
  cmake --build build -j"$JOBS" --target wg-fleet >/dev/null
  python3 tests/bench/bench_serve.py build/reconciler/cli/wg-fleet || { ((rc)) || rc=1; }
  # a key rotation's outage per session under watch, next to the same swap by hand with wg (BENCHMARKS.md, 10)
  echo "== wg-fleet rotate (tests/bench/bench_rotation.py)"
  python3 tests/bench/bench_rotation.py build/reconciler/cli/wg-fleet . || { ((rc)) || rc=1; }
  return $rc
}

case "${1:-}" in
  deps) deps ;;
  build) deps; build build ;;
  demo) deps; build build; demo ;;
  test) deps; run_tests ;;
  bench) deps; run_bench ;;
  package) deps; packaging/build-deb.sh build-deb ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
