"""Fixtures: one long-lived Apache per MPM with every scenario app mounted,
and a failure report that carries the server's error log."""

import os

import pytest

import harness


# The core subset scripts/matrix.sh runs against every supported Python
# (`pytest -m core`, under one MPM): every test in these modules, and any
# other test marked @pytest.mark.core (or a module with pytestmark = core).
# The ASGI modules are in it: a test that cannot run on some Python (no
# uvloop, no framework, no h2 or websockets package) skips there; the
# frameworks are an extra the matrix does not install, so theirs skip.
CORE_MODULES = {"test_environ", "test_input", "test_output", "test_bad_apps",
                "test_directives", "test_lifecycle", "test_embedding",
                "test_interpreters", "test_asgi", "test_asgi_disconnect",
                "test_asgi_extensions", "test_asgi_websocket",
                "test_asgi_frameworks"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "core: in the core subset the Python version matrix runs (scripts/matrix.sh)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = os.path.splitext(os.path.basename(item.nodeid.split("::", 1)[0]))[0]
        if module in CORE_MODULES:
            item.add_marker(pytest.mark.core)


def _selected_mpms():
    wanted = os.environ.get("PYHOST_TEST_MPMS")
    if not wanted:
        return list(harness.MPMS)
    return [m.strip() for m in wanted.split(",") if m.strip() in harness.MPMS]


@pytest.fixture(scope="session")
def workspace():
    ws = harness.Workspace()
    yield ws
    ws.cleanup()


@pytest.fixture(scope="session", params=_selected_mpms())
def server(request, workspace):
    """The scenario server for one MPM, shared by every test that needs it."""
    srv = harness.scenario_server(workspace, request.param)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(params=_selected_mpms())
def mpm(request):
    """For tests that start their own short-lived server per MPM."""
    return request.param


@pytest.fixture
def short_server(workspace):
    """Factory for short-lived servers; every one is stopped at teardown."""
    started = []

    def make(name, mpm="event", extra="", **kw):
        srv = harness.Apache(workspace, "%s-%d" % (name, len(harness.ALL_SERVERS)),
                             mpm=mpm, extra=extra, **kw)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def token(request):
    """A unique alphanumeric token for marker files and log lines."""
    return os.urandom(6).hex()


def pytest_runtest_setup(item):
    item._pyhost_log_marks = {id(s): s.log_mark() for s in harness.ALL_SERVERS}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    marks = getattr(item, "_pyhost_log_marks", {})
    for srv in harness.ALL_SERVERS:
        text = srv.error_log()
        if id(srv) in marks:
            text = text[marks[id(srv)]:]
        if not text.strip():
            continue
        if len(text) > 20000:
            text = "[... %d chars cut ...]\n" % (len(text) - 20000) + text[-20000:]
        report.sections.append(
            ("error log: %s (%s)" % (srv.name, srv.error_log_path), text))
