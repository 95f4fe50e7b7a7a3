#!/usr/bin/env bash
# A Debian sid root with Apache and sid's Python 3.14 and 3.15, to build and
# test pyhost against Pythons this machine's Debian does not package.
#
#   scripts/sid-root.sh build            make (or find) the cached root tarball
#   scripts/sid-root.sh run SRC -- CMD…  unpack a fresh root, copy the checkout
#                                        SRC to /src in it, run CMD there as root
#                                        (cwd /src), remove the root afterwards
#
# The root is debootstrapped (minbase) from the Debian mirror apt is
# configured with, then apt-get installs $SID_PACKAGES into it; the result is
# cached as a tarball in $PYHOST_SID_CACHE (default /var/cache/pyhost-sid),
# named after the package list, so a changed list makes a new one.
#
# CMD runs under chroot inside a private mount namespace (unshare --mount):
# /proc and /dev are mounted only there, so they disappear with the last
# process of the run, however it ends, and the host never sees them. The
# network is the host's (Apache listens on 127.0.0.1 as on the host). This is
# lighter than a container here: no dockerd, no image import (vfs copies
# every layer), and nothing to stop afterwards.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/debian-lib.sh"
. "$here/venv-lib.sh"

cache="${PYHOST_SID_CACHE:-/var/cache/pyhost-sid}"
SID_PACKAGES="apache2 apache2-dev python3.14-dev python3.14-venv python3.15-dev python3.15-venv build-essential ca-certificates"
tag="$(printf '%s' "$SID_PACKAGES" | sha256sum | cut -c1-12)"
tarball="$cache/sid-pyhost-$tag.tar"
# The environment CMD gets: nothing of the host's but what pip needs.
host_ca=/etc/ssl/certs/ca-certificates.crt

die() { echo "sid-root: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"

# Inside the private mount namespace: mount, chroot, run.
if [ "${1:-}" = "__inner" ]; then
    root="$2"; shift 2
    mount --make-rprivate /
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    env_args=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
              LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
              PIP_DEFAULT_TIMEOUT=180)
    if [ -f "$host_ca" ]; then
        mkdir -p "$root/etc/ssl"
        cp "$host_ca" "$root/etc/ssl/host-ca-bundle.crt"
        env_args+=(PIP_CERT=/etc/ssl/host-ca-bundle.crt)
    fi
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PYHOST_TEST_MPMS CI; do
        [ -z "${!v:-}" ] || env_args+=("$v=${!v}")
    done
    exec chroot "$root" /usr/bin/env -i "${env_args[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "${PYHOST_CWD:-/}" "$@"
fi

in_root() {  # ROOT CMD...: run CMD in ROOT under a private mount namespace
    local root="$1"; shift
    unshare --mount --propagation private "$here/sid-root.sh" __inner "$root" "$@"
}

mounts_under() {
    awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo
}

remove_root() {
    local root="$1"
    if [ -n "$(mounts_under "$root")" ]; then
        echo "sid-root: mounts left under $root; not removing it" >&2
        return 1
    fi
    rm -rf "$root"
}

build() {
    if [ -f "$tarball" ]; then
        echo "sid-root: cached: $tarball"
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap not found: run scripts/install-deps.sh --matrix"
    local mirror work t0=$SECONDS
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*"
    mkdir -p "$cache"
    work="$(mktemp -d /var/tmp/pyhost-sid-build.XXXXXX)"
    # shellcheck disable=SC2064
    trap "remove_root '$work'" EXIT
    echo "sid-root: debootstrap sid from $mirror (log: $work/debootstrap.log)"
    if ! debootstrap --variant=minbase sid "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -n 40 "$work/debootstrap.log" >&2
        tail -n 40 "$work/root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
        die "debootstrap failed"
    fi
    echo "sid-root: debootstrap took $((SECONDS - t0))s; installing $SID_PACKAGES"
    # apt in the root checks what this machine's apt checks: where the mirror
    # is a dated snapshot, the host turns off the Valid-Until/Date checks,
    # and sid's InRelease would be refused without the same settings.
    apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' \
        > "$work/root/etc/apt/apt.conf.d/99pyhost-host-checks" || true
    # No daemons started by maintainer scripts.
    printf '#!/bin/sh\nexit 101\n' > "$work/root/usr/sbin/policy-rc.d"
    chmod 755 "$work/root/usr/sbin/policy-rc.d"
    # shellcheck disable=SC2086
    if ! in_root "$work/root" sh -c "apt-get -q update && apt-get -q install -y --no-install-recommends $SID_PACKAGES && apt-get clean" \
            >"$work/apt.log" 2>&1; then
        tail -n 40 "$work/apt.log" >&2
        die "apt-get install in the sid root failed"
    fi
    rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/etc/resolv.conf"
    in_root "$work/root" sh -c 'for p in python3.14 python3.15; do $p -c "import sys, sysconfig; print(sys.version.split()[0], sysconfig.get_config_var(\"Py_ENABLE_SHARED\"))"; done; /usr/sbin/apache2 -v | head -n 1'
    tar -C "$work/root" --numeric-owner -cf "$tarball.partial.$$" .
    mv "$tarball.partial.$$" "$tarball"
    echo "sid-root: built $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - t0))s"
}

run() {
    local src="$1"; shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: $0 run SRC -- CMD..."
    build
    local work status=0 t0=$SECONDS
    work="$(mktemp -d /var/tmp/pyhost-sid-run.XXXXXX)"
    # shellcheck disable=SC2064
    trap "remove_root '$work'" EXIT
    mkdir "$work/root"
    tar -C "$work/root" -xf "$tarball"
    mkdir -p "$work/root/src"
    # The checkout without .git or build leftovers (works for a worktree too).
    copy_checkout "$src" "$work/root/src"
    echo "sid-root: root ready in $((SECONDS - t0))s: $work/root"
    PYHOST_CWD=/src in_root "$work/root" "$@" || status=$?
    return "$status"
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    *) die "usage: $0 build | run SRC -- CMD..." ;;
esac
