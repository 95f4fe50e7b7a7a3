"""Lifespan: startup fills the state every request sees; each startup and
shutdown is recorded (one line per event and pid) in state/."""
import json
import os

LOG = "@STATE_DIR@/asgi_lifespan.log"
startups = 0


def record(event):
    with open(LOG, "a") as f:
        f.write("%s %d\n" % (event, os.getpid()))


async def application(scope, receive, send):
    global startups
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                startups += 1
                scope["state"]["pool"] = "made-at-startup"
                scope["state"]["pid"] = os.getpid()
                record("startup")
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                record("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    state = dict(scope["state"])
    scope["state"]["mutated-by-request"] = True  # a copy: the next one won't see it
    body = json.dumps({"state": state,
                       "startups": startups, "pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
