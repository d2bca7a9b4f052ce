"""POST /api/sensors/readings parses its body once (a key named twice is refused by that one parse), and the
readings routes share the body limit of the BIM upload (:mod:`viewer.limits`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone


def _now() -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="seconds")


def test_the_body_is_parsed_once(client, monkeypatch):
    body = json.dumps({"readings": [{"sensor_id": "RG01", "time": _now(), "value": 3.5}]}).encode()
    parsed = []
    real = json.loads

    def counting(s, *a, **kw):
        if s == body:
            parsed.append(kw.get("object_pairs_hook"))
        return real(s, *a, **kw)

    monkeypatch.setattr(json, "loads", counting)
    r = client.post("/api/sensors/readings", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and r.json() == {"stored": 1, "already_stored": 0}, r.text
    # once, with the check for keys named twice (before: once for that check, once more by FastAPI)
    from cim.sensors import unique_keys

    assert parsed == [unique_keys]


def test_a_key_named_twice_deep_in_a_reading_is_refused(client):
    text = '{"readings": [{"sensor_id": "RG01", "sensor_id": "RL01", "time": "%s", "value": 1}]}' % _now()
    r = client.post("/api/sensors/readings", content=text.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "'sensor_id' more than once" in r.json()["detail"], r.text
    assert not client.app.state.twin_state.store.has_table("sensor_readings")


def test_a_declared_length_over_the_limit_is_413_before_any_of_it_is_read(client):
    """Straight to the app (ASGI), counting what the server asks for: nothing past the header."""
    from tests.viewer.conftest import asgi_post
    from viewer.routers.sensors import MAX_BODY

    asked = {"n": 0}

    async def receive():
        asked["n"] += 1
        return {"type": "http.request", "body": b" " * 1024, "more_body": True}

    status, body = asgi_post(client.app, "/api/sensors/readings", {"content-type": "application/json",
                                                                    "content-length": str(MAX_BODY + 1)}, receive)
    assert status == 413 and "at most 10000 readings" in json.loads(body)["detail"], (status, body)
    assert asked["n"] == 0


def test_the_read_routes_are_untouched_by_the_limit(client):
    assert client.get("/api/sensors/latest").status_code == 200
    assert client.get("/api/sensors/alerts").status_code == 200


def test_a_post_asks_once_whether_the_readings_table_is_there(client, monkeypatch):
    """Storing into the existing table asked has_table twice per POST: once to append, once more to look for
    its index."""
    from cim.sensors import READINGS, has_readings_index

    def post(value):  # each at an instant of its own (one sensor, one instant, two values is a conflict)
        at = (datetime.now(timezone.utc) - timedelta(minutes=1, seconds=value)).isoformat()
        r = client.post("/api/sensors/readings", json={"readings": [{"sensor_id": "RG01", "time": at,
                                                                     "value": value}]})
        assert r.status_code == 201 and r.json() == {"stored": 1, "already_stored": 0}, r.text

    post(1.0)  # makes the table and its index
    store = client.app.state.twin_state.store
    asked, real = [], store.has_table

    def has_table(name):
        if name == READINGS:
            asked.append(name)
        return real(name)

    monkeypatch.setattr(store, "has_table", has_table)
    post(2.0)
    assert asked == [READINGS]
    assert has_readings_index(store)
