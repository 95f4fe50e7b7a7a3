"""bench/run.py --smoke: every benchmark setup (WSGI and ASGI) starts and
answers every workload it serves without an error, so the suite never rots. No thresholds: figures on a
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
            # a count, not only a rate: wrk's or ws_echo.py's own total
            assert row["requests"] > 0, "%s did no %s/%s requests" % (
                name, row["workload"], row["mode"])
        assert report["rss"][name]["peak_kb_max"] > 0
    # Every Python setup ran every workload of its interface, and every
    # ASGI setup (issue 13) ran, not only the WSGI ones.
    wsgi = {"hello", "flask", "64k", "file", "post", "stream"}
    asgi = {"asgi_hello", "fastapi", "asgi_stream", "ws_echo"}
    asgi_setups = {"pyhost_asgi", "uvicorn", "granian", "hypercorn",
                   "uvicorn_proxy"}
    assert asgi_setups <= set(report["setups"]), report["setups"]
    for name in report["setups"]:
        done = {r["workload"] for r in by_setup[name]}
        if name == "c":
            assert done == {"hello", "asgi_hello"}, done
        elif name in asgi_setups:
            assert done == asgi, (name, done)
        elif name != "static":
            assert done == wsgi, (name, done)
    # The growth check ran on pyhost's ASGI side too, with its RSS.
    leak = report["leaks"]["pyhost_asgi"]
    assert leak["workload"] == "asgi_hello" and leak["requests"] > 0, leak
    assert leak["rss_before_kb"] > 0 and leak["rss_after_kb"] > 0, leak
