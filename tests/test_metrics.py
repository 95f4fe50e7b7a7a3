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


def restarts(s, cause):
    return val(s, "pyhost_daemon_restarts_total", group="grp", cause=cause)


def test_daemon_restarts_are_counted_by_cause(short_server, mpm):
    srv = start(short_server, mpm, "processes=1 threads=2 maximum-requests=5 "
                "request-timeout=1")
    s = scrape(srv)
    assert total(s, "pyhost_daemon_restarts_total", group="grp") == 0
    # maximum-requests: 5 requests recycle the process, twice
    for i in range(10):
        r = srv.get("/d/info?i=%d" % i)
        assert r.status == 200
        if i in (4, 9):  # the recycled process is gone before the next one
            assert wait_for(lambda: restarts(scrape(srv), "maximum-requests")
                            == (i + 1) // 5, timeout=15), scrape(srv)
    # a kill
    assert wait_for(lambda: len(daemon_pids(srv)) == 1 and srv.get("/d/info").status == 200,
                    timeout=15)
    os.kill(daemon_pids(srv)[0], signal.SIGKILL)
    assert wait_for(lambda: restarts(scrape(srv), "signal") == 1, timeout=15), scrape(srv)
    # a request stuck in C (time.sleep) past request-timeout: 504 for it,
    # and the process recycles after twice the timeout
    assert wait_for(lambda: srv.get("/d/info").status == 200, timeout=15)
    r = srv.get("/d/sleep?t=6")
    assert r.status == 504
    assert wait_for(lambda: restarts(scrape(srv), "request-timeout") == 1,
                    timeout=15), scrape(srv)
    s = scrape(srv)
    assert val(s, "pyhost_daemon_request_timeouts_total", group="grp") == 1
    assert restarts(s, "maximum-requests") >= 2  # requests after the kill count too
    assert restarts(s, "exit") == 0 and restarts(s, "start-failure") == 0
    assert val(s, "pyhost_requests_total", mount="/d", protocol="wsgi", status="5xx") == 1


def test_counters_survive_a_graceful_restart(short_server, mpm):
    srv = start(short_server, mpm)
    burst(srv, ["/e/info?i=%d" % i for i in range(20)] + ["/d/info?i=%d" % i for i in range(10)])
    before = scrape(srv)
    assert val(before, "pyhost_requests_total", mount="/e", protocol="wsgi", status="2xx") == 20
    srv.graceful_restart()
    assert wait_for(lambda: len(daemon_pids(srv)) >= 1, timeout=15)
    burst(srv, ["/e/info?j=%d" % i for i in range(5)] + ["/d/info?j=%d" % i for i in range(3)])
    after = scrape(srv)
    assert val(after, "pyhost_requests_total", mount="/e", protocol="wsgi", status="2xx") == 25
    assert val(after, "pyhost_requests_total", mount="/d", protocol="wsgi", status="2xx") == 13
    assert val(after, "pyhost_app_seconds_count", mount="/e") == 25
    # the old generation's daemons were retired, not restarted
    assert total(after, "pyhost_daemon_restarts_total", group="grp") == 0
    no_crash(srv)


def test_openmetrics_when_asked(short_server):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
    srv = start(short_server, "event")
    assert srv.get("/e/info").status == 200
    r = srv.get("/metrics", headers={"Accept": "application/openmetrics-text; "
                                               "version=1.0.0,text/plain;q=0.5"})
    assert r.status == 200
    assert r.header("Content-Type").startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    fams = {f.name: f for f in om(r.text)}
    assert fams["pyhost_requests"].type == "counter"
    assert fams["pyhost_app_seconds"].type == "histogram"
    plain = srv.get("/metrics")
    assert plain.header("Content-Type").startswith("text/plain; version=0.0.4")


class Prometheus:
    """A real Prometheus server (Debian's package) scraping one target
    every second, with its own storage in the test workspace; stopped by
    its pid."""

    def __init__(self, workspace, target_port):
        self.dir = os.path.join(workspace.root, "prometheus-%d" % target_port)
        os.makedirs(self.dir, exist_ok=True)
        self.port = harness.free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: pyhost\n    metrics_path: /metrics\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % target_port)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [shutil.which("prometheus"), "--config.file=" + cfg,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                    timeout=5) as r:
            return r.read()

    def ready(self):
        try:
            return self.get("/-/ready") is not None
        except OSError:
            return False

    def query(self, q):
        body = json.loads(self.get("/api/v1/query?" + urllib.parse.urlencode({"query": q})))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def up(self):
        r = self.query("up")
        return bool(r) and r[0]["value"][1] == "1"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.mark.skipif(not shutil.which("prometheus"),
                    reason="needs Debian's prometheus package (install-deps.sh --test)")
def test_a_real_prometheus_scrapes_rates_and_restarts(short_server, workspace, mpm):
    srv = start(short_server, mpm)
    prom = Prometheus(workspace, srv.port)
    try:
        assert wait_for(prom.ready, timeout=30), open(prom.log.name).read()[-3000:]
        assert wait_for(prom.up, timeout=20), prom.query("up")
        # steady traffic for a few scrapes, and one daemon killed meanwhile
        deadline = time.time() + 6
        killed = False
        while time.time() < deadline:
            assert srv.get("/e/info").status == 200
            if not killed and time.time() > deadline - 4:
                os.kill(daemon_pids(srv)[0], signal.SIGKILL)
                killed = True
            time.sleep(0.02)

        def rate():
            r = prom.query('sum(rate(pyhost_requests_total{mount="/e"}[5s]))')
            return r and float(r[0]["value"][1]) > 0

        assert wait_for(rate, timeout=10), prom.query("pyhost_requests_total")

        def restarts_seen():
            r = prom.query('pyhost_daemon_restarts_total{group="grp",cause="signal"}')
            return r and float(r[0]["value"][1]) == 1

        assert wait_for(restarts_seen, timeout=10), \
            prom.query("pyhost_daemon_restarts_total")
        other = prom.query('sum(pyhost_daemon_restarts_total{cause!="signal"})')
        assert float(other[0]["value"][1]) == 0
    finally:
        prom.stop()


def test_server_status_has_a_pyhost_section(short_server, mpm):
    extra = ("LoadModule status_module %s/mod_status.so\n"
             "<Location /server-status>\n    SetHandler server-status\n</Location>\n"
             % harness.apache_modules_dir())
    if os.path.exists(os.path.join(harness.apache_modules_dir(), "mod_status.so")) is False:
        pytest.skip("no mod_status.so")
    srv = start(short_server, mpm, extra=extra)
    burst(srv, ["/e/info?i=%d" % i for i in range(6)] + ["/d/info?i=%d" % i for i in range(4)]
          + ["/e/status?code=500"])
    html = srv.get("/server-status").text
    assert "<h2>pyhost</h2>" in html and "11 requests, 1 answered 5xx" in html, html[-2000:]
    assert "<td>grp</td>" in html and "daemon/grp/1" in html
    auto = dict(line.split(": ", 1) for line in srv.get("/server-status?auto").text.splitlines()
                if ": " in line)
    assert auto["PyhostRequests"] == "11" and auto["Pyhost5xx"] == "1"
    assert auto["PyhostDaemonRestarts_grp"] == "0"
    assert "PyhostBusy_daemon/grp/0" in auto


def test_access_log_notes(short_server, workspace, token):
    log = os.path.join(workspace.root, "notes-%s.log" % token)
    extra = ('LogFormat "%%U %%{pyhost-app-time-us}n %%{pyhost-group}n '
             '%%{pyhost-interpreter}n %%{pyhost-process}n" pyhnotes\n'
             'CustomLog %s pyhnotes\n' % log)
    srv = start(short_server, "prefork", extra=extra)
    assert srv.get("/e/sleep?t=0.3").status == 200
    assert srv.get("/d/info").status == 200
    assert wait_for(lambda: os.path.exists(log) and "/d/info" in open(log).read())
    lines = [ln.split() for ln in open(log).read().splitlines()]
    e = next(ln for ln in lines if ln[0] == "/e/sleep")
    d = next(ln for ln in lines if ln[0] == "/d/info")
    assert 300000 <= int(e[1]) < 5000000 and e[2:4] == ["%{GLOBAL}", "%{GLOBAL}"]
    assert e[4].startswith("child/")
    assert int(d[1]) > 0 and d[2:] == ["grp", "%{GLOBAL}", "daemon/grp"]


def test_metrics_off_counts_nothing(short_server):
    srv = start(short_server, "event", extra="PyhostMetrics Off\n")
    burst(srv, ["/e/info?i=%d" % i for i in range(5)] + ["/d/info"])
    s = scrape(srv)
    assert total(s, "pyhost_requests_total") == 0
    assert val(s, "pyhost_app_seconds_count", mount="/e") == 0


def test_asgi_requests_are_counted_as_asgi(short_server, mpm):
    srv = start(short_server, mpm, extra="ASGIScriptAlias /a @APPS@/asgi_http.py\n")
    burst(srv, ["/a/hello?i=%d" % i for i in range(9)] + ["/e/info"])
    s = scrape(srv)
    assert val(s, "pyhost_requests_total", mount="/a", protocol="asgi", status="2xx") == 9
    assert val(s, "pyhost_requests_total", mount="/a", protocol="wsgi", status="2xx") == 0
    assert val(s, "pyhost_app_seconds_count", mount="/a") == 9
    assert val(s, "pyhost_requests_total", mount="/e", protocol="wsgi", status="2xx") == 1


def test_python_api_in_the_app(short_server, mpm):
    extra = "WSGIScriptAlias /api @APPS@/metrics_api.wsgi\n"
    srv = start(short_server, mpm, extra=extra + "WSGIScriptAlias /dapi "
                "@APPS@/metrics_api.wsgi process-group=grp\n")
    burst(srv, ["/e/info?i=%d" % i for i in range(7)] + ["/d/info?i=%d" % i for i in range(3)])
    r = srv.get("/api")
    assert r.status == 200, r.body
    got = r.json()
    assert got["process"]["name"].startswith("child/") and got["process"]["busy_threads"] == 1
    assert got["process"]["resident_memory_bytes"] > 1 << 20
    server = got["server"]
    assert server["requests"]["/e"]["wsgi"]["2xx"] == 7
    assert server["requests"]["/d"]["wsgi"]["2xx"] == 3
    assert server["app_seconds"]["/e"]["count"] == 7
    assert server["in_flight"] == 1  # this request
    assert server["daemon_groups"]["grp"]["processes"] == 2
    assert server["daemon_groups"]["grp"]["restarts"]["signal"] == 0
    d = srv.get("/dapi").json()
    assert d["process"]["name"].startswith("daemon/grp/") and d["process"]["busy_threads"] == 1
    assert d["server"]["requests"]["/api"]["wsgi"]["2xx"] == 1


@pytest.mark.skipif(not shutil.which("h2load"),
                    reason="needs h2load (nghttp2-client; scripts/install-deps.sh --test)")
def test_http2_requests_are_counted(short_server):
    # mod_http2 runs requests on secondary connections of its own: each
    # must still find its child's record.
    extra = ("LoadModule http2_module %s/mod_http2.so\nProtocols h2c http/1.1\n"
             % harness.apache_modules_dir())
    srv = start(short_server, "event", extra=extra)
    out = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "5",
                          "http://127.0.0.1:%d/e/info" % srv.port],
                         capture_output=True, text=True, timeout=120).stdout
    assert "200 succeeded" in out and "200 2xx" in out, out
    s = scrape(srv)
    assert val(s, "pyhost_requests_total", mount="/e", protocol="wsgi", status="2xx") == 200
    assert val(s, "pyhost_app_seconds_count", mount="/e") == 200
    assert val(s, "pyhost_requests_in_flight") == 0


def test_websockets_open_and_counted(short_server):
    from test_asgi_websocket import Client
    srv = start(short_server, "event", extra="ASGIScriptAlias /ws @APPS@/asgi_ws.py\n")
    clients = [Client(srv, "/ws/echo") for _ in range(2)]
    for c in clients:
        assert c.status == 101 and c.accept_ok()
        c.send_text("hi")
        assert c.recv_message() == (1, b"hi")
    s = scrape(srv)
    assert val(s, "pyhost_websockets_open") == 2
    assert val(s, "pyhost_requests_in_flight") == 2
    for c in clients:
        c.close()
    assert wait_for(lambda: val(scrape(srv), "pyhost_websockets_open") == 0, timeout=10)
    s = scrape(srv)
    assert val(s, "pyhost_requests_total", mount="/ws", protocol="websocket", status="1xx") == 2
    assert val(s, "pyhost_requests_total", mount="/ws", protocol="asgi", status="1xx") == 0
    assert val(s, "pyhost_app_seconds_count", mount="/ws") == 2
