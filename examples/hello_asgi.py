"""Hello world as a raw ASGI app, with a WebSocket echo at /ws and no
framework: `pyhost serve examples/hello_asgi.py` (pyhost sees the coroutine
function and serves it as ASGI). Try it with
    curl http://localhost:8000/
    python -m websockets ws://localhost:8000/ws
"""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        # nothing to set up; say so, or pyhost logs that lifespan is unused
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"][len(scope["root_path"]):] or "/"
    if scope["type"] == "websocket":
        await websocket_echo(path, receive, send)
        return
    if path == "/":
        await respond(send, 200, b"Hello, ASGI!\n")
    else:
        await respond(send, 404, b"Not found\n")


async def respond(send, status, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def websocket_echo(path, receive, send):
    await receive()  # websocket.connect
    if path != "/ws":
        await send({"type": "websocket.close"})  # a 403
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
