# print() to stdout and stderr and the logging module, all of which must end
# up in Apache's error log rather than be lost or break the request.
import logging
import sys


def application(environ, start_response):
    token = environ.get("QUERY_STRING", "")
    print("pyhost-test-stdout %s" % token)
    sys.stdout.flush()
    print("pyhost-test-stderr %s" % token, file=sys.stderr)
    sys.stderr.flush()
    logging.getLogger("pyhost.test").warning("pyhost-test-logging %s", token)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"printed"]
