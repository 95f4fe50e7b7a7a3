# Imports a single-phase-init extension module (tests/apps/singlephase/,
# compiled by the test), which sub-interpreters with their own GIL refuse.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "singlephase"))
import pyhost_singlephase  # noqa: E402


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [pyhost_singlephase.hello().encode()]
