#!/usr/bin/env bash
# The sanitizer run: build mod_pyhost with AddressSanitizer and UBSan into a
# venv of its own, run the core tests (embedded and daemon mode, every MPM)
# with the sanitizer runtimes preloaded into Apache, and fail if any process
# (Apache, its children, daemon processes) reported anything.
#
#   scripts/sanitize.sh [PYTEST_ARGS...]   extra args go to both pytest runs
#
# Environment:
#   PYHOST_ASAN_VENV   the sanitizer venv (default /opt/pyhost/venv-asan)
#   PYHOST_SANITIZE_CC the compiler: clang (default; needs clang and
#                      libclang-rt-14-dev) or gcc. gcc 12's ASan runtime
#                      reports a stack-buffer-underflow in sigaltstack when
#                      a thread ends through apr_thread_exit (daemon.c's
#                      threads do); clang 14's does not.
#   PYHOST_TEST_MPMS   MPMs to run (default all three, as in the suite)
#   PYHOST_SANITIZE_LOGS  where the sanitizer logs go (default a new
#                      /tmp/pyhost-sanitize.XXXXXX); kept after the run
#   PYHOST_SANITIZE_TIMEOUT  seconds each pytest run may take (default 1800)
#
# Tests: `pytest -m core` (which holds the daemon tests marked core), then the
# rest of tests/test_daemon.py and test_daemon_lifecycle.py (daemon mode in
# full) and test_malformed.py (framing and body edge cases). Sanitizer
# reports land in log files (one per process) rather than the error log,
# because Apache's children and the daemons have no terminal and a report must
# not be lost with a test's workspace; every report there fails the run and is
# printed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${PYHOST_ASAN_VENV:-/opt/pyhost/venv-asan}"
timeout_s="${PYHOST_SANITIZE_TIMEOUT:-1800}"
t_start=$SECONDS

say() { echo "sanitize: $*"; }
die() { echo "sanitize: $*" >&2; exit 1; }

# -- build ---------------------------------------------------------------------
# clang by default: its UBSan also checks the arguments of builtins such as
# memcpy (nonnull) and pointer arithmetic on NULL, which gcc 12's does not.
# PYHOST_SANITIZE_CC=gcc builds with gcc instead. setup.py's compiler comes
# from setuptools, which takes $CC, appends $CFLAGS to every compile and link
# line and $LDFLAGS to the link line. -O1 keeps stacks readable; -g gives
# them file:line.
cc="${PYHOST_SANITIZE_CC:-clang}"
command -v "$cc" >/dev/null || die "$cc not found"
san_flags="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g"
case "$cc" in
    clang*)
        # clang links no sanitizer runtime into a shared object unless told;
        # its ASan runtime carries UBSan's handlers too.
        link_flags="-fsanitize=address,undefined -shared-libasan"
        runtimes=("$("$cc" -print-file-name=libclang_rt.asan-x86_64.so)") ;;
    *)
        link_flags="-fsanitize=address,undefined"
        runtimes=("$("$cc" -print-file-name=libasan.so)" "$("$cc" -print-file-name=libubsan.so)") ;;
esac
say "building mod_pyhost with $cc $san_flags into $venv"
build_log="${TMPDIR:-/tmp}/pyhost-sanitize-build.log"
CC="$cc" CFLAGS="$san_flags" LDFLAGS="$link_flags" PYHOST_VENV="$venv" \
    bash "$here/dev-env.sh" >"$build_log" 2>&1 \
    || { cat "$build_log" >&2; die "build failed"; }
so="$("$venv/bin/pyhost" module-location)" || die "no module in $venv"
# A build that ignored the flags would pass every test and prove nothing:
# an instrumented module calls into both runtimes.
syms="$(nm -D --undefined-only "$so")" || die "nm $so failed"
grep -q '__asan_' <<<"$syms" || die "$so has no ASan instrumentation: the flags did not reach the build"
grep -q '__ubsan_handle_' <<<"$syms" || die "$so has no UBSan instrumentation: the flags did not reach the build"

# Apache itself is not instrumented, so the runtime must be preloaded: it has
# to come first in the process's library list to replace malloc before
# anything allocates (else the module refuses to load).
preload=""
for lib in "${runtimes[@]}"; do
    lib="$(readlink -f "$lib")"
    [ -f "$lib" ] || die "sanitizer runtime $lib not found (clang: libclang-rt-dev)"
    preload="${preload:+$preload:}$lib"
done

# -- logs ----------------------------------------------------------------------
logs="${PYHOST_SANITIZE_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/pyhost-sanitize.XXXXXX")}"
mkdir -p "$logs"
rm -f "$logs"/asan.* "$logs"/ubsan.*
chmod 1777 "$logs"  # Apache's children and the daemons run as www-data
chmod a+x "$(dirname "$logs")"

# detect_leaks=0: Python and Apache leave memory to the exit by design
#   (scripts/valgrind.sh measures leaks per request instead).
# allocator_may_return_null=1: a huge malloc returns NULL as it does without
#   ASan (CPython then raises MemoryError) instead of aborting the process;
#   some tests ask for absurd sizes on purpose.
# handle_segv/abort: a crash gets a stack trace (and counts as a report).
# halt_on_error=1: after a memory error the process is not worth trusting
#   (and gcc's ASan cannot continue anyway); UBSan reports and goes on
#   (halt_on_error=0), so one run shows every UB site; the run fails either way.
asan_opts="detect_leaks=0:allocator_may_return_null=1:handle_segv=1:handle_abort=1"
asan_opts+=":halt_on_error=1:log_path=$logs/asan"
ubsan_opts="print_stacktrace=1:halt_on_error=0:report_error_type=1:log_path=$logs/ubsan"

# -- canary --------------------------------------------------------------------
# Prove the pipeline catches a report: a process as Apache's children run
# (www-data when we are root) crashes under the preloaded runtime, and its
# report must land in $logs.
as_user=()
if [ "$(id -u)" -eq 0 ] && id www-data >/dev/null 2>&1; then
    as_user=(runuser -u www-data --)
fi
"${as_user[@]}" env LD_PRELOAD="$preload" ASAN_OPTIONS="$asan_opts" \
    "$venv/bin/python" -c 'import ctypes; ctypes.string_at(0)' >/dev/null 2>&1
if ! grep -qs "ERROR: AddressSanitizer: SEGV" "$logs"/asan.*; then
    die "canary: a deliberate crash under ASan left no report in $logs (is it writable by the children's user?)"
fi
rm -f "$logs"/asan.*
say "canary: reports reach $logs"

# -- tests ---------------------------------------------------------------------
# Only Apache gets the runtime (tests/harness.py's PYHOST_TEST_APACHE_ENV_*
# passthrough): pytest and the clients it runs stay uninstrumented.
# PYTHONMALLOC=malloc sends CPython's small objects through malloc too, so
# ASan sees a module's misuse of Python memory, not only of its own.
export PYHOST_TEST_APACHE_ENV_LD_PRELOAD="$preload"
export PYHOST_TEST_APACHE_ENV_ASAN_OPTIONS="$asan_opts"
export PYHOST_TEST_APACHE_ENV_UBSAN_OPTIONS="$ubsan_opts"
export PYHOST_TEST_APACHE_ENV_PYTHONMALLOC=malloc

cd "$repo"
pytest=("$venv/bin/python" -m pytest -q -p no:cacheprovider)
# SIGINT at the time limit: pytest then stops its Apaches (fixture teardown)
# as it would for Ctrl-C; SIGTERM would leave them running.
bounded() { timeout -s INT -k 60 "$timeout_s" "$@"; }
rc_core=0
rc_more=0
say "pytest -m core (MPMs: ${PYHOST_TEST_MPMS:-event,worker,prefork})"
# The parent-RSS test measures ASan's quarantine and shadow memory, not pyhost.
bounded "${pytest[@]}" -m core tests \
    --deselect "tests/test_embedding.py::test_python_runs_in_children_only_and_restarts_do_not_grow_the_parent" \
    "$@" || rc_core=$?
# Daemon mode beyond the core mark (processes, restarts, generations) and the
# malformed-request corpus (the body and framing paths, embedded and daemon).
# The deliberate segfault would be a report by design (ASan catches the SEGV
# the test provokes, and the daemon then exits 1, not by signal 11 as the
# test expects).
more=(tests/test_daemon.py tests/test_daemon_lifecycle.py tests/test_malformed.py)
say "pytest ${more[*]} (the tests not marked core)"
bounded "${pytest[@]}" -m "not core" "${more[@]}" \
    --deselect tests/test_daemon.py::test_segfault_in_app_costs_one_request "$@" || rc_more=$?

# -- reports -------------------------------------------------------------------
reports=()
for f in "$logs"/asan.* "$logs"/ubsan.*; do
    [ -e "$f" ] || continue
    if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: AddressSanitizer" "$f"; then
        reports+=("$f")
    fi
done
status=0
if [ ${#reports[@]} -gt 0 ]; then
    for f in "${reports[@]}"; do
        echo "===== $f"
        cat "$f"
    done
    say "${#reports[@]} sanitizer report(s), kept in $logs" >&2
    status=1
fi
for pair in "core:$rc_core" "daemon and malformed:$rc_more"; do
    rc="${pair#*:}"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        say "pytest (${pair%%:*}) timed out after ${timeout_s}s" >&2
        status=1
    elif [ "$rc" -eq 5 ]; then
        say "pytest (${pair%%:*}) collected no tests" >&2
        status=1
    elif [ "$rc" -ne 0 ]; then
        say "pytest (${pair%%:*}) failed (exit $rc)" >&2
        status=1
    fi
done
say "$((SECONDS - t_start))s; logs in $logs; $([ $status -eq 0 ] && echo clean || echo FAILED)"
exit $status
