"""pyhost.metrics: the figures pyhost counts, as plain dicts, from inside an
app it serves (what mod_wsgi's process_metrics() and server_metrics() give).

    import pyhost.metrics
    pyhost.metrics.process_metrics()
    # {'pid': 4242, 'name': 'child/1', 'threads': 4, 'busy_threads': 1,
    #  'resident_memory_bytes': 34603008}
    pyhost.metrics.server_metrics()
    # {'requests': {'/app': {'wsgi': {'2xx': 118, '4xx': 2}}},
    #  'app_seconds': {'/app': {'count': 120, 'sum': 0.84}},
    #  'in_flight': 1,
    #  'daemon_groups': {'grp': {'restarts': {'signal': 1, ...},
    #                            'processes': 2, 'queue_timeouts': 0,
    #                            'request_timeouts': 0}}}

The server figures add up every Apache child and daemon process, as the
Prometheus endpoint (SetHandler pyhost-metrics) does. In a daemon process,
`requests` are counted by the Apache children that relayed them. Both
return None with `PyhostMetrics Off`; outside pyhost, importing this module
works but calling them raises RuntimeError."""

try:
    import _pyhost_metrics
except ImportError:  # not inside a process pyhost runs
    _pyhost_metrics = None


def _snapshot():
    if _pyhost_metrics is None:
        raise RuntimeError("pyhost.metrics works only inside an app served by pyhost")
    return _pyhost_metrics.snapshot()


def process_metrics():
    """This process's figures, or None when metrics are off."""
    snap = _snapshot()
    return None if snap is None else snap["process"]


def server_metrics():
    """The whole server's figures, or None when metrics are off."""
    snap = _snapshot()
    return None if snap is None else snap["server"]
