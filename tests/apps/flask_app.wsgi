# A Flask app: GET, JSON POST, a body upload (chunked when WSGIChunkedRequest
# is On) and send_file, which should go out through wsgi.file_wrapper.
import hashlib
import os

from flask import Flask, jsonify, request, send_file

DATA_FILE = "@DATA_FILE@"

app = Flask("pyhost_test_flask", root_path=os.path.dirname(DATA_FILE))


@app.get("/")
def index():
    return "hello from flask script_root=%s" % request.script_root


@app.post("/json")
def echo_json():
    return jsonify(echo=request.get_json(), length=len(request.get_data()))


@app.post("/upload")
def upload():
    data = request.get_data()
    return jsonify(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   input_terminated=request.environ.get("wsgi.input_terminated"))


@app.get("/file")
def file():
    return send_file(DATA_FILE, mimetype="application/octet-stream")


def application(environ, start_response):
    # Record whether werkzeug took the server's wsgi.file_wrapper.
    used = []
    server_wrapper = environ.get("wsgi.file_wrapper")
    if server_wrapper is not None:
        def wrapper(*args, **kwargs):
            used.append(True)
            return server_wrapper(*args, **kwargs)
        environ["wsgi.file_wrapper"] = wrapper

    def sr(status, headers, exc_info=None):
        if used:
            headers = list(headers) + [("X-File-Wrapper", "server")]
        return start_response(status, headers, exc_info)

    return app(environ, sr)
