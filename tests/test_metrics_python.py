"""Observability (issue 17, point 2): what Python does in each process, as
each process publishes it into the shared segment: GC collections (a
gc.callbacks hook), interpreters alive, the ASGI event loop's lag, and the
ASGI lifespan state by mount. Read through the official Prometheus text
parser from a real Apache."""

import time

from test_metrics import METRICS_LOC, scrape, total, val

from harness import wait_for
from test_daemon import daemon_pids

GC_APP = "@APPS@/metrics_gc.wsgi"


def gc_by_process(s, generation="2"):
    return {dict(ls)["process"]: v for (n, ls), v in s.items()
            if n == "pyhost_python_gc_collections_total" and dict(ls)["generation"] == generation}


def test_gc_collections_and_interpreters_per_process(short_server, mpm):
    extra = ("WSGIDaemonProcess grp display-name=%%{GROUP} processes=1 threads=2\n"
             "WSGIScriptAlias /e %s\n"
             "WSGIScriptAlias /d %s process-group=grp application-group=%%{GLOBAL}\n"
             "WSGIScriptAlias /s %s process-group=grp application-group=second\n"
             % (GC_APP, GC_APP, GC_APP)) + METRICS_LOC
    srv = short_server("metrics-gc", mpm=mpm, extra=extra)
    srv.start()
    assert wait_for(lambda: len(daemon_pids(srv)) == 1, timeout=15)
    assert srv.get("/d/x").status == 200 and srv.get("/s/x").status == 200
    assert srv.get("/e/x").status == 200
    before = scrape(srv)
    daemon = "daemon/grp/0"
    assert daemon in gc_by_process(before), before
    for _ in range(3):
        assert srv.get("/d/x?n=4").status == 200  # 12 full collections in the daemon
        assert srv.get("/e/x?n=5").status == 200  # 15 in Apache's children
    after = scrape(srv)
    b, a = gc_by_process(before), gc_by_process(after)
    assert a[daemon] - b[daemon] >= 12, (b, a)
    children = [p for p in a if p.startswith("child/")]
    assert children, a
    assert sum(a[p] - b.get(p, 0) for p in children) >= 15, (b, a)
    # collections of the younger generations are counted too (made by the
    # interpreter on its own, since Python started in that process)
    assert total(after, "pyhost_python_gc_collections_total", process=daemon, generation="0") > 0
    # the daemon runs the main interpreter and "second"; each child one
    assert val(after, "pyhost_python_interpreters", process=daemon) == 2
    for p in children:
        assert val(after, "pyhost_python_interpreters", process=p) == 1, (p, after)


def test_asgi_loop_lag_is_published(short_server, mpm):
    srv = short_server("metrics-lag", mpm=mpm,
                       extra="ASGIScriptAlias /a @APPS@/asgi_http.py lifespan=off\n"
                             "WSGIScriptAlias /e %s\n" % GC_APP + METRICS_LOC)
    srv.start()
    assert srv.get("/e/x").status == 200
    s = scrape(srv)
    # no ASGI request yet, and no lifespan to start: no loop, no lag
    assert not [k for k in s if k[0] == "pyhost_asgi_loop_lag_seconds"], s
    for i in range(6):
        assert srv.get("/a/hello?i=%d" % i).status == 200
    time.sleep(0.6)  # at least two samples of the loop's timer

    def lags():
        got = scrape(srv)
        return {dict(ls)["process"]: v for (n, ls), v in got.items()
                if n == "pyhost_asgi_loop_lag_seconds"}
    assert wait_for(lambda: lags(), timeout=5)
    got = lags()
    assert all(p.startswith("child/") for p in got), got
    # an idle loop is on time, give or take the scheduling of a busy machine
    assert all(0 <= v < 1.0 for v in got.values()), got


def test_lifespan_state_by_mount(short_server, mpm):
    srv = short_server("metrics-lifespan", mpm=mpm,
                       extra="ASGIScriptAlias /ok @APPS@/asgi_lifespan.py\n"
                             "ASGIScriptAlias /bad @APPS@/asgi_lifespan_fail.py\n"
                             "ASGIScriptAlias /off @APPS@/asgi_http.py lifespan=off\n"
                             "WSGIScriptAlias /e %s\n" % GC_APP + METRICS_LOC)
    srv.start()
    assert srv.get("/ok/").status == 200
    assert srv.get("/bad/").status == 503

    def states(mount):
        s = scrape(srv)
        return {dict(ls)["state"]: v for (n, ls), v in s.items()
                if n == "pyhost_asgi_lifespan_processes" and dict(ls)["mount"] == mount}
    # every live child ran both startups in child_init; the endpoint lists
    # every child that has published (at least the one that answered)
    assert wait_for(lambda: states("/ok").get("ready", 0) >= 1, timeout=5), states("/ok")
    # a child still in child_init may have run one lifespan and not the other yet
    wait_for(lambda: states("/ok").get("ready") == states("/bad").get("failed"), timeout=5)
    ok, bad = states("/ok"), states("/bad")
    assert ok["failed"] == 0 and ok["starting"] == 0 and ok["stopped"] == 0, ok
    assert bad["failed"] >= 1 and bad["ready"] == 0, bad
    assert bad["failed"] == ok["ready"], (ok, bad, srv.error_log()[-3000:])  # the same processes
    # lifespan off: listed, in no state
    assert set(states("/off").values()) == {0}, states("/off")
