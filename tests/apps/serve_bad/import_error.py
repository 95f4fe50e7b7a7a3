# pyhost serve must refuse to start this script: an import fails.
import json

import no_such_module_for_pyhost_tests  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [])
    return [json.dumps({}).encode()]
