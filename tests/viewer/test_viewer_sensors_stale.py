"""Stale readings on the map's API: a sensor that went offline while in alarm showed alarm for ever. A stored
reading older than its kind allows (viewer.routers.sensors.stale_after_s, 15 min by default) is marked
``stale`` in /api/sensors/latest and /api/sensors/alerts, and stale alerts follow the live ones. And how long
each feed has been in its state (/api/sensors/feeds ``for_s``), for the map's banner."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def _ago(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat(timespec="seconds")


def _post(client, readings):
    r = client.post("/api/sensors/readings", json={"readings": readings})
    assert r.status_code == 201, r.text


def test_a_reading_older_than_its_kind_allows_is_stale_not_a_live_alarm(client, monkeypatch):
    import viewer.routers.sensors as sensors_router

    assert sensors_router.stale_after_s("rain_gauge") == sensors_router.DEFAULT_STALE_AFTER_S == 900
    _post(client, [
        {"sensor_id": "RL01", "time": _ago(40), "value": 2.0},   # warn since 40 min, still now: live
        {"sensor_id": "RL01", "time": _ago(1), "value": 2.1},
        {"sensor_id": "RG01", "time": _ago(20), "value": 80.0},  # alarm 20 min ago, then nothing: stale
    ])
    body = client.get("/api/sensors/alerts").json()
    stored = [a for a in body["alerts"] if not a["simulated"]]
    # newest alert first would put RG01 (since 20 min) above RL01 (since 40 min): a live one comes first
    assert [(a["sensor_id"], a["status"], a["stale"]) for a in stored] == [("RL01", "warn", False),
                                                                          ("RG01", "alarm", True)]
    assert stored[1]["stale_after_s"] == 900 and stored[1]["value"] == 80.0
    assert body["stale"] == 1
    assert all(not a["stale"] for a in body["alerts"] if a["simulated"])  # a simulated reading is now
    props = {f["properties"]["sensor_id"]: f["properties"] for f in client.get("/api/sensors/latest").json()["features"]}
    assert props["RG01"]["stale"] is True and props["RG01"]["status"] == "alarm"
    assert props["RL01"]["stale"] is False and props["TC01"]["stale"] is False
    assert props["RG01"]["stale_after_s"] == 900
    # the threshold is per kind, in one place: rain gauges that may keep quiet for an hour are live again
    monkeypatch.setitem(sensors_router.STALE_AFTER_S, "rain_gauge", 3600)
    stored = [a for a in client.get("/api/sensors/alerts").json()["alerts"] if not a["simulated"]]
    assert [(a["sensor_id"], a["stale"]) for a in stored] == [("RG01", False), ("RL01", False)]
    monkeypatch.undo()
    # a fresh reading in alarm: live again
    _post(client, [{"sensor_id": "RG01", "time": _ago(0.5), "value": 75.0}])
    stored = {a["sensor_id"]: a for a in client.get("/api/sensors/alerts").json()["alerts"] if not a["simulated"]}
    assert stored["RG01"]["stale"] is False and stored["RG01"]["status"] == "alarm"


def test_feeds_say_how_long_each_has_been_in_its_state(client):
    from cim.sensors import write_feed_status

    store = client.app.state.twin_state.store
    now = datetime.now(timezone.utc)
    base = {"broker": "127.0.0.1:1883", "topic": "rongtwin/sensors/+", "detail": "", "received": 0, "stored": 0,
            "rejected": 0, "heartbeat_s": 10.0, "updated_at": now}
    write_feed_status(store, {**base, "feed": "quiet", "state": "silent", "since": now - timedelta(minutes=2),
                              "last_message_at": now - timedelta(minutes=10)})
    write_feed_status(store, {**base, "feed": "away", "state": "disconnected", "since": now - timedelta(minutes=3),
                              "last_message_at": None})
    write_feed_status(store, {**base, "feed": "gone", "state": "live", "since": now - timedelta(hours=1),
                              "last_message_at": None, "updated_at": now - timedelta(minutes=5)})
    by = {f["feed"]: f for f in client.get("/api/sensors/feeds").json()["feeds"]}
    assert abs(by["quiet"]["for_s"] - 600) < 30  # silent since its last message
    assert abs(by["away"]["for_s"] - 180) < 30
    assert by["gone"]["state"] == "not running" and abs(by["gone"]["for_s"] - 300) < 30  # since its last word
