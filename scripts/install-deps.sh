#!/usr/bin/env bash
# System packages pyhost needs to build, test and benchmark, on Debian/Ubuntu.
# Idempotent: does nothing (not even apt-get update) when all are installed.
# Callers: .ci/run and docker/Dockerfile.
#   --test     also what only the test suite needs (tests/test_docker.py runs
#              its own dockerd and builds the base image with debootstrap;
#              scripts/fuzz.sh builds with clang and libFuzzer;
#              tests/test_http2.py drives mod_http2 with nghttp2-client's
#              h2load, and curl, openssl; tests/test_metrics.py scrapes with
#              a real Prometheus server, tests/test_top.py drives
#              `pyhost top` in tmux); CI and the README's test command
#              pass it, the Dockerfile does not.
#   --runtime  only what a venv built elsewhere needs to serve: the Dockerfile's
#              final stage, which copies the venv from its build stage.
#   --matrix   also what scripts/matrix.sh needs: patchelf (scripts/host-pythons.sh),
#              debootstrap (the sid root), and the headers CPython's build
#              wants (scripts/build-python-ft.sh). Combines with --test.
set -euo pipefail

py="${PYHOST_PY:-python3.11}"
# zlib1g-dev: module/websocket.c (permessage-deflate) links zlib.
packages=(apache2 apache2-dev "$py-dev" "$py-venv" curl wrk build-essential zlib1g-dev)
for opt in "$@"; do
    case "$opt" in
        # clang + libclang-rt-14-dev: libFuzzer and the sanitizer runtimes
        # for scripts/fuzz.sh and tests/test_fuzz_corpus.py;
        # libapache2-mod-wsgi-py3: tests/test_dropin.py loads both modules.
        --test) packages+=(docker.io docker-compose debootstrap nghttp2-client openssl
                           clang libclang-rt-14-dev libapache2-mod-wsgi-py3
                           prometheus tmux) ;;
        --matrix) packages+=(patchelf debootstrap xz-utils pkg-config libssl-dev zlib1g-dev
                             libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev
                             libexpat1-dev uuid-dev libgdbm-dev libncurses-dev) ;;
        # lib$py: the shared libpython mod_pyhost is linked to; curl: health checks.
        --runtime) packages=(apache2 "$py" "lib$py" curl) ;;
        *) echo "usage: $0 [--test] [--matrix] | --runtime" >&2; exit 2 ;;
    esac
done
# debootstrap may be asked for twice.
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | awk '!seen[$0]++')

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all installed: ${packages[*]}"
    exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
