#!/usr/bin/env bash
# Relocated, world-readable copies of pyenv's Pythons for the version matrix.
#
#   scripts/host-pythons.sh [X.Y ...]     default: 3.9 3.10 3.11 3.12 3.13
#
# Apache's children run as www-data and cannot read /root (mode 0700), so a
# pyenv Python under /root/.pyenv cannot be WSGIPythonHome, and a module
# linked to its libpython cannot even be loaded. Each X.Y found in
# $PYENV_ROOT/versions (highest X.Y.Z present) is copied to
# $PYHOST_PYTHONS/X.Y (default /opt/pyhost/pythons) and made to live there:
#   - every ELF file's RUNPATH that named the pyenv prefix names the copy's
#     lib/ instead (patchelf), so bin/python and lib-dynload find the copy's
#     libpython;
#   - the build-time paths in text files (sysconfigdata, config/Makefile,
#     pkgconfig, pythonX.Y-config, script shebangs) name the copy, so a venv
#     made from it builds pyhost against the copy (-L, -rpath, includes).
# Left out of the copy: the test package and whatever pip put in
# site-packages (venvs do not see it; pip comes from ensurepip).
#
# Idempotent: a copy whose stamp names the same source and whose python runs
# is left alone (a second run takes well under a second).
# Prints one line per version: "host-pythons: X.Y ready: PREFIX (X.Y.Z)".
set -euo pipefail

pyenv_root="${PYENV_ROOT:-/root/.pyenv}"
dest_root="${PYHOST_PYTHONS:-/opt/pyhost/pythons}"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.9 3.10 3.11 3.12 3.13)

if ! command -v patchelf >/dev/null; then
    echo "host-pythons: patchelf not found: run scripts/install-deps.sh --matrix" >&2
    exit 1
fi

# The highest X.Y.Z directory pyenv has for X.Y (plain releases only).
find_source() {
    local xy="$1"
    ls -d "$pyenv_root/versions/$xy".* 2>/dev/null \
        | grep -E "/$(printf '%s' "$xy" | sed 's/\./\\./g')\.[0-9]+$" \
        | sort -V | tail -n 1
}

# Does the copy at $1 run as www-data-readable X.Y, with its own libpython?
copy_works() {
    local prefix="$1" xy="$2"
    [ -x "$prefix/bin/python$xy" ] || return 1
    "$prefix/bin/python$xy" -c '
import sys, sysconfig
prefix, xy = sys.argv[1], sys.argv[2]
assert "%d.%d" % sys.version_info[:2] == xy, sys.version
assert sys.prefix == prefix, sys.prefix
assert sysconfig.get_config_var("LIBDIR") == prefix + "/lib", sysconfig.get_config_var("LIBDIR")
'  "$prefix" "$xy" 2>/dev/null || return 1
    local libs
    libs="$(ldd "$prefix/bin/python$xy")" || return 1
    case "$libs" in *"=> $prefix/lib/libpython$xy"*) ;; *) return 1 ;; esac
}

relocate() {
    local src="$1" xy="$2" dest="$3" tmp="$3.tmp.$$" f
    echo "host-pythons: copying $src -> $dest"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # tar keeps symlinks, modes and hard links; excludes are relative.
    tar -C "$src" -cf - \
        --exclude="./lib/python$xy/test" \
        --exclude="./lib/python$xy/site-packages/*" \
        . | tar -C "$tmp" -xf -
    # ELF files: RUNPATH naming the pyenv prefix -> the final prefix's lib.
    while IFS= read -r -d '' f; do
        if head -c 4 "$f" | grep -q $'^\x7fELF'; then
            local rp
            rp="$(patchelf --print-rpath "$f" 2>/dev/null || true)"
            case "$rp" in
                *"$src"*)
                    chmod u+w "$f"
                    patchelf --set-rpath "${rp//$src/$dest}" "$f"
                    ;;
            esac
        fi
    done < <(find "$tmp" -type f \( -name '*.so*' -o -path '*/bin/*' \) -print0)
    # Text files naming the pyenv prefix: build data, pkgconfig, shebangs.
    # (-I: binary files such as .pyc are left alone; their paths are fixed
    # at import from the source next to them.)
    { grep -rlIZ -F "$src" "$tmp" || true; } | while IFS= read -r -d '' f; do
        sed -i "s|${src//./\\.}|$dest|g" "$f"
    done
    # sysconfig data changed: drop its stale bytecode.
    find "$tmp/lib/python$xy" -maxdepth 2 -path '*__pycache__*' -name '_sysconfigdata*' -delete
    printf 'source=%s\n' "$src" > "$tmp/.pyhost-host-python"
    chmod -R a+rX "$tmp"
    rm -rf "$dest"
    mv "$tmp" "$dest"
}

umask 022
mkdir -p "$dest_root"
chmod a+rx "$dest_root" "$(dirname "$dest_root")"
status=0
for xy in "${versions[@]}"; do
    src="$(find_source "$xy")"
    if [ -z "$src" ]; then
        echo "host-pythons: no pyenv Python $xy under $pyenv_root/versions" >&2
        status=1
        continue
    fi
    dest="$dest_root/$xy"
    if [ "$(cat "$dest/.pyhost-host-python" 2>/dev/null)" = "source=$src" ] && copy_works "$dest" "$xy"; then
        :
    else
        relocate "$src" "$xy" "$dest"
        if ! copy_works "$dest" "$xy"; then
            echo "host-pythons: the copy at $dest does not work:" >&2
            ldd "$dest/bin/python$xy" >&2 || true
            status=1
            continue
        fi
    fi
    echo "host-pythons: $xy ready: $dest ($("$dest/bin/python$xy" -c 'import platform; print(platform.python_version())'))"
done
exit "$status"
