"""FastAPI: pydantic request and response models (422 on a bad body), a
resource created by lifespan and used in a request, path and query
parameters, a header dependency."""
import contextlib
import os
from typing import List, Optional

from fastapi import FastAPI, Header, Request
from pydantic import BaseModel


class Order(BaseModel):
    item: str
    quantity: int


class Receipt(BaseModel):
    item: str
    quantity: int
    total: float
    clerk: str
    note: Optional[str] = None


class Counter:
    """What a connection pool would be: made once per process at startup."""
    def __init__(self):
        self.pid = os.getpid()
        self.served = 0


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"counter": Counter()}


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: Optional[str] = None, x_token: Optional[str] = Header(None)):
    return {"item_id": item_id, "q": q, "x_token": x_token}


@app.post("/orders", response_model=Receipt, response_model_exclude_none=True)
async def order(o: Order, request: Request):
    counter = request.state.counter
    counter.served += 1
    # secret is not in the response model: pydantic drops it.
    return {"item": o.item, "quantity": o.quantity, "total": o.quantity * 2.5,
            "clerk": "pid-%d-served-%d" % (counter.pid, counter.served), "secret": "x"}


@app.get("/tags", response_model=List[str])
def tags():  # a sync endpoint: FastAPI runs it in its thread pool
    return ["a", "b"]
