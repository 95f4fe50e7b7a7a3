#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz/ (clang, ASan + UBSan) and
# runs each for a bounded time on its committed corpus; fails on any crash,
# leak or UB report and prints the input that reproduces it.
#   scripts/fuzz.sh [SECONDS]      fuzz each target SECONDS (default 60)
#   scripts/fuzz.sh --replay       only run each committed corpus once
#   scripts/fuzz.sh --build        only build
# Environment: FUZZ_TARGETS="fuzz_relay_request ..." (default: all),
# FUZZ_OUT (build dir, default build/fuzz), PYTHON (the Python whose
# libpython fuzz_input links; default the CI venv's, else python3),
# FUZZ_MERGE=1 (merge what a run found into the committed corpus).
# New inputs a run finds stay in $FUZZ_OUT/<target>/new, not in git.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=fuzz
seconds=60
case "${1:-}" in
    --replay) mode=replay ;;
    --build) mode=build ;;
    "") ;;
    *[!0-9]*) echo "usage: $0 [SECONDS | --replay | --build]" >&2; exit 2 ;;
    *) seconds=$1 ;;
esac

targets=(${FUZZ_TARGETS:-fuzz_relay_request fuzz_relay_response fuzz_input fuzz_websocket})
out="${FUZZ_OUT:-build/fuzz}"
venv="${PYHOST_VENV:-/opt/pyhost/venv}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x "$venv/bin/python" ]; then python="$venv/bin/python"; else python=python3; fi
fi

for tool in clang apxs apr-1-config apu-1-config; do
    if ! command -v "$tool" >/dev/null; then
        echo "fuzz: $tool not found (scripts/install-deps.sh --test installs it)" >&2
        exit 2
    fi
done

# Python's include dir and libpython, as setup.py finds them.
mapfile -t py < <("$python" - <<'EOF'
import sys, sysconfig
v = sysconfig.get_config_var
print(sysconfig.get_paths()["include"])
print(v("LIBDIR"))
print(v("LDVERSION") or v("VERSION"))
print(sys.base_prefix)
print(v("Py_ENABLE_SHARED") or 0)
EOF
)
if [ "${py[4]}" != 1 ]; then
    echo "fuzz: $python has no shared libpython; set PYTHON to one that has" >&2
    exit 2
fi

mkdir -p "$out/bin"
# -O1 and frame pointers: readable stacks; UBSan reports abort, so they
# count as crashes. stddef.h first: APR's ring macros (brigades) then use
# offsetof instead of a member access through NULL, which UBSan reports.
cflags=(-g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -include stddef.h -Wall -Wextra -Werror
        -Imodule -I"$(apxs -q INCLUDEDIR)" $(apr-1-config --cppflags --includes)
        -I"${py[0]}" "-DPYH_PYTHON_HOME=\"${py[3]}\"")
apr=($(apr-1-config --link-ld --libs))
build() {
    local t=$1
    case "$t" in
        fuzz_relay_request|fuzz_relay_response)
            clang "${cflags[@]}" -o "$out/bin/$t" "tests/fuzz/$t.c" module/wire.c "${apr[@]}" ;;
        fuzz_input)
            clang "${cflags[@]}" -o "$out/bin/$t" tests/fuzz/fuzz_input.c module/input.c \
                $(apu-1-config --link-ld) "${apr[@]}" \
                -L"${py[1]}" -lpython"${py[2]}" -Wl,-rpath,"${py[1]}" ;;
        fuzz_websocket)
            clang "${cflags[@]}" -o "$out/bin/$t" tests/fuzz/fuzz_websocket.c module/websocket.c -lz ;;
        *) echo "fuzz: unknown target $t" >&2; return 2 ;;
    esac
}
for t in "${targets[@]}"; do
    echo "fuzz: building $t"
    build "$t"
done
[ "$mode" = build ] && exit 0

# Python's own allocations at start are reachable, not leaks; a leak
# during an input is. Each crash leaves crash-*/leak-*/oom-* in $out/<target>.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in "${targets[@]}"; do
    corpus="tests/fuzz/corpus/$t"
    work="$out/$t"
    mkdir -p "$work/new"
    rm -f "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-*
    if [ "$mode" = replay ]; then
        echo "fuzz: replaying $corpus"
        # Files, not the directory: libFuzzer then names each one it runs.
        args=("$corpus"/*)
    else
        echo "fuzz: $t for ${seconds}s"
        args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
              -max_len=65536 -print_final_stats=1 "$work/new" "$corpus")
    fi
    rc=0
    "$out/bin/$t" -artifact_prefix="$work/" "${args[@]}" >"$work/log" 2>&1 || rc=$?
    if [ "$mode" = replay ]; then
        echo "fuzz: $t ran $(grep -c '^Executed ' "$work/log") of ${#args[@]} inputs"
    else
        grep -E "^(#[0-9]+[[:space:]]+DONE|stat::|INFO: (Loaded|seed corpus))" "$work/log" || true
    fi
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "fuzz: $t FAILED (exit $rc); its report:" >&2
        if [ "$mode" = replay ]; then
            echo "fuzz: the failing corpus input: $(grep '^Running: ' "$work/log" | tail -1 | cut -d' ' -f2)" >&2
        fi
        grep -E -A40 "^==[0-9]+==ERROR|runtime error|^fuzz_|^[A-Za-z]*(Error|Exception): |Test unit written|SUMMARY" "$work/log" | head -80 >&2 || tail -40 "$work/log" >&2
        for a in "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-*; do
            [ -e "$a" ] || continue
            echo "fuzz: reproducer $a ($(stat -c %s "$a") bytes, base64):" >&2
            base64 -w0 "$a" >&2; echo >&2
            echo "fuzz: rerun with: $out/bin/$t $a" >&2
        done
    elif [ "$mode" = fuzz ] && [ "${FUZZ_MERGE:-0}" = 1 ]; then
        "$out/bin/$t" -merge=1 "$corpus" "$work/new" >>"$work/log" 2>&1
    fi
done
exit "$status"
