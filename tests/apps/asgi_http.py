"""Raw ASGI app for tests/test_asgi.py: one path per HTTP scenario."""
import asyncio
import json


async def read_body(receive):
    body, pieces = b"", 0
    while True:
        m = await receive()
        assert m["type"] == "http.request", m
        body += m.get("body", b"")
        pieces += 1
        if not m.get("more_body"):
            return body, pieces


async def respond(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")] + list(headers)})
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("this app takes no lifespan")  # auto: served without
    path = scope["path"][len(scope["root_path"]):]
    if path == "/hello":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Hello, ASGI!"})
    elif path.startswith("/scope"):
        s = dict(scope)
        s["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in s["headers"]]
        s["raw_path"] = s["raw_path"].decode("latin-1")
        s["query_string"] = s["query_string"].decode("latin-1")
        s["client"] = list(s["client"])
        s["server"] = list(s["server"])
        await respond(send, 200, json.dumps(s).encode(), [(b"content-type", b"application/json")])
    elif path == "/echo":
        body, pieces = await read_body(receive)
        await respond(send, 200, body, [(b"x-pieces", str(pieces).encode())])
    elif path == "/disconnect":
        # after the response, receive() says the request is over
        await read_body(receive)
        await respond(send, 200, b"done")
        m = await asyncio.wait_for(receive(), 5)
        assert m == {"type": "http.disconnect"}, m
        with open(scope["query_string"].decode(), "w") as f:
            f.write(m["type"])
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"chunk%d;" % i, "more_body": True})
            await asyncio.sleep(0.4)
        await send({"type": "http.response.body", "body": b"end"})
    elif path == "/content-length":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"01234", "more_body": True})
        await send({"type": "http.response.body", "body": b"56789"})
    elif path == "/echo-tolerant":
        # Frameworks catch a failed body read and answer it themselves.
        try:
            body, _ = await read_body(receive)
        except Exception as e:
            body = ("app answered after %s" % type(e).__name__).encode()
        await respond(send, 200, b"{app} " + body)
    elif path == "/cookies":
        await respond(send, 201, b"two cookies",
                      [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-custom", b"yes")])
    elif path == "/status":
        await respond(send, 299, b"odd status")
    elif path == "/big":
        # 4 MiB in 64 KiB pieces: send() returns only once each is handed over
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"x" * 65536
        for _ in range(64):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await respond(send, 404, b"no such scenario")
