"""The WebSocket denial response (asgiref's websocket.http.response
extension) for tests/test_asgi_websocket.py, by path under the mount:
an ordinary HTTP response instead of the 101, and the ways to get it
wrong. What the app learns afterwards goes to a state file named by the
query string."""
import asyncio
import json
import os

STATE = "@STATE_DIR@"

START = "websocket.http.response.start"
BODY = "websocket.http.response.body"


def record(scope, what):
    name = scope["query_string"].decode()
    if name:
        with open(os.path.join(STATE, "ws-" + name), "a") as f:
            f.write(what + "\n")


async def wait_for_file(name, timeout=10.0):
    path = os.path.join(STATE, name)
    for _ in range(int(timeout / 0.02)):
        if os.path.exists(path):
            return True
        await asyncio.sleep(0.02)
    return False


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    path = scope["path"][len(scope["root_path"]):]
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if path == "/401":
        await send({"type": START, "status": 401,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"www-authenticate", b'Bearer realm="ws"'),
                                (b"x-denied", b"yes"), (b"x-denied", b"twice")]})
        await send({"type": BODY, "body": b"no token, no socket"})
        record(scope, json.dumps(await receive()))
    elif path == "/ext":
        body = json.dumps(sorted(scope["extensions"])).encode()
        await send({"type": START, "status": 418,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": BODY, "body": body})
    elif path == "/stream":
        # each piece reaches the client before the next is sent: the test
        # creates the file named by the query string once it has piece one
        await send({"type": START, "status": 429,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": BODY, "body": b"one,", "more_body": True})
        seen = await wait_for_file("ws-go-" + scope["query_string"].decode())
        await send({"type": BODY, "body": b"two," if seen else b"timeout,",
                    "more_body": True})
        await send({"type": BODY, "body": b"", "more_body": True})
        await send({"type": BODY, "body": b"three"})
        record(scope, json.dumps(await receive()))
    elif path == "/2xx":
        await send({"type": START, "status": 200, "headers": []})
        await send({"type": BODY, "body": b"not a websocket"})
    # invalid sequences
    elif path == "/body-first":
        await send({"type": BODY, "body": b"x"})
    elif path == "/start-twice":
        await send({"type": START, "status": 401, "headers": []})
        await send({"type": START, "status": 401, "headers": []})
    elif path == "/bad-status":
        await send({"type": START, "status": "401", "headers": []})
    elif path == "/bad-headers":
        await send({"type": START, "status": 401, "headers": [("x-str", "not bytes")]})
    elif path == "/bad-body":
        await send({"type": START, "status": 401, "headers": []})
        await send({"type": BODY, "body": "a str"})
    elif path == "/accept-after-start":
        await send({"type": START, "status": 401, "headers": []})
        await send({"type": "websocket.accept"})
    elif path == "/close-after-start":
        await send({"type": START, "status": 401, "headers": []})
        await send({"type": "websocket.close"})
    elif path == "/start-after-accept":
        await send({"type": "websocket.accept"})
        await send({"type": START, "status": 401, "headers": []})
    elif path == "/start-only":
        await send({"type": START, "status": 401, "headers": []})
    elif path == "/after-complete":
        await send({"type": START, "status": 401, "headers": []})
        await send({"type": BODY, "body": b"complete"})
        await send({"type": BODY, "body": b"too late"})
