"""ASGI in a daemon process group (issue 14 points 4 and 6): lifespan
events recorded per pid, and requests that take their time (for
request-timeout, inactivity-timeout and graceful-timeout)."""
import asyncio
import json
import os

LOG = "@STATE_DIR@/asgi_daemon_lifespan.log"


def record(event):
    with open(LOG, "a") as f:
        f.write("%s %d\n" % (event, os.getpid()))


async def lifespan(receive, send):
    while True:
        m = await receive()
        if m["type"] == "lifespan.startup":
            await asyncio.sleep(0.3)  # a request must not come in before this ends
            record("startup")
            await send({"type": "lifespan.startup.complete"})
        elif m["type"] == "lifespan.shutdown":
            record("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def start(send, status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path = scope["path"][len(scope["root_path"]):]
    arg = scope["query_string"].decode()
    if path == "/pid":
        with open(LOG) as f:
            started = ("startup %d" % os.getpid()) in f.read().split("\n")
        await start(send)
        await send({"type": "http.response.body", "body": json.dumps(
            {"pid": os.getpid(), "started": started}).encode()})
    elif path == "/sleep":  # before the response starts
        await asyncio.sleep(float(arg))
        await start(send)
        await send({"type": "http.response.body", "body": b"late"})
    elif path == "/stall":  # one chunk, then nothing
        await start(send)
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        await asyncio.sleep(float(arg))
        await send({"type": "http.response.body", "body": b"never"})
    elif path == "/slow":  # n chunks, 0.5 s apart
        await start(send)
        for i in range(int(arg)):
            await send({"type": "http.response.body", "body": b"c%d;" % i, "more_body": True})
            await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"end"})
    else:
        await start(send, 404)
        await send({"type": "http.response.body", "body": b"no such path"})
