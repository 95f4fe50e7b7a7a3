"""WebSocket scenarios for tests/test_asgi_websocket.py, by path under the
mount: echo (and commands), deny (close before accept), return (return
without accepting), scope. Disconnect codes are written to a state file
named by the query string so the test can read them on any MPM."""
import json
import os

STATE = "@STATE_DIR@"


def record(scope, what):
    name = scope["query_string"].decode()
    if name:
        with open(os.path.join(STATE, "ws-" + name), "a") as f:
            f.write(what + "\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    path = scope["path"][len(scope["root_path"]):]
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if path == "/deny":
        await send({"type": "websocket.close", "code": 1000})
        return
    if path == "/return":
        return
    sub = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": sub,
                "headers": [(b"x-ws-app", b"yes")]})
    if path == "/scope":
        s = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string")}
        s["raw_path"] = scope["raw_path"].decode()
        await send({"type": "websocket.send", "text": json.dumps(s)})
    if path == "/push":
        # sends without receiving: the worker must still see the client go
        for i in range(3):
            await send({"type": "websocket.send", "text": "push %d" % i})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            record(scope, "disconnect %d" % msg["code"])
            return
        if msg.get("text", "").startswith("close:"):
            _, code, reason = msg["text"].split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            continue
        if msg.get("text") == "raise":
            raise RuntimeError("asked to raise")
        if msg.get("text") == "return":
            return
        if msg.get("text") == "big":
            await send({"type": "websocket.send", "bytes": b"z" * 300000})
            continue
        if "text" in msg:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})
