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

. "$(dirname "${BASH_SOURCE[0]}")/venv-lib.sh"
ensure_venv dev-env "$venv" "$python"

"$venv/bin/python" -m pip install --quiet --upgrade pip
# The distribution was called "pyhost" before it became mod-pyhost (that name
# on PyPI is somebody else's); a venv holding the old one would keep two
# distributions owning the same files.
"$venv/bin/python" -m pip uninstall --quiet --yes pyhost 2>/dev/null || true
# No wheel cache: a cached build of mod_pyhost may be linked to another
# Python's libpython.
"$venv/bin/python" -m pip install --no-cache-dir "$repo[test,uvloop,frameworks]"
chmod -R a+rX "$venv"
echo "dev-env: ready: $venv/bin/pyhost"
