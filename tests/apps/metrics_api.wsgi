# pyhost.metrics from inside a served app: its figures as JSON.
import json

import pyhost.metrics


def application(environ, start_response):
    body = json.dumps({"process": pyhost.metrics.process_metrics(),
                       "server": pyhost.metrics.server_metrics()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
