#!/usr/bin/env bash
# Create or refresh the venv that Apache's children run pyhost from, and
# install this checkout into it (with test extras).
#
# The venv is built from the system Python and made world-readable because
# Apache's children run as www-data: a Python under /root (pyenv) is out of
# their reach. The install is not editable for the same reason: the checkout
# itself may live under /root.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PYHOST_VENV:-/opt/pyhost/venv}"
python="/usr/bin/${PYHOST_PY:-python3.11}"

if [ ! -x "$python" ]; then
    echo "dev-env: $python not found; run scripts/install-deps.sh first" >&2
    exit 1
fi

umask 022
want="$("$python" -c 'import sys; print(sys.base_prefix, sys.version_info[:2])')"
have="$("$venv/bin/python" -c 'import sys; print(sys.base_prefix, sys.version_info[:2])' 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
    echo "dev-env: creating $venv with $python"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
# No wheel cache: a cached build of mod_pyhost may be linked to another
# Python's libpython.
"$venv/bin/python" -m pip install --no-cache-dir "$repo[test]"
chmod -R a+rX "$venv"
echo "dev-env: ready: $venv/bin/pyhost"
