"""bench/run.py --smoke: every benchmark setup starts and answers every
workload it serves, so the suite never rots. No thresholds: figures on a
shared CI machine mean nothing; bench/README.md says how to get real ones."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO, "bench", "run.py")
PEERS = os.environ.get("PYHOST_PEERS", "/opt/pyhost/peers")

# Setups that may be skipped, with the text their skip reason must hold:
# pyhost_daemon only while Apache rejects WSGIDaemonProcess (run.py asks
# Apache); once the module takes it, the daemon setup must run.
MAY_SKIP = {
    "pyhost_daemon": "rejects WSGIDaemonProcess",
}


def test_bench_smoke(tmp_path):
    if not os.path.exists(os.path.join(PEERS, "bin", "python")):
        pytest.fail("no peers venv at %s: run scripts/install-bench-peers.sh"
                    % PEERS)
    out = tmp_path / "bench.json"
    proc = subprocess.Popen(
        [sys.executable, RUN, "--smoke", "--peers", PEERS, "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        # SIGTERM lets run.py stop the servers it started; then give up.
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail("bench/run.py --smoke took over 7 minutes:\n%s" % stderr[-4000:])
    print(stdout)
    print(stderr[-4000:])
    assert proc.returncode == 0, "bench/run.py --smoke failed"
    report = json.loads(out.read_text())

    unexpected = {n: why for n, why in report["skipped"].items()
                  if MAY_SKIP.get(n, "\0") not in why}
    assert not unexpected, "setups skipped: %s" % unexpected

    by_setup = {}
    for row in report["results"]:
        by_setup.setdefault(row["setup"], []).append(row)
    for name in report["setups"]:
        rows = by_setup.get(name)
        assert rows, "%s produced no figures" % name
        for row in rows:
            assert row["rps"] > 0, "%s gave no req/s for %s/%s" % (
                name, row["workload"], row["mode"])
            assert row["errors"] == 0, "%s: %d errors on %s/%s" % (
                name, row["errors"], row["workload"], row["mode"])
        assert report["rss"][name]["peak_kb_max"] > 0
    # Every Python setup ran every workload.
    workloads = {"hello", "flask", "64k", "file", "post", "stream"}
    for name in report["setups"]:
        if name not in ("c", "static"):
            assert {r["workload"] for r in by_setup[name]} == workloads, name
