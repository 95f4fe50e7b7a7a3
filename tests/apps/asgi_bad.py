"""ASGI apps that get the protocol wrong, one path each; named `app` (no
`application`), so it also shows the callable fallback."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return  # returns at once: auto serves it without lifespan
    path = scope["path"][len(scope["root_path"]):]
    start = {"type": "http.response.start", "status": 200, "headers": []}
    if path == "/ok":
        await send(start)
        await send({"type": "http.response.body", "body": b"fine"})
    elif path == "/raise-before":
        raise ValueError("boom before start")
    elif path == "/raise-after":
        await send(start)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after start")
    elif path == "/no-response":
        return
    elif path == "/start-only":
        await send(start)
    elif path == "/bad-status":
        await send({"type": "http.response.start", "status": "200", "headers": []})
    elif path == "/bad-headers":
        await send({"type": "http.response.start", "status": 200, "headers": [("x-str", "not bytes")]})
    elif path == "/crlf-header":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1\r\nx-b: 2")]})
    elif path == "/bad-body":
        await send(start)
        await send({"type": "http.response.body", "body": "a str"})
    elif path == "/start-twice":
        await send(start)
        await send(start)
    elif path == "/unknown-type":
        await send({"type": "http.response.nonsense"})
    elif path == "/swallowed":
        # the app catches the error and returns without a response
        try:
            await send({"type": "http.response.start", "status": None})
        except RuntimeError:
            pass
    elif path == "/short-body":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"only this"})
    elif path == "/short-stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"only this", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/after-complete":
        await send(start)
        await send({"type": "http.response.body", "body": b"complete"})
        await send({"type": "http.response.body", "body": b"too late"})
