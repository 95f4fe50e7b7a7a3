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


async def state(request):
    return JSONResponse({"pool": request.state.pool, "pid": os.getpid(),
                         "path": request.url.path, "route": request.scope["route"].path})


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
