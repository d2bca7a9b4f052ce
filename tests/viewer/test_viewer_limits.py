"""viewer.limits: the one request-body limit of the readings and BIM routes, on a small app of its own."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from viewer.limits import limited_body_route


@pytest.fixture
def client():
    limits = {"n": 10}
    route = limited_body_route(lambda request: limits["n"],
                               lambda size, request: HTTPException(413, f"{size} bytes: over {limits['n']}"))
    router = APIRouter(route_class=route)

    @router.post("/echo")
    @router.put("/echo")
    async def echo(request: Request) -> dict:
        return {"got": len(await request.body())}

    @router.get("/echo")
    async def get(request: Request) -> dict:
        return {"got": len(await request.body())}

    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as c:
        c.limits = limits
        yield c


def test_a_body_over_the_limit_is_413_declared_or_chunked(client):
    assert client.post("/echo", content=b"x" * 10).json()["got"] == 10
    r = client.post("/echo", content=b"x" * 11)  # Content-Length: refused before it is read
    assert r.status_code == 413 and r.json()["detail"] == "11 bytes: over 10"
    r = client.put("/echo", content=iter([b"x" * 6, b"x" * 6]))  # chunked: refused once the count passes it
    assert r.status_code == 413 and r.json()["detail"] == "12 bytes: over 10"
    assert client.put("/echo", content=iter([b"x" * 5, b"x" * 5])).json()["got"] == 10


def test_the_limit_is_asked_per_request_and_none_is_no_limit(client):
    client.limits["n"] = None
    assert client.post("/echo", content=b"x" * 1000).json()["got"] == 1000
    client.limits["n"] = 100
    assert client.post("/echo", content=b"x" * 101).status_code == 413


def test_a_get_is_not_counted(client):
    assert client.request("GET", "/echo", content=b"x" * 50).json()["got"] == 50


def test_the_handler_gets_the_request_class(client):
    class Mine(Request):
        pass

    router = APIRouter(route_class=limited_body_route(lambda r: 10, lambda s, r: HTTPException(413), request_class=Mine))

    @router.post("/who")
    async def who(request: Request) -> str:
        return type(request).__name__

    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as c:
        assert c.post("/who", content=b"x").json() == "Mine"
