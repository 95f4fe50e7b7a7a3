"""A client that goes away: /wait reads the body and then waits in
receive(); /stream sends a chunk every 20 ms (at most 10 s; without a
token every 2 ms); each writes what it saw, and when, to
state/disc-TOKEN. /pid names the process."""
import asyncio
import json
import os
import time

STATE = "@STATE_DIR@"


def record(token, **what):
    what["at"] = time.time()
    path = os.path.join(STATE, "disc-" + token)
    with open(path + ".tmp", "w") as f:
        json.dump(what, f)
    os.replace(path + ".tmp", path)


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    token = scope["query_string"].decode()
    path = scope["path"].rsplit("/", 1)[-1]
    if path == "pid":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
    elif path == "wait":
        while True:
            m = await receive()
            if m["type"] != "http.request" or not m.get("more_body"):
                break
        m = await receive()  # nothing more to come: the end of the request
        record(token, got=m["type"])
    elif path == "stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        sent = 0
        try:
            for _ in range(500):
                await send({"type": "http.response.body", "body": b"x" * 1000,
                            "more_body": True})
                sent += 1
                await asyncio.sleep(0.02 if token else 0.002)
        except Exception as e:
            if token:
                record(token, error=type(e).__name__, oserror=isinstance(e, OSError), sent=sent)
            raise
        await send({"type": "http.response.body", "body": b""})
        if token:
            record(token, error=None, sent=sent)
