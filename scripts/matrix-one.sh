#!/usr/bin/env bash
# One cell of the Python version matrix (scripts/matrix.sh runs it on the
# host and inside the sid root): make or refresh a world-readable venv from
# PYTHON, build and install this checkout into it (no wheel cache), run the
# core test subset (pytest -m core) under one MPM, and print
#   matrix-result: LABEL VERSION PASSED FAILED SKIPPED SECONDS
# Exits non-zero when the build fails, a test fails or none ran.
#
#   scripts/matrix-one.sh LABEL PYTHON VENV
# Env: PYHOST_MATRIX_MPM (default event), PYHOST_MATRIX_PYTEST_ARGS (extra
# pytest arguments), PYHOST_MATRIX_TIMEOUT (seconds for pytest, default 1800).
set -euo pipefail

label="$1" python="$2" venv="$3"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mpm="${PYHOST_MATRIX_MPM:-event}"
t0=$SECONDS

result() {  # PASSED FAILED SKIPPED
    echo "matrix-result: $label ${version:-?} $1 $2 $3 $((SECONDS - t0))"
}

. "$(dirname "${BASH_SOURCE[0]}")/venv-lib.sh"
ensure_venv "matrix $label" "$venv" "$python"
version="$("$venv/bin/python" -c 'import sys, sysconfig; print(sys.version.split()[0] + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))')"

# Build from a private copy of the checkout: pip builds a local directory in
# place (build/, the Cython output), and matrix.sh runs cells side by side.
src="$(mktemp -d "${TMPDIR:-/tmp}/pyhost-matrix-src-$label.XXXXXX")"
trap 'rm -rf "$src"' EXIT
copy_checkout "$repo" "$src"

log="$venv/matrix-build.log"
if ! { "$venv/bin/python" -m pip install --quiet --upgrade pip \
       && { "$venv/bin/python" -m pip uninstall --quiet --yes pyhost || true; } \
       && "$venv/bin/python" -m pip install --no-cache-dir "$src[test]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "matrix $label: building or installing pyhost with $python failed" >&2
    result 0 1 0
    exit 1
fi
chmod -R a+rX "$venv"
so="$("$venv/bin/python" -c 'import pyhost; print(pyhost.module_location())')"
echo "matrix $label: built $so against $(ldd "$so" | awk '/libpython/ { print $3 }')"

junit="$(mktemp "${TMPDIR:-/tmp}/pyhost-matrix-$label.XXXXXX.xml")"
status=0
# shellcheck disable=SC2086
(cd "$repo" && PYHOST_TEST_MPMS="$mpm" timeout "${PYHOST_MATRIX_TIMEOUT:-1800}" \
    "$venv/bin/python" -m pytest tests -m core -q -rfE -p no:cacheprovider --durations=5 \
    --junitxml="$junit" ${PYHOST_MATRIX_PYTEST_ARGS:-}) || status=$?
read -r passed failed skipped < <("$venv/bin/python" - "$junit" <<'EOF' || echo "0 1 0"
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = n["failures"] + n["errors"]
print(n["tests"] - failed - n["skipped"], failed, n["skipped"])
EOF
)
rm -f "$junit"
result "$passed" "$failed" "$skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    echo "matrix $label: pytest exited $status ($passed passed, $failed failed)" >&2
    exit 1
fi
