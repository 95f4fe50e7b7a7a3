"""Which interpreter serves this mount: a token kept in sys (one per
interpreter per process; interp_probe.wsgi reads the same one), the loop
thread's native id, and the lifespan state of this app in this group.
Startups and shutdowns are recorded per group and pid in state/."""
import asyncio
import json
import os
import sys
import threading

LOG = "@STATE_DIR@/asgi_interp.log"
TOKEN = sys.__dict__.setdefault("_pyhost_probe_token", os.urandom(8).hex())
startups = 0


def is_main():
    try:
        import _interpreters as interpreters  # 3.13
    except ImportError:
        try:
            import _xxsubinterpreters as interpreters
        except ImportError:
            return None
    cur, main = interpreters.get_current(), interpreters.get_main()
    return (cur[0] if isinstance(cur, tuple) else cur) == \
        (main[0] if isinstance(main, tuple) else main)


def record(event, scope):
    with open(LOG, "a") as f:
        f.write("%s %s %d\n" % (event, TOKEN, os.getpid()))


async def application(scope, receive, send):
    global startups
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                startups += 1
                scope["state"]["token"] = TOKEN
                scope["state"]["loop_thread"] = threading.get_native_id()
                record("startup", scope)
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                record("shutdown", scope)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": json.dumps({
                "token": TOKEN, "pid": os.getpid(), "main": is_main(),
                "state": dict(scope["state"]), "echo": m.get("text")})})
    body = json.dumps({
        "token": TOKEN, "pid": os.getpid(), "modules": id(sys.modules),
        "loop_thread": threading.get_native_id(), "startups": startups,
        "state": dict(scope["state"]),
        "main": is_main(),
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "asyncio_accel": "_asyncio" in str(type(asyncio.get_running_loop().create_future())),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
