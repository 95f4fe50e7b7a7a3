"""Starlette: routing under the mount, lifespan state read in a request,
a JSON body, a streamed response."""
import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"pool": "made-at-startup-%d" % os.getpid()}


async def hello(request):
    return PlainTextResponse("hello from starlette root_path=%s" % request.scope["root_path"])


def _route_path(request):
    # Newer Starlette puts the matched route in the scope; 0.49 (the last
    # for Python 3.9) only its endpoint.
    route = request.scope.get("route")
    if route is None:
        route = next(r for r in request.app.routes
                     if getattr(r, "endpoint", None) is request.scope["endpoint"])
    return route.path


async def state(request):
    return JSONResponse({"pool": request.state.pool, "pid": os.getpid(),
                         "path": request.url.path, "route": _route_path(request)})


async def echo(request):
    data = await request.json()
    return JSONResponse({"got": data, "query": dict(request.query_params)})


async def stream(request):
    async def parts():
        for i in range(5):
            yield b"part%d;" % i
    return StreamingResponse(parts(), media_type="text/plain")


app = Starlette(lifespan=lifespan, routes=[
    Route("/", hello),
    Route("/state", state),
    Route("/echo", echo, methods=["POST"]),
    Route("/stream", stream),
])
