"""Quart: routing under the mount, before_serving (lifespan), a JSON body,
a streamed response."""
import os

from quart import Quart, jsonify, request

app = Quart(__name__)
started = {}


@app.before_serving
async def startup():
    started["pid"] = os.getpid()


@app.route("/")
async def hello():
    return "hello from quart root_path=%s path=%s" % (request.root_path, request.path)


@app.route("/started")
async def was_started():
    return jsonify(started=started.get("pid") == os.getpid())


@app.route("/echo", methods=["POST"])
async def echo():
    data = await request.get_json()
    return jsonify(got=data, args=request.args.to_dict())


@app.route("/stream")
async def stream():
    async def parts():
        for i in range(3):
            yield b"q%d;" % i
    return parts(), 200, {"Content-Type": "text/plain"}
