"""The fuzz targets (tests/fuzz/) build, and every committed corpus input
runs clean under ASan + UBSan: a fault a fuzzer once found, or any seed,
shows up here in seconds, not only in CI's timed fuzzing (scripts/fuzz.sh).
The relay seeds also keep their verdict: a well-formed frame the module
builds is accepted, each malformed one is refused."""

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ_SH = os.path.join(REPO, "scripts", "fuzz.sh")
CORPUS = os.path.join(REPO, "tests", "fuzz", "corpus")
TARGETS = ["fuzz_relay_request", "fuzz_relay_response", "fuzz_input", "fuzz_websocket"]

pytestmark = pytest.mark.skipif(
    shutil.which("clang") is None,
    reason="clang (with libFuzzer) is not installed: scripts/install-deps.sh --test")


def _env(out):
    env = dict(os.environ, FUZZ_OUT=str(out), PYTHON=sys.executable)
    env.pop("FUZZ_TARGETS", None)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz")
    proc = subprocess.run(["bash", FUZZ_SH, "--build"], cwd=REPO, env=_env(out),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, "building the fuzz targets failed:\n%s%s" % (
        proc.stdout, proc.stderr[-6000:])
    return out


def test_corpus_replays_clean(built):
    # fuzz.sh --replay rebuilds (seconds) and runs each corpus once; on a
    # report it prints the sanitizer's words and the input's name.
    proc = subprocess.run(["bash", FUZZ_SH, "--replay"], cwd=REPO,
                          env=_env(built), capture_output=True, text=True,
                          timeout=600)
    print(proc.stdout)
    assert proc.returncode == 0, "a corpus input fails:\n%s" % proc.stderr[-8000:]
    for target in TARGETS:
        log = open(os.path.join(built, target, "log")).read()
        n = len(os.listdir(os.path.join(CORPUS, target)))
        ran = len(re.findall(r"^Executed ", log, re.M))
        assert n and ran == n, "%s ran %d of its %d corpus files:\n%s" % (
            target, ran, n, log[-2000:])


@pytest.mark.parametrize("target,good", [
    ("fuzz_relay_request", "accepted"),
    ("fuzz_relay_response", "complete"),
])
def test_relay_seed_verdicts(built, target, good):
    d = os.path.join(CORPUS, target)
    seeds = sorted(f for f in os.listdir(d) if f.startswith("seed-"))
    assert seeds
    paths = [os.path.join(d, f) for f in seeds]
    proc = subprocess.run([os.path.join(built, "bin", target)] + paths,
                          env=dict(os.environ, FUZZ_TRACE="1"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # libFuzzer prints "Running: <file>" before each; the target its verdict.
    verdicts = dict(re.findall(r"Running: \S*/(seed-\S+)\nverdict: (\w+)",
                               proc.stderr))
    assert sorted(verdicts) == seeds, proc.stderr[-4000:]
    wrong = {name: v for name, v in verdicts.items()
             if (v == good) == name.startswith("seed-bad-")}
    assert not wrong, "seeds with the wrong verdict (seed-bad-* must not be %s): %r" % (
        good, wrong)


def test_corpus_stays_small():
    total = sum(os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(CORPUS) for f in files)
    assert total < 1 << 20, "tests/fuzz/corpus is %d bytes; keep it under 1 MiB " \
        "(minimize with libFuzzer's -merge=1)" % total
