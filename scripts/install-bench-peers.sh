#!/usr/bin/env bash
# The peers bench/run.py compares pyhost with (mod_wsgi 6.x, gunicorn,
# uWSGI, Flask; for ASGI uvicorn with uvloop + httptools, granian,
# hypercorn, FastAPI, and the websockets library for uvicorn's WebSockets),
# in their own venv made from the same system Python as
# pyhost's venv, so every setup runs the same interpreter. Idempotent: what
# is installed already is left alone. Callers: .ci/run, README.
#
# No wheel cache for mod_wsgi and uWSGI: they compile against the Python and
# Apache found now, and a cached wheel may be linked to another Python. The
# ASGI peers are checked by import, so a second run installs nothing. uvloop
# is in the peers too: pyhost's ASGI loop (ASGIEventLoop auto) takes it when
# the Python home has it, as uvicorn does, so both run on the same loop.
set -euo pipefail

peers="${PYHOST_PEERS:-/opt/pyhost/peers}"
python="/usr/bin/${PYHOST_PY:-python3.11}"

. "$(dirname "${BASH_SOURCE[0]}")/venv-lib.sh"
ensure_venv install-bench-peers "$peers" "$python"

pip=("$peers/bin/python" -m pip install --no-cache-dir --quiet)
need=()
"$peers/bin/python" -c 'import mod_wsgi.server' 2>/dev/null || need+=("mod-wsgi>=6,<7")
"$peers/bin/python" -c 'import gunicorn' 2>/dev/null || need+=(gunicorn)
"$peers/bin/python" -c 'import flask' 2>/dev/null || need+=(flask)
# ASGI peers (bench/run.py's asgi_* setups): one import each, by module name.
"$peers/bin/python" -c 'import uvicorn' 2>/dev/null || need+=(uvicorn)
"$peers/bin/python" -c 'import uvloop' 2>/dev/null || need+=(uvloop)
"$peers/bin/python" -c 'import httptools' 2>/dev/null || need+=(httptools)
"$peers/bin/python" -c 'import websockets' 2>/dev/null || need+=(websockets)
"$peers/bin/python" -c 'import granian' 2>/dev/null || need+=(granian)
"$peers/bin/python" -c 'import hypercorn' 2>/dev/null || need+=(hypercorn)
"$peers/bin/python" -c 'import fastapi, pydantic' 2>/dev/null || need+=(fastapi)
if [ ${#need[@]} -gt 0 ]; then
    echo "install-bench-peers: installing ${need[*]}"
    "${pip[@]}" "${need[@]}"
fi
# uWSGI compiles from source (about a minute); if it cannot build here the
# bench skips it and says so, so its failure does not fail the install.
if [ ! -x "$peers/bin/uwsgi" ]; then
    echo "install-bench-peers: building uwsgi"
    "${pip[@]}" uwsgi || echo "install-bench-peers: uwsgi did not build; bench/run.py will skip it" >&2
fi
chmod -R a+rX "$peers"
echo "install-bench-peers: ready: $peers"
