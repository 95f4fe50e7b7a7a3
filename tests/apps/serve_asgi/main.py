# `pyhost serve` with a raw ASGI app named `app` (FastAPI's name): served as
# main.py or main:app; lifespan fills the state; the message comes from an
# imported module so that --reload can be tested by editing it. `instance`
# is an ASGI app as an object whose __call__ is a coroutine function.
import json
import os

import asgihelper


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                scope["state"]["made_at"] = "startup"
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({
        "message": asgihelper.MESSAGE,
        "type": scope["type"],
        "asgi": scope["asgi"]["version"],
        "path": scope["path"],
        "root_path": scope["root_path"],
        "state": dict(scope.get("state", {})),
        "cwd": os.getcwd(),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class Instance:
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"instance"})


instance = Instance()


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]
