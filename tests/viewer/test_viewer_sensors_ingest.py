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
    assert r.status_code == 201 and r.json() == {"stored": 1}, r.text
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
    import asyncio

    from viewer.routers.sensors import MAX_BODY

    asked = {"n": 0}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/sensors/readings", "raw_path": b"/api/sensors/readings", "root_path": "",
             "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {},
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(MAX_BODY + 1).encode())]}
    out = {"status": None, "body": b""}

    async def receive():
        asked["n"] += 1
        return {"type": "http.request", "body": b" " * 1024, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.run(client.app(scope, receive, send))
    assert out["status"] == 413 and "at most 10000 readings" in json.loads(out["body"])["detail"], out
    assert asked["n"] == 0


def test_the_read_routes_are_untouched_by_the_limit(client):
    assert client.get("/api/sensors/latest").status_code == 200
    assert client.get("/api/sensors/alerts").status_code == 200
