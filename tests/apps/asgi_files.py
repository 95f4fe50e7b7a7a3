"""http.response.pathsend and zerocopysend (file buckets): the file sent
is this script itself, so the test knows what to expect."""
import json
import os


async def start(send, headers=()):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"), *headers]})


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    what = scope["path"].rsplit("/", 1)[-1]
    if what == "ext":
        body = json.dumps(sorted(scope["extensions"])).encode()
        await start(send)
        await send({"type": "http.response.body", "body": body})
    elif what == "path":
        await start(send)
        await send({"type": "http.response.pathsend", "path": os.path.abspath(__file__)})
    elif what == "zc":
        # The file object is closed as soon as each send() returns: the
        # worker must have its own descriptor.
        await start(send)
        with open(__file__, "rb") as f:
            await send({"type": "http.response.zerocopysend", "file": f, "count": 50,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"|mid|", "more_body": True})
        with open(__file__, "rb") as f:
            f.seek(100)  # no offset: from the file's position
            await send({"type": "http.response.zerocopysend", "file": f, "count": 30,
                        "more_body": True})
        with open(__file__, "rb") as f:
            await send({"type": "http.response.zerocopysend", "file": f, "offset": 200})
    elif what == "big":
        # 8 MB, more than the socket takes at once: Apache keeps the rest
        # (event MPM: write completion) after send() returned and the app
        # closed its file.
        path = os.path.join("@STATE_DIR@", "asgi-big-%d" % os.getpid())
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(bytes(range(256)) * 32768)
            os.replace(path + ".tmp", path)
        await start(send)
        with open(path, "rb") as f:
            await send({"type": "http.response.zerocopysend", "file": f})
    elif what == "hint":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style",
                              b"</app.js>; rel=preload; as=script"]})
        await start(send, [(b"link", b"</style.css>; rel=preload; as=style")])
        await send({"type": "http.response.early_hint", "links": [b"</late>; rel=preload"]})
        await send({"type": "http.response.body", "body": b"hinted"})
    elif what == "badhint":
        await send({"type": "http.response.early_hint", "links": [b"</x>\r\nX-Evil: 1"]})
    elif what == "tls":
        await start(send)
        await send({"type": "http.response.body",
                    "body": json.dumps(scope["extensions"].get("tls")).encode()})
    elif what == "missing":
        await start(send)
        await send({"type": "http.response.pathsend", "path": "/nonexistent/pyhost-file"})
    elif what == "relative":
        await start(send)
        await send({"type": "http.response.pathsend", "path": "relative/file"})
    elif what == "early":
        await send({"type": "http.response.pathsend", "path": os.path.abspath(__file__)})
