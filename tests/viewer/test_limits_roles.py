"""A caller with a valid token but a role without the route's right is refused (403) before any of its body is
read, as one without a token is (401): the right is the route's own ``require(...)`` (:mod:`viewer.limits`)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.viewer.conftest import asgi_post

#: 16 MB, sent 256 kB at a time: over every body limit of the server under test (the largest is the sensor
#: readings' 8 MB; BIM uploads are limited to 1 MB + BODY_MARGIN here)
CHUNK, CHUNKS = 256 * 1024, 64


@pytest.fixture
def tokens(city):
    """The app of a city with a token of each role (so every request needs one), and the tokens by role."""
    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import ROLES, Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ROLES}
    with TestClient(create_app(Settings(store=city, max_upload_mb=1)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c, tok


def _stream():
    """An ASGI ``receive`` handing over a 16 MB body a chunk at a time, and what it handed over so far."""
    sent = {"chunks": 0}

    async def receive():
        sent["chunks"] += 1
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": sent["chunks"] < CHUNKS}

    return receive, sent


@pytest.mark.parametrize("path, role, right", [
    ("/api/sensors/readings", "viewer", "ingest"),   # route dependencies=[Depends(require("ingest"))]
    ("/api/sensors/readings", "planner", "ingest"),
    ("/api/bim/checks", "viewer", "bim"),            # a parameter: who = Depends(require("bim"))
    ("/api/bim/checks", "sensor", "bim"),
    ("/api/bookmarks", "sensor", "scenarios"),       # a parameter: who = Depends(require("scenarios"))
    ("/api/scenarios", "regulator", "scenarios"),
    ("/api/scenarios/x/edits", "viewer", "scenarios"),
    ("/api/jobs", "sensor", "simulate"),
])
def test_a_role_without_the_right_is_refused_before_the_body_is_read(tokens, path, role, right):
    """Before: the token was valid, so the whole body was read (and parsed, or refused 413 at the limit) before
    the route's require(...) said 403."""
    client, tok = tokens
    receive, sent = _stream()
    kind = "multipart/form-data; boundary=rongtwin" if path == "/api/bim/checks" else "application/json"
    status, body = asgi_post(client.app, path, {"authorization": f"Bearer {tok[role]}", "content-type": kind},
                             receive)
    detail = json.loads(body)["detail"]
    assert status == 403 and f"the role {role!r} may not do this ({right})" in detail, (status, body)
    assert sent["chunks"] == 0


@pytest.mark.parametrize("path, role", [("/api/sensors/readings", "sensor"), ("/api/sensors/readings", "admin"),
                                        ("/api/bookmarks", "planner")])
def test_a_role_with_the_right_has_its_body_read(tokens, path, role):
    """The early check lets the right role through: its body is read, and refused (413) only at the limit (a BIM
    upload of the right role: tests/viewer/test_bim_upload_limit.py)."""
    client, tok = tokens
    receive, sent = _stream()
    status, body = asgi_post(client.app, path, {"authorization": f"Bearer {tok[role]}",
                                                "content-type": "application/json"}, receive)
    assert status == 413 and "over the limit" in json.loads(body)["detail"], (status, body)
    assert 0 < sent["chunks"] < CHUNKS


def test_the_right_role_still_stores(tokens):
    from datetime import datetime, timedelta, timezone

    client, tok = tokens
    when = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="seconds")
    r = client.post("/api/sensors/readings", headers={"Authorization": f"Bearer {tok['sensor']}"},
                    json={"readings": [{"sensor_id": "RG01", "time": when, "value": 2.5}]})
    assert r.status_code == 201 and r.json() == {"stored": 1, "already_stored": 0}, r.text
    r = client.post("/api/sensors/readings", headers={"Authorization": f"Bearer {tok['viewer']}"},
                    json={"readings": [{"sensor_id": "RG01", "time": when, "value": 2.5}]})
    assert r.status_code == 403, r.text


def test_with_auth_off_anyone_may_post(city):
    """auth="off": every caller is the local admin, as before; no token is asked for, no role refused."""
    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        viewer = create_token(st, "viewer")
    view = {"longitude": 104.06, "latitude": 30.66, "zoom": 15, "pitch": 0, "bearing": 0}
    with TestClient(create_app(Settings(store=city, auth="off")), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as client:
        assert client.post("/api/bookmarks", json={"name": "a", "view": view}).status_code == 201
        r = client.post("/api/bookmarks", headers={"Authorization": f"Bearer {viewer}"}, json={"name": "b", "view": view})
        assert r.status_code == 201, r.text


def test_every_route_with_a_body_checks_its_right_first():
    """Each route that takes a body has its right found among its dependencies (none written out by hand)."""
    from viewer.limits import _required_rights
    from viewer.routers import ROUTERS

    for router in ROUTERS:
        for route in router.routes:
            if set(getattr(route, "methods", ()) or ()) & {"POST", "PUT", "PATCH"}:
                assert _required_rights(route.dependant), route.path


def test_the_token_is_checked_once_per_request(tokens, monkeypatch):
    """The early check keeps the caller it found; the route's require(...) takes it from there (the token's
    format, SHA-256 and record were looked up twice per POST before)."""
    import viewer.dependencies as deps

    client, tok = tokens
    calls = []
    real = deps.token_status
    monkeypatch.setattr(deps, "token_status", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = client.post("/api/bookmarks", headers={"Authorization": f"Bearer {tok['planner']}"},
                    json={"name": "once", "view": {"longitude": 104.06, "latitude": 30.66, "zoom": 12}})
    assert r.status_code == 201, r.text
    assert len(calls) == 1
    calls.clear()
    assert client.get("/api/bookmarks", headers={"Authorization": f"Bearer {tok['viewer']}"}).status_code == 200
    assert len(calls) == 1  # a GET has no early check: its dependency looks the token up, once
