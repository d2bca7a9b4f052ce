"""Every route that takes a body counts it as it comes and checks the caller's token before reading it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.viewer.conftest import asgi_post


@pytest.fixture
def guarded(city):
    """The app of a city that has a token (so every request needs one), and the token."""
    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        token = create_token(st, "admin", name="ops")
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c, token


def test_every_route_with_a_body_is_limited():
    from viewer.routers import ROUTERS

    body_routes = [r for router in ROUTERS for r in router.routes
                   if set(getattr(r, "methods", ()) or ()) & {"POST", "PUT", "PATCH"}]
    assert {r.path for r in body_routes} >= {"/api/scenarios", "/api/bookmarks", "/api/sensors/readings",
                                              "/api/bim/checks", "/api/jobs"}
    unguarded = [r.path for r in body_routes if type(r).__name__ != "LimitedBodyRoute"]
    assert unguarded == []  # before: bookmarks, scenarios and jobs read a body of any size


@pytest.mark.parametrize("path", ["/api/sensors/readings", "/api/bim/checks", "/api/bookmarks", "/api/scenarios",
                                  "/api/jobs", "/api/scenarios/x/edits"])
def test_an_anonymous_body_is_refused_before_it_is_read(guarded, path):
    """A 4 MB JSON POST without a token was read (and parsed) in full before its 401."""
    client, _ = guarded
    got = {"bytes": 0}

    async def receive():
        got["bytes"] += 64 * 1024
        return {"type": "http.request", "body": b" " * 64 * 1024, "more_body": got["bytes"] < 4 * 1024 * 1024}

    status, body = asgi_post(client.app, path, {"content-type": "application/json"}, receive)
    assert status == 401 and "bearer token" in json.loads(body)["detail"], (status, body)
    assert got["bytes"] == 0


def test_a_body_over_the_default_limit_is_413_with_a_token(guarded):
    client, token = guarded
    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    sent = {"n": 0}

    async def receive():
        sent["n"] += 1
        return {"type": "http.request", "body": b" " * 256 * 1024, "more_body": sent["n"] < 40}  # 10 MB, chunked

    status, body = asgi_post(client.app, "/api/bookmarks", auth, receive)
    assert status == 413 and "over the limit of 1024 kB" in json.loads(body)["detail"], (status, body)
    assert sent["n"] <= 6  # refused once past 1 MiB, not after all 10 MB
    ok = client.post("/api/bookmarks", headers={"Authorization": f"Bearer {token}"},
                     json={"name": "gate", "view": {"longitude": 104.06, "latitude": 30.66, "zoom": 15, "pitch": 0,
                                                    "bearing": 0}})
    assert ok.status_code in (200, 201), ok.text  # an ordinary body goes through as before


def test_a_post_waiting_for_the_store_does_not_stall_the_server(guarded):
    """The early token check read the store on the event loop: while a job held the store's lock, every request
    (tiles, health, job streams) waited behind one POST."""
    import threading
    import time

    client, token = guarded
    state = client.app.state.twin_state
    state._token_cache = None  # the next check reads the tokens from the store
    lock, held = state.store.lock, threading.Event()

    def hold():  # a job writing its results: the store's lock held for 2 s
        with lock:
            held.set()
            time.sleep(2.0)

    def post():
        posted["r"] = client.post("/api/bookmarks", headers={"Authorization": f"Bearer {token}"},
                                  json={"name": "gate", "view": {"longitude": 104.06, "latitude": 30.66, "zoom": 15,
                                                                 "pitch": 0, "bearing": 0}})

    posted = {}
    holder, poster = threading.Thread(target=hold), threading.Thread(target=post)
    holder.start()
    held.wait(5)
    poster.start()
    time.sleep(0.3)  # the POST is now waiting for the lock
    t0 = time.perf_counter()
    health = client.get("/api/health")
    took = time.perf_counter() - t0
    holder.join(10)
    poster.join(30)
    assert health.status_code == 200 and took < 1.0, took  # it waited ~1.7 s for the lock
    assert posted["r"].status_code == 201, posted["r"].text
