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


def test_a_page_counts_the_rejects_once(client, monkeypatch):
    """The total and the page came from two counts of the table (count_rejects, then again in read_rejects)."""
    from cim.sensors import REJECTS
    from tests.cim.test_sensors_rejects_count import _counting

    _reject(client, 5)
    counted = _counting(client.app.state.twin_state.store, monkeypatch)
    body = client.get("/api/sensors/rejects", params={"limit": 2, "offset": 1}).json()
    assert [r["reason"] for r in body["rejects"]] == ["reason 3", "reason 2"] and body["total"] == 5
    assert counted == [REJECTS]
