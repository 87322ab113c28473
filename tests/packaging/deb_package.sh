#!/usr/bin/env bash
# The Debian package, checked by dpkg, lintian and apt (root):
#  1. packaging/build-deb.sh builds it in BUILD_DIR (prefix /usr);
#  2. lintian --fail-on error,warning (overrides only from packaging/lintian-overrides);
#  3. its files are exactly what `cmake --install` installs plus the Debian-only component, its
#     Depends name the package of every library the binary links (objdump, dpkg -S), /etc holds
#     only conffiles and never wg-fleet.yaml;
#  4. apt-get installs it, offline, into an overlay of / in a private mount namespace (the host
#     is untouched: the upper layer is a tmpfs that goes with the namespace), where the installed
#     wg-fleet runs: --version, check on every installed example and on
#     /etc/wg-fleet.yaml.example, systemd-analyze verify on the installed units; an existing
#     /etc/wg-fleet.yaml survives install and purge.
#
#   deb_package.sh SOURCE_DIR BUILD_DIR [TREE]
# TREE (ctest passes its own build tree) is packaged instead of building BUILD_DIR when it was
# configured as a package build is (./run.sh build does so): nothing is compiled twice.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# In the overlay root the script runs from /tmp, with lib.sh copied beside it.
if [[ -e $here/../e2e/lib.sh ]]; then . "$here/../e2e/lib.sh"; else . "$here/lib.sh"; fi

# ---- inside the overlay root (run by the outer script through chroot) ----
if [[ ${1:-} == --inside ]]; then
    deb=$2 expected_version=$3
    export DEBIAN_FRONTEND=noninteractive
    echo "# the admin's own fleet file" >/etc/wg-fleet.yaml
    admin_sum=$(sha256sum </etc/wg-fleet.yaml)
    # Offline: no package sources at all, so apt can only use what is installed already.
    mkdir -p /tmp/apt-offline/sources.list.d && : >/tmp/apt-offline/sources.list
    offline=(-o Dir::Etc::SourceList=/tmp/apt-offline/sources.list -o Dir::Etc::SourceParts=/tmp/apt-offline/sources.list.d)
    if apt-get install -y -q "${offline[@]}" "$deb" >/tmp/apt.log 2>&1; then ok "apt-get install $deb (offline)"; else
        cat /tmp/apt.log; bad "apt-get install $deb (offline)"; finish; exit 1
    fi
    check "wg-fleet is /usr/sbin/wg-fleet" test "$(command -v wg-fleet)" = /usr/sbin/wg-fleet
    version=$(wg-fleet --version 2>&1)
    check "wg-fleet --version ($version) names the package's upstream version $expected_version" \
        grep -qF "$expected_version" <<<"$version"
    examples=(/usr/share/doc/wg-fleet/examples/*.yaml)
    check "examples installed (${#examples[@]})" test -e "${examples[0]}"
    for f in "${examples[@]}" /etc/wg-fleet.yaml.example; do
        check "wg-fleet -c $f check" wg-fleet -q -c "$f" check
    done
    check "dpkg lists /etc/wg-fleet.yaml.example as a conffile" \
        grep -q '^ /etc/wg-fleet.yaml.example ' <(dpkg-query -W -f='${Conffiles}\n' wg-fleet)
    check "/etc/wg-fleet.yaml is the admin's, untouched by install" test "$(sha256sum </etc/wg-fleet.yaml)" = "$admin_sum"
    units=()
    for u in $(dpkg -L wg-fleet | grep '^/lib/systemd/.*\.service$\|^/usr/lib/systemd/.*\.service$'); do units+=("$u"); done
    check "three units installed (${units[*]})" test ${#units[@]} -eq 3
    out=$(systemd-analyze verify --man=no "${units[@]}" 2>&1)
    [[ -n $out ]] && printf '%s\n' "$out"
    check "systemd-analyze verify on the installed units prints nothing (ExecStart is the installed binary)" test -z "$out"
    check "man finds wg-fleet(8) and wg-fleet.yaml(5)" eval "man -w wg-fleet.8 wg-fleet.yaml.5 >/dev/null"
    check "the installed JSON Schema is valid JSON" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \
        /usr/share/wg-fleet/wg-fleet.schema.json
    check "apt-get purge wg-fleet" eval 'apt-get purge -y -q "${offline[@]}" wg-fleet >/tmp/apt.log 2>&1' 
    check "purge removed /usr/sbin/wg-fleet and /etc/wg-fleet.yaml.example" \
        test ! -e /usr/sbin/wg-fleet -a ! -e /etc/wg-fleet.yaml.example
    check "/etc/wg-fleet.yaml is still the admin's after purge" test "$(sha256sum </etc/wg-fleet.yaml)" = "$admin_sum"
    finish
    exit
fi

# ---- the overlay over / (run by the outer script through unshare -m) ----
if [[ ${1:-} == --overlay ]]; then
    set -e
    work=$2 deb=$3 version=$4
    mount --make-rprivate /
    mount -t tmpfs -o mode=0700 wgf-deb-test "$work"
    mkdir "$work/upper" "$work/work" "$work/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$work/root"
    mount -t proc proc "$work/root/proc"
    mount --rbind /dev "$work/root/dev"
    mount --rbind /sys "$work/root/sys"
    mount -t tmpfs tmpfs "$work/root/tmp"
    mount -t tmpfs tmpfs "$work/root/run"
    cp "$deb" "$here/deb_package.sh" "$here/../e2e/lib.sh" "$work/root/tmp/"
    set +e
    chroot "$work/root" /bin/bash /tmp/deb_package.sh --inside "/tmp/$(basename "$deb")" "$version"
    exit
fi

need_root "apt-get install into an overlay of / in a private mount namespace"
src=$(cd "$1" && pwd) out=$2
if [[ -n ${3:-} ]] && "$src/packaging/build-deb.sh" --configured "$3"; then
    out=$3
    echo "# packaging the build tree $out (configured as a package build)"
fi
missing=()
for tool in cmake cpack dpkg-deb dpkg-shlibdeps lintian apt-get unshare chroot objdump systemd-analyze; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (./run.sh deps installs them)"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wgf-deb.XXXXXX")
cleanup() {
    # The mounts live in the unshared namespace and end with it; only the directories are ours.
    rm -rf "$tmp"
}
trap cleanup EXIT

# 1. build
if ! deb=$("$src/packaging/build-deb.sh" "$out" 2>"$tmp/build.log"); then
    tail -40 "$tmp/build.log"
    bad "packaging/build-deb.sh $out"
    finish
    exit 1
fi
ok "packaging/build-deb.sh built $(basename "$deb")"

# 2. lintian
lintian_out=$(lintian --fail-on error,warning "$deb" 2>&1)
rc=$?
grep -v 'running with root privileges' <<<"$lintian_out"
check "lintian --fail-on error,warning $(basename "$deb") (exit $rc)" test "$rc" -eq 0
reasonless=$(awk '/^[^#]/ && prev !~ /^#/ { print } { prev = $0 }' "$src/packaging/lintian-overrides")
check "every override in packaging/lintian-overrides has its reason on the line above (${reasonless:-all have})" test -z "$reasonless"

# 3. contents
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort >"$tmp/packaged"
listing() { (cd "$1" && find . ! -type d | sed 's/^\.//' | sort); }
DESTDIR="$tmp/default" cmake --install "$out" >/dev/null
DESTDIR="$tmp/debian" cmake --install "$out" --component debian >/dev/null
listing "$tmp/default" >"$tmp/installed"
listing "$tmp/debian" >"$tmp/debian-only"
sort -u "$tmp/installed" "$tmp/debian-only" >"$tmp/expected"
check "the package holds everything cmake --install installs ($(wc -l <"$tmp/installed") files)" \
    test -z "$(comm -23 "$tmp/installed" "$tmp/packaged")"
check "the package holds nothing else but the Debian-only component ($(paste -sd' ' "$tmp/debian-only"))" \
    test -z "$(comm -13 "$tmp/expected" "$tmp/packaged")"
comm -3 "$tmp/expected" "$tmp/packaged" | sed 's/^/    differs: /'
unit_dir=$(pkg-config --variable=systemdsystemunitdir systemd)
for f in /usr/sbin/wg-fleet /usr/share/man/man8/wg-fleet.8.gz /usr/share/man/man5/wg-fleet.yaml.5.gz \
         "$unit_dir/wg-fleet.service" "$unit_dir/wg-fleet-apply.service" "$unit_dir/wg-fleet-serve.service" /usr/share/wg-fleet/wg-fleet.schema.json \
         /usr/share/doc/wg-fleet/copyright /usr/share/doc/wg-fleet/changelog.Debian.gz /etc/wg-fleet.yaml.example \
         /usr/share/lintian/overrides/wg-fleet; do
    check "the package has $f" grep -qxF "$f" "$tmp/packaged"
done
check "the package has examples in /usr/share/doc/wg-fleet/examples/" grep -q '^/usr/share/doc/wg-fleet/examples/.*\.yaml$' "$tmp/packaged"
for f in README.md wg-fleet-register wg-fleet-ping.service wg-fleet-ping.timer; do
    check "the package has the client example's $f" grep -qxF "/usr/share/doc/wg-fleet/examples/client/$f" "$tmp/packaged"
done
check "the package never ships /etc/wg-fleet.yaml" test -z "$(grep -x '/etc/wg-fleet.yaml' "$tmp/packaged")"
mkdir "$tmp/x" && dpkg-deb -x "$deb" "$tmp/x"
for page in man8/wg-fleet.8 man5/wg-fleet.yaml.5; do
    check "$page.gz is man/$(basename "$page"), compressed" cmp -s <(gzip -dc "$tmp/x/usr/share/man/$page.gz") "$src/man/$(basename "$page")"
done
dpkg-deb -e "$deb" "$tmp/control"
etc_files=$(grep '^/etc/' "$tmp/packaged" | sort)
check "every file in /etc is a conffile ($etc_files)" test "$etc_files" = "$(sort "$tmp/control/conffiles")"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in $(objdump -p "$tmp/x/usr/sbin/wg-fleet" | awk '$1 == "NEEDED" { print $2 }'); do
    pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -1 | cut -d: -f1)
    # The package itself or a name it provides (libspdlog1.10 provides libspdlog1.10-fmt9).
    names=$(printf '%s\n' "$pkg"; dpkg-query -W -f='${Provides}\n' "$pkg" | tr ',' '\n' | awk 'NF { print $1 }')
    check "Depends names $pkg (or what it provides), which ships $lib (dpkg-shlibdeps)" \
        grep -qxF -f <(printf '%s\n' "$names") <(tr ',' '\n' <<<"$depends" | awk 'NF { print $1 }')
done
check "Recommends: wireguard-tools" test "$(dpkg-deb -f "$deb" Recommends)" = wireguard-tools
check "Suggests: wireguard-go" test "$(dpkg-deb -f "$deb" Suggests)" = wireguard-go

# 4. install and run it in an overlay of /
version=$(dpkg-deb -f "$deb" Version)
mkdir "$tmp/overlay"
unshare -m -- "$here/deb_package.sh" --overlay "$tmp/overlay" "$deb" "${version%-*}" | tee "$tmp/inside.log"
inside_rc=${PIPESTATUS[0]}
check "the installed package's checks passed in the overlay root (exit $inside_rc)" test "$inside_rc" -eq 0
finish
