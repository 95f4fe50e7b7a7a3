# conf/fastapi-static.conf's app: a pydantic response model and a resource
# made at lifespan startup.
import contextlib

from fastapi import FastAPI, Request
from pydantic import BaseModel


class Item(BaseModel):
    id: int
    name: str


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"names": {1: "one", 2: "two"}}  # e.g. a connection pool


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}", response_model=Item)
async def item(item_id: int, request: Request):
    return {"id": item_id, "name": request.state.names.get(item_id, "?")}
