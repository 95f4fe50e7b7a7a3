"""A client that goes away: /wait reads the body and then waits in
receive(); /stream sends a chunk every 20 ms (at most 10 s; without a
token every 2 ms); each writes what it saw, and when, to
state/disc-TOKEN. /pid names the process. /early answers without reading
the request body while a task of its own waits in receive(), and records
what that receive() returned."""
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
    elif path == "early":
        # The task's receive() asks the worker for the body while the
        # worker writes the final body (more than the sockets' buffers
        # hold) to a client that does not read for a second: once the
        # response is complete it must return http.disconnect.
        async def listen():
            await asyncio.sleep(0.3)  # the worker is in the middle of the body
            return await receive()

        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        task = asyncio.ensure_future(listen())
        await send({"type": "http.response.body", "body": b"e" * (64 << 20)})
        try:
            m = await asyncio.wait_for(task, 5)
            record(token, got=m["type"])
        except asyncio.TimeoutError:
            record(token, got="no answer within 5 s")
