#!/usr/bin/env bash
# The Python version matrix: build pyhost against every supported Python and
# run the core test subset (pytest -m core, one MPM) with each.
#
#   scripts/matrix.sh [--prepare] [LABEL ...]   default: all of
#     3.9 3.10 3.11 3.12 3.13   pyenv's, copied out of /root (scripts/host-pythons.sh)
#     debian-3.11               /usr/bin/python3.11, the default venv's Python
#     ft                        free-threaded CPython built from Debian's source
#                               (scripts/build-python-ft.sh)
#     sid-3.14 sid-3.15         Debian sid's python3.14 / python3.15, in a
#                               debootstrapped sid root (scripts/sid-root.sh)
#
# --prepare only makes the Pythons (and the sid root tarball) and exits, so
# .ci/run can do that while the full suite runs. PYHOST_MATRIX_JOBS: cells
# run side by side (default 2).
# Prints the time of each preparation step, one line per Python, and totals;
# exits non-zero if any Python fails (build, a failed test, or no test run).
# Host venvs live in $PYHOST_MATRIX_DIR (default /opt/pyhost/matrix) and are
# reused; the sid root is fresh every run. Needs root and
# scripts/install-deps.sh --matrix.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
dir="${PYHOST_MATRIX_DIR:-/opt/pyhost/matrix}"
pythons="${PYHOST_PYTHONS:-/opt/pyhost/pythons}"
all=(3.9 3.10 3.11 3.12 3.13 debian-3.11 ft sid-3.14 sid-3.15)
prepare_only=0
if [ "${1:-}" = "--prepare" ]; then prepare_only=1; shift; fi
labels=("$@")
[ ${#labels[@]} -gt 0 ] || labels=("${all[@]}")
t_start=$SECONDS

want() { local l; for l in "${labels[@]}"; do [ "$l" = "$1" ] && return 0; done; return 1; }

timings=()
step() {  # NAME CMD...: run a preparation step, record its time
    local name="$1" t0=$SECONDS rc=0
    shift
    echo "== matrix: $name"
    "$@" || rc=$?
    timings+=("$name $((SECONDS - t0))s$([ $rc -eq 0 ] || echo " (FAILED, exit $rc)")")
    return $rc
}

declare -A result
ok=1
failed_prep=()
record() {  # LABEL LOGFILE RC: take the matrix-result line from the log
    local label="$1" log="$2" rc="$3" line
    line="$(grep "^matrix-result: $label " "$log" | tail -n 1)"
    if [ -z "$line" ]; then
        line="matrix-result: $label ? 0 1 0 0"
        rc=1
    fi
    result[$label]="$line"
    [ "$rc" -eq 0 ] || ok=0
}

mkdir -p "$dir"
chmod a+rx "$dir" "$(dirname "$dir")"
logs="$(mktemp -d "${TMPDIR:-/tmp}/pyhost-matrix.XXXXXX")"

# -- preparation ----------------------------------------------------------
host=()
for l in 3.9 3.10 3.11 3.12 3.13; do want "$l" && host+=("$l"); done
if [ ${#host[@]} -gt 0 ]; then
    step "host-pythons (${host[*]})" bash "$here/host-pythons.sh" "${host[@]}" || failed_prep+=(host-pythons)
fi
if want ft; then
    step "build-python-ft" bash "$here/build-python-ft.sh" || failed_prep+=(ft)
fi
if want sid-3.14 || want sid-3.15; then
    step "sid-root build" bash "$here/sid-root.sh" build || failed_prep+=(sid)
fi

# -- the cells, PYHOST_MATRIX_JOBS at a time (default 2) -------------------
# A cell is mostly waiting on Apache starting, stopping and answering, so two
# side by side finish in little more than the time of one, even on 2 cores.
# Each cell builds from its own copy of the checkout (matrix-one.sh) into its
# own venv; the tests use ephemeral ports and their own temporary dirs. A
# cell's output goes to its log, printed whole when it ends.
max_jobs="${PYHOST_MATRIX_JOBS:-2}"
declare -A job_labels job_t0
jobs_running=0
finish_one() {  # wait for any cell to end, print its log, record its result
    local pid rc=0 name l
    wait -n -p pid || rc=$?
    [ -n "${pid:-}" ] || return 0
    name="${job_labels[$pid]}"
    unset "job_labels[$pid]"
    jobs_running=$((jobs_running - 1))
    echo "== matrix: $name ended (exit $rc, $((SECONDS - job_t0[$name]))s)"
    cat "$logs/$name.log"
    if [ "$name" = sid ]; then
        for l in "${sid[@]}"; do record "$l" "$logs/sid.log" "$rc"; done
        timings+=("sid root + cells $((SECONDS - job_t0[sid]))s")
    else
        record "$name" "$logs/$name.log" "$rc"
    fi
}
launch() {  # NAME CMD...: run CMD as a cell in the background
    local name="$1"
    shift
    while [ "$jobs_running" -ge "$max_jobs" ]; do finish_one; done
    echo "== matrix: $name started"
    job_t0[$name]=$SECONDS
    "$@" >"$logs/$name.log" 2>&1 &
    job_labels[$!]="$name"
    jobs_running=$((jobs_running + 1))
}

sid=()
for l in sid-3.14 sid-3.15; do want "$l" && sid+=("$l"); done
if [ "$prepare_only" -eq 0 ]; then
    # The sid cells share one fresh root and run one after the other in it:
    # the longest job, so it starts first.
    if [ ${#sid[@]} -gt 0 ]; then
        inner='status=0; for l in "$@"; do py=/usr/bin/python${l#sid-}; bash scripts/matrix-one.sh "$l" "$py" "/opt/pyhost/matrix/venv-$l" || status=1; done; exit $status'
        launch sid bash "$here/sid-root.sh" run "$repo" -- bash -c "$inner" sh "${sid[@]}"
    fi
    for l in "${host[@]}"; do
        launch "$l" bash "$here/matrix-one.sh" "$l" "$pythons/$l/bin/python$l" "$dir/venv-$l"
    done
    if want debian-3.11; then
        launch debian-3.11 bash "$here/matrix-one.sh" debian-3.11 /usr/bin/python3.11 "$dir/venv-debian-3.11"
    fi
    if want ft; then
        ft_python="$(ls "$pythons"/ft/bin/python3.*t 2>/dev/null | grep -E 'python3\.[0-9]+t$' | head -n 1)"
        launch ft bash "$here/matrix-one.sh" ft "${ft_python:-$pythons/ft/bin/python3t-missing}" "$dir/venv-ft"
    fi
    while [ "$jobs_running" -gt 0 ]; do finish_one; done
else
    echo "== matrix: --prepare: preparation only"
    for t in "${timings[@]}"; do echo "   prep: $t"; done
    [ ${#failed_prep[@]} -eq 0 ] || { echo "matrix: preparation failed: ${failed_prep[*]}" >&2; exit 1; }
    exit 0
fi

# -- summary --------------------------------------------------------------
echo
echo "== matrix summary (core subset: pytest -m core, MPM ${PYHOST_MATRIX_MPM:-event})"
for t in "${timings[@]}"; do echo "   prep: $t"; done
tp=0 tf=0 ts=0
for l in "${labels[@]}"; do
    line="${result[$l]:-matrix-result: $l ? 0 1 0 0}"
    read -r _ label version p f s secs <<< "$line"
    tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
    state=ok; { [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; } && { state=FAILED; ok=0; }
    printf '   %-12s %-9s %-7s %4d passed %3d failed %3d skipped %5ss\n' "$label" "$version" "$state" "$p" "$f" "$s" "$secs"
done
echo "   total $((SECONDS - t_start))s; logs in $logs"
[ ${#failed_prep[@]} -eq 0 ] || { echo "matrix: preparation failed: ${failed_prep[*]}" >&2; ok=0; }
echo "matrix: $tp passed, $tf failed, $ts skipped"
[ "$ok" -eq 1 ]
