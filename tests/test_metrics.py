"""Observability (issue 17): the shared-memory counters every Apache child
and daemon process adds to, and the Prometheus endpoint (SetHandler
pyhost-metrics) that adds them up. Each test runs a real Apache with the
real module, sends a known set of requests, and reads the endpoint with the
official Prometheus text parser; one test has a real Prometheus server
scrape it and asks its query API."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import harness
from harness import wait_for
from test_daemon import APP, daemon_pids, no_crash

METRICS_LOC = "<Location /metrics>\n    SetHandler pyhost-metrics\n</Location>\n"


def conf(opts="processes=2 threads=2", extra=""):
    return (
        "WSGIDaemonProcess grp display-name=%%{GROUP} %s\n"
        "WSGIScriptAlias /d %s process-group=grp\n"
        "WSGIScriptAlias /e %s\n" % (opts, APP, APP)
    ) + METRICS_LOC + extra


def start(short_server, mpm, opts="processes=2 threads=2", extra="", name="metrics"):
    srv = short_server(name, mpm=mpm, extra=conf(opts, extra))
    srv.start()
    assert wait_for(lambda: len(daemon_pids(srv)) >= 1, timeout=15)
    return srv


def scrape(srv, accept=None):
    """{(name, frozenset(labels)): value} from the endpoint, through
    prometheus_client's parser (which raises on anything malformed)."""
    r = srv.get("/metrics", headers={"Accept": accept} if accept else None)
    assert r.status == 200, (r.status, r.body[:500])
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """The sum over every series of name whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def burst(srv, paths, threads=8):
    """Each path requested once, on its own connection, from `threads`
    client threads at a time; returns (path, status, pid for /info)."""
    results, lock = [], threading.Lock()
    todo = list(paths)

    def run():
        while True:
            with lock:
                if not todo:
                    return
                p = todo.pop()
            r = srv.get(p)
            pid = r.json()["pid"] if r.status == 200 and "/info" in p else None
            with lock:
                results.append((p, r.status, pid))

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert len(results) == len(paths)
    return results


def test_counts_are_exact_across_children_and_modes(short_server, mpm):
    srv = start(short_server, mpm)
    paths = (["/e/info?i=%d" % i for i in range(40)]
             + ["/e/sleep?t=0.2&i=%d" % i for i in range(16)]
             + ["/e/status?code=404&i=%d" % i for i in range(7)]
             + ["/e/status?code=503&i=%d" % i for i in range(3)]
             + ["/d/info?i=%d" % i for i in range(30)]
             + ["/d/status?code=302&i=%d" % i for i in range(5)])
    results = burst(srv, paths)
    assert all(st == int(p.split("code=")[1].split("&")[0]) if "code=" in p else st == 200
               for p, st, _ in results), results
    children = {pid for p, _, pid in results if p.startswith("/e/")}
    assert len(children) >= 2, "the burst reached one child only: %s" % children
    s = scrape(srv)
    assert val(s, "pyhost_requests_total", mount="/e", protocol="wsgi", status="2xx") == 56
    assert val(s, "pyhost_requests_total", mount="/e", protocol="wsgi", status="4xx") == 7
    assert val(s, "pyhost_requests_total", mount="/e", protocol="wsgi", status="5xx") == 3
    assert val(s, "pyhost_requests_total", mount="/d", protocol="wsgi", status="2xx") == 30
    assert val(s, "pyhost_requests_total", mount="/d", protocol="wsgi", status="3xx") == 5
    # the histogram agrees with the counters, and with the time the app took
    for mount, n, slow in (("/e", 66, 16), ("/d", 35, 0)):
        assert val(s, "pyhost_app_seconds_count", mount=mount) == n
        buckets = sorted((float(dict(ls)["le"]), v) for (name, ls), v in s.items()
                         if name == "pyhost_app_seconds_bucket" and dict(ls)["mount"] == mount)
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and counts[-1] == n, buckets
        assert val(s, "pyhost_app_seconds_bucket", mount=mount, le="0.1") <= n - slow
        assert val(s, "pyhost_app_seconds_sum", mount=mount) >= slow * 0.2
    assert val(s, "pyhost_app_seconds_sum", mount="/e") < 66 * 5
    # nothing is in flight once the burst is over; every live process is listed
    assert val(s, "pyhost_requests_in_flight") == 0
    assert total(s, "pyhost_threads", state="busy") == 0
    rss = [v for (n, ls), v in s.items() if n == "pyhost_process_resident_memory_bytes"]
    assert len(rss) >= 4 and all(v > 1 << 20 for v in rss), rss
    assert val(s, "pyhost_daemon_processes", group="grp") == 2
    # a second scrape adds nothing: the endpoint counts only pyhost's requests
    assert scrape(srv) == s or total(scrape(srv), "pyhost_requests_total") == 101
    no_crash(srv)
