"""GET /api/sensors/rejects: the messages a feed refused, newest first, a page at a time, for those who may read."""

from __future__ import annotations

from datetime import datetime, timezone


def _reject(client, n: int) -> None:
    from cim.sensors import append_rejects

    st = client.app.state.twin_state
    at = datetime(2026, 7, 1, tzinfo=timezone.utc)
    with st.lock:
        append_rejects(st.store, [{"topic": f"rongtwin/sensors/RG{k:02d}", "payload": f'{{"value": {k}}}',
                                   "reason": f"reason {k}", "received_at": at} for k in range(n)])


def test_rejects_newest_first_a_page_at_a_time(client):
    assert client.get("/api/sensors/rejects").json() == {"rejects": [], "count": 0, "total": 0, "limit": 50,
                                                        "offset": 0}
    _reject(client, 5)
    body = client.get("/api/sensors/rejects", params={"limit": 2}).json()
    assert (body["count"], body["total"]) == (2, 5)
    assert body["rejects"][0] == {"topic": "rongtwin/sensors/RG04", "payload": '{"value": 4}', "reason": "reason 4",
                                  "received_at": "2026-07-01T00:00:00+00:00"}
    assert [r["reason"] for r in body["rejects"]] == ["reason 4", "reason 3"]
    body = client.get("/api/sensors/rejects", params={"limit": 2, "offset": 4}).json()
    assert [r["reason"] for r in body["rejects"]] == ["reason 0"] and body["total"] == 5
    assert client.get("/api/sensors/rejects", params={"offset": 9}).json()["rejects"] == []


def test_a_page_is_limited(client):
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "many"}):
        r = client.get("/api/sensors/rejects", params=params)
        assert r.status_code == 422, (params, r.text)


def test_rejects_need_the_right_to_read(city):
    from fastapi.testclient import TestClient

    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ("viewer", "sensor")}
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        assert c.get("/api/sensors/rejects").status_code == 401
        assert c.get("/api/sensors/rejects", headers={"Authorization": f"Bearer {tok['sensor']}"}).status_code == 403
        assert c.get("/api/sensors/rejects", headers={"Authorization": f"Bearer {tok['viewer']}"}).status_code == 200
