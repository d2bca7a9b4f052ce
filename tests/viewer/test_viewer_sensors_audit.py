"""The readings endpoint's body limit for a body without a length, and the feed states on the map's API."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest


def test_a_chunked_body_over_the_limit_is_413_before_it_is_read_whole(client):
    from viewer.routers.sensors import MAX_BODY

    sent = {"n": 0}

    def chunks():  # no Content-Length: the old check, on the header only, let 40 MB through to the JSON parser
        for _ in range(40):
            sent["n"] += 1
            yield b'{"readings": [' if sent["n"] == 1 else b" " * (1024 * 1024)
        yield b"]}"

    r = client.post("/api/sensors/readings", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "at most 10000 readings" in r.json()["detail"], r.text
    assert 40 * 1024 * 1024 > MAX_BODY  # (the old check let it through: valid JSON, 201 with nothing stored)
    # a chunked body under the limit is read as before
    t = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    body = b'{"readings": [{"sensor_id": "RG01", "time": "%s", "value": 3.5}]}' % t.encode()
    r = client.post("/api/sensors/readings", content=iter([body[:20], body[20:]]),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and r.json() == {"stored": 1, "already_stored": 0}, r.text


def test_feeds_show_each_listeners_state_and_a_killed_one_as_not_running(client):
    from cim.sensors import write_feed_status

    store = client.app.state.twin_state.store
    assert client.get("/api/sensors/feeds").json() == {"feeds": [], "count": 0, "problems": 0}
    now = datetime.now(timezone.utc)
    base = {"broker": "127.0.0.1:1883", "topic": "rongtwin/sensors/+", "detail": "", "since": now,
            "last_message_at": None, "received": 0, "stored": 0, "rejected": 0, "heartbeat_s": 10.0}
    write_feed_status(store, {**base, "feed": "a", "state": "live", "updated_at": now})
    write_feed_status(store, {**base, "feed": "b", "state": "silent", "updated_at": now,
                              "detail": "no message has arrived ... the broker may not let user 'x' read that topic"})
    write_feed_status(store, {**base, "feed": "c", "state": "live", "updated_at": now - timedelta(minutes=5)})
    write_feed_status(store, {**base, "feed": "d", "state": "stopped", "updated_at": now - timedelta(hours=1)})
    write_feed_status(store, {**base, "feed": "a", "state": "live", "updated_at": now, "received": 7})  # replaces
    body = client.get("/api/sensors/feeds").json()
    by = {f["feed"]: f for f in body["feeds"]}
    assert body["count"] == 4 and body["problems"] == 2
    assert [f["ok"] for f in body["feeds"]] == [False, False, False, True]  # problems first
    assert (by["a"]["state"], by["a"]["received"], by["a"]["ok"]) == ("live", 7, True)
    assert by["b"]["state"] == "silent" and "read that topic" in by["b"]["detail"]
    assert by["c"]["state"] == "not running"  # no heartbeat for 5 min
    assert by["d"]["state"] == "stopped"


@pytest.mark.parametrize("path", ["/api/sensors/feeds", "/api/sensors/rejects"])
def test_feeds_and_rejects_need_the_right_to_read(city, path):
    from fastapi.testclient import TestClient

    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ("viewer", "sensor")}
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": f"Bearer {tok['sensor']}"}).status_code == 403
        assert c.get(path, headers={"Authorization": f"Bearer {tok['viewer']}"}).status_code == 200
