# The one ASGI app every ASGI setup serves (pyhost's ASGIScriptAlias,
# uvicorn, granian, hypercorn, Apache -> mod_proxy -> uvicorn), so that only
# the server differs. Raw ASGI for hello, the stream and the WebSocket echo
# (what the server costs, not a framework); FastAPI for its own workload.
# Lifespan goes to FastAPI, which answers it.

HELLO = b"Hello world!"
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"),
                (b"content-length", b"12")],
}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}

# 1 MB streamed: 16 x 64 KiB body messages with more_body, no length
# (chunked on HTTP/1.1).
STREAM_CHUNK = b"z" * 65536
STREAM_CHUNKS = 16
STREAM_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream")],
}

try:
    import fastapi
    import pydantic
except ImportError:  # the FastAPI workload then answers 500 and is reported
    fastapi = None

if fastapi is not None:
    class Greeting(pydantic.BaseModel):
        message: str
        id: int
        tags: list[str]

    fastapi_app = fastapi.FastAPI()

    @fastapi_app.get("/fastapi", response_model=Greeting)
    async def fastapi_hello():
        return Greeting(message="Hello world!", id=1, tags=["a", "b"])
else:
    fastapi_app = None


async def hello(scope, receive, send):
    await send(HELLO_START)
    await send(HELLO_BODY)


async def stream(scope, receive, send):
    await send(STREAM_START)
    for _ in range(STREAM_CHUNKS - 1):
        await send({"type": "http.response.body", "body": STREAM_CHUNK,
                    "more_body": True})
    await send({"type": "http.response.body", "body": STREAM_CHUNK})


async def ws_echo(scope, receive, send):
    msg = await receive()
    if msg["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.receive":
            if msg.get("text") is not None:
                await send({"type": "websocket.send", "text": msg["text"]})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"]})
        else:  # websocket.disconnect
            return


ROUTES = {"/hello": hello, "/stream": stream}


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        route = ROUTES.get(scope["path"])
        if route is not None:
            return await route(scope, receive, send)
        if fastapi_app is None:
            raise RuntimeError("FastAPI is not installed in this Python")
        return await fastapi_app(scope, receive, send)
    if kind == "websocket":
        return await ws_echo(scope, receive, send)
    if kind == "lifespan" and fastapi_app is not None:
        return await fastapi_app(scope, receive, send)
    raise RuntimeError("no lifespan here")  # servers then go on without it


application = app
