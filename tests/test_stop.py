"""Immediate stops (SIGTERM) of children that just served Python requests in
the main interpreter and in sub-interpreters: no child may crash, and each
interpreter that served must be finalized (its atexit handlers run).

Clients close all their connections at once just before each stop. That is
the moment of mod_mpm_event's own race (its ungraceful child shutdown walks
the sockets of worker threads that may be freeing them, reproduced with no
pyhost at all); the harness waits until Apache is done with closed
connections before a SIGTERM (Apache.quiesce). Without that wait, these
cycles crash children in a third of the cycles or more. Bounded: CYCLES
short-lived servers of CONNECTIONS requests each."""

import json
import os
import signal
import sys

import pytest

from harness import CRASH_RE, read_until

pytestmark = pytest.mark.core

CYCLES = 20
CONNECTIONS = 32
GROUPS = ("%{GLOBAL}", "alpha", "beta")
CONF = "".join("WSGIScriptAlias /stop/g%d @APPS@/atexit.wsgi application-group=%s\n"
               % (i, g) for i, g in enumerate(GROUPS))


def burst_then_close(srv, token):
    """CONNECTIONS keep-alive requests spread over the groups, all answered,
    then every connection closed by the client at once. Returns the markers
    the interpreters that served promised to leave at exit."""
    socks, markers = [], set()
    try:
        for i in range(CONNECTIONS):
            s = srv.open_socket()
            socks.append(s)
            s.sendall(b"GET /stop/g%d?%s HTTP/1.1\r\nHost: x\r\n\r\n"
                      % (i % len(GROUPS), token.encode()))
        for s in socks:
            data, found = read_until(s, b"}", timeout=10)
            assert found and data.startswith(b"HTTP/1.1 200"), data
            body = json.loads(data[data.index(b"\r\n\r\n") + 4:])
            markers.add(body["marker"])
    finally:
        for s in socks:
            s.close()
    return markers


def run_cycles(short_server, workspace, token, extra, cycles=CYCLES):
    failures = []
    for n in range(cycles):
        srv = short_server("stop", extra=extra + CONF)
        srv.start()
        markers = burst_then_close(srv, "%s%d" % (token, n))
        rc = srv.stop(signal.SIGTERM)
        log = srv.error_log()
        crashes = [l for l in log.splitlines() if CRASH_RE.search(l)]
        # AH00045/AH00046: a child did not leave in time and was killed.
        killed = [l for l in log.splitlines() if "AH00045" in l or "AH00046" in l]
        missing = sorted(m for m in markers
                         if not os.path.exists(workspace.state_path(m)))
        if rc != 0 or crashes or killed or missing:
            failures.append("cycle %d: rc=%s crashes=%s killed=%s not finalized=%s"
                            % (n, rc, crashes[:2], killed[:2], missing))
    return failures


def test_immediate_stop_after_clients_close(short_server, workspace, token):
    failures = run_cycles(short_server, workspace, token, "")
    assert not failures, "%d of %d cycles failed:\n%s" % (
        len(failures), CYCLES, "\n".join(failures))


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="per-interpreter GIL needs Python 3.12+")
def test_immediate_stop_with_own_gil_groups(short_server, workspace, token):
    cycles = CYCLES // 2
    failures = run_cycles(short_server, workspace, token,
                          "WSGIPerInterpreterGIL On\n", cycles)
    assert not failures, "%d of %d cycles failed:\n%s" % (
        len(failures), cycles, "\n".join(failures))
