"""For tests/test_asgi_proxy.py: the scope's client, server, scheme and
headers as JSON, in an HTTP response or, for a WebSocket, in one text
message after the accept."""
import json


def view(scope):
    return json.dumps({"type": scope["type"], "scheme": scope["scheme"],
                       "client": list(scope["client"]), "server": list(scope["server"]),
                       "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                                   for k, v in scope["headers"]]})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": view(scope).encode()})
        return
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": view(scope)})
    await send({"type": "websocket.close", "code": 1000})
