"""GET /api/health while the store is busy with a long request is "up, busy" (200, ``"busy": true``), not an
outage (review leftovers, 2026-12-05: it answered 503, which a monitor reads as the database down); a database
that cannot be reached stays a 503."""

from __future__ import annotations

import threading
import time

import pytest

import viewer.routers.scene as scene_router
from twin_core.errors import StoreConnectionError

pytestmark = pytest.mark.postgis


@pytest.fixture
def client(pg_dsn):
    from fastapi.testclient import TestClient

    from twin_core.twin import Twin
    from viewer.app import create_app
    from viewer.settings import Settings

    Twin.create(pg_dsn, crs="EPSG:4544").close()
    with TestClient(create_app(Settings(store=pg_dsn)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c


def test_health_says_busy_with_200_while_a_long_request_holds_the_store(client, monkeypatch):
    monkeypatch.setattr(scene_router, "HEALTH_WAIT_S", 0.2)
    lock = client.app.state.twin_state.store.lock
    held, done = threading.Event(), threading.Event()

    def long_save() -> None:  # another request's long write, holding the store
        with lock:
            held.set()
            done.wait(10)

    worker = threading.Thread(target=long_save)
    worker.start()
    try:
        assert held.wait(5)
        t0 = time.monotonic()
        r = client.get("/api/health")
        took = time.monotonic() - t0
    finally:
        done.set()
        worker.join()
    assert r.status_code == 200, r.text  # was 503 "store busy"
    body = r.json()
    assert body["ok"] is True and body["busy"] is True and body["store"] == "postgis"
    assert "busy with another request for more than 0.2 s" in body["detail"] and "not checked" in body["detail"]
    assert took < 3, took
    assert client.get("/api/health").json() == {"ok": True, "store": "postgis"}  # free again: checked, not busy


def test_health_is_503_when_the_database_does_not_answer(client, monkeypatch):
    store = client.app.state.twin_state.store.raw

    def refused() -> None:
        raise StoreConnectionError("cannot connect to PostGIS at postgresql://db: connection refused")

    monkeypatch.setattr(store, "ping", refused)
    r = client.get("/api/health")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ok"] is False and "busy" not in body and "cannot connect to PostGIS" in body["detail"]
