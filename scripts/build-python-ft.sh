#!/usr/bin/env bash
# Build a free-threaded CPython (configure --disable-gil) from the upstream
# tarball Debian sid carries in its python3.X source package, for the matrix
# and the free-threading tests.
#
#   scripts/build-python-ft.sh          prints "build-python-ft: ready: PREFIX (version)"
#
# Source: the .orig.tar.xz of the first source package in $PYHOST_FT_SOURCES
# (default "python3.14 python3.13") whose files the Debian mirror apt is
# configured with serves, newest version first. apt-get source fetches it
# with a private apt state for sid (scripts/debian-lib.sh), so the InRelease
# signature and the Sources index checksums are checked by apt; the tarball
# is then checked again against the .dsc's Checksums-Sha256. Downloads are
# kept in $PYHOST_FT_CACHE (default /var/cache/pyhost-python-ft).
#
# Installs into $PYHOST_PYTHONS/X.Yt (default /opt/pyhost/pythons/3.14t),
# world-readable, with an rpath so bin/python finds its own libpython, and
# points $PYHOST_PYTHONS/ft at it. No tests, no PGO: make -j$(nproc).
# Skips everything when an install is there and answers as a free-threaded
# X.Y (well under a second).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/debian-lib.sh"

dest_root="${PYHOST_PYTHONS:-/opt/pyhost/pythons}"
cache="${PYHOST_FT_CACHE:-/var/cache/pyhost-python-ft}"
read -r -a sources <<< "${PYHOST_FT_SOURCES:-python3.14 python3.13}"
t0=$SECONDS

# Does PREFIX hold a working free-threaded X.Y with its own libpython?
ft_works() {
    local prefix="$1" xy="$2" libs
    [ -x "$prefix/bin/python${xy}t" ] || return 1
    "$prefix/bin/python${xy}t" -c '
import sys, sysconfig
prefix, xy = sys.argv[1], sys.argv[2]
assert "%d.%d" % sys.version_info[:2] == xy, sys.version
assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1
assert sysconfig.get_config_var("Py_ENABLE_SHARED") == 1
assert sys.prefix == prefix, sys.prefix
assert not sys._is_gil_enabled()
import ensurepip, ssl, zlib, ctypes, sqlite3  # what venv + pip + the tests use
' "$prefix" "$xy" 2>/dev/null || return 1
    libs="$(ldd "$prefix/bin/python${xy}t")" || return 1
    case "$libs" in *"=> $prefix/lib/libpython${xy}t.so"*) return 0 ;; *) return 1 ;; esac
}

ready() {
    local prefix="$1" xy="$2"
    ln -sfn "$(basename "$prefix")" "$dest_root/ft"
    echo "build-python-ft: ready: $prefix ($("$prefix/bin/python${xy}t" -VV | head -n 1)) [$((SECONDS - t0))s]"
}

for pkg in "${sources[@]}"; do
    xy="${pkg#python}"
    if ft_works "$dest_root/${xy}t" "$xy"; then
        ready "$dest_root/${xy}t" "$xy"
        exit 0
    fi
done

umask 022
mkdir -p "$cache" "$dest_root"
chmod a+rx "$dest_root"

# A verified orig tarball already in the cache?  (PKG_VERSION.orig.tar.xz
# beside a .verified stamp written below.)
orig=""
for pkg in "${sources[@]}"; do
    orig="$(ls "$cache"/"${pkg}"_*.orig.tar.xz 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$orig" ] && [ -f "$orig.verified" ]; then
        break
    fi
    orig=""
done

verify_orig() {  # DSC ORIG: the .dsc's Checksums-Sha256 line for ORIG matches
    local dsc="$1" orig="$2" want have
    want="$(awk -v f="$(basename "$orig")" '
        /^Checksums-Sha256:/ { s = 1; next }
        /^[^ ]/ { s = 0 }
        s && $3 == f { print $1 }' "$dsc")"
    have="$(sha256sum "$orig" | cut -d' ' -f1)"
    if [ -z "$want" ] || [ "$want" != "$have" ]; then
        echo "build-python-ft: $(basename "$orig"): sha256 $have, .dsc says '${want}'" >&2
        return 1
    fi
}

if [ -z "$orig" ]; then
    apt_dir="$cache/apt"
    echo "build-python-ft: reading sid's source index"
    sid_apt_init "$apt_dir"
    for pkg in "${sources[@]}"; do
        versions="$(sid_apt "$apt_dir" apt-cache showsrc "$pkg" 2>/dev/null \
            | awk -v p="$pkg" '/^Package:/ { ok = ($2 == p) } ok && /^Version:/ { print $2 }' | sort -Vr -u)"
        for ver in $versions; do
            dl="$(mktemp -d "$cache/dl.XXXXXX")"
            if (cd "$dl" && sid_apt "$apt_dir" apt-get -q source --download-only "$pkg=$ver") >"$dl/log" 2>&1; then
                upstream="${ver#*:}"; upstream="${upstream%-*}"
                o="$dl/${pkg}_${upstream}.orig.tar.xz"
                dsc="$(ls "$dl"/*.dsc)"
                if [ -f "$o" ] && verify_orig "$dsc" "$o"; then
                    mv "$o" "$cache/"
                    orig="$cache/$(basename "$o")"
                    cp "$dsc" "$orig.dsc"
                    echo "sha256 checked against $(basename "$dsc")" > "$orig.verified"
                    echo "build-python-ft: fetched and verified $(basename "$orig")"
                fi
            else
                echo "build-python-ft: $pkg $ver: not served by the mirror: $(grep -m1 '^E: ' "$dl/log" | cut -c1-160)"
            fi
            rm -rf "$dl"
            [ -z "$orig" ] || break 2
        done
    done
fi
if [ -z "$orig" ]; then
    echo "build-python-ft: no python source package of ${sources[*]} could be fetched" >&2
    exit 1
fi

base="$(basename "$orig")"          # python3.13_3.13.15.orig.tar.xz
pkg="${base%%_*}"; xy="${pkg#python}"
prefix="$dest_root/${xy}t"
build="$(mktemp -d "${TMPDIR:-/tmp}/pyhost-ft-build.XXXXXX")"
trap 'rm -rf "$build"' EXIT
echo "build-python-ft: building $base into $prefix (log: $build/build.log while it runs)"
tar -C "$build" -xJf "$orig"
srcdir="$(ls -d "$build"/Python-*/)"
rm -rf "$prefix"
log="$build/build.log"
tb=$SECONDS
if ! (cd "$srcdir" \
        && ./configure --disable-gil --enable-shared --prefix="$prefix" \
             LDFLAGS="-Wl,-rpath,$prefix/lib" \
        && make -j"$(nproc)" \
        && make install) >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "build-python-ft: build failed (above: the end of its log)" >&2
    exit 1
fi
grep -E "^The necessary bits|^Failed to build these modules|^Following modules built successfully but were removed" -A3 "$log" || true
chmod -R a+rX "$prefix"
if ! ft_works "$prefix" "$xy"; then
    echo "build-python-ft: $prefix was installed but does not answer as a free-threaded $xy:" >&2
    "$prefix/bin/python${xy}t" -c 'import sys, sysconfig; print(sys.version, sys.prefix, sysconfig.get_config_var("Py_GIL_DISABLED"))' >&2 || true
    exit 1
fi
echo "build-python-ft: configure+make+install took $((SECONDS - tb))s"
ready "$prefix" "$xy"
