"""fix_ops: a silent sensor whose last reading was ok, or one that never reported, is in the alert list (level
"stale", since = when it became stale), not only a grey dot; "since" of a stale alert is when it went stale."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


def _ago(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


def test_a_silent_sensor_whose_last_reading_was_ok_is_listed_stale(client):
    r = client.post("/api/sensors/readings", json={"readings": [
        {"sensor_id": "RG01", "time": _ago(40), "value": 1.0},   # ok, then nothing for 40 min
        {"sensor_id": "RL01", "time": _ago(1), "value": 2.0},    # a live warning
        {"sensor_id": "TC01", "time": _ago(1), "value": 1.0},    # ok and live: not listed
        {"sensor_id": "RL02", "time": _ago(30), "value": 2.5},   # alarm, then silent
    ]})
    assert r.status_code == 201, r.text
    body = client.get("/api/sensors/alerts").json()
    stored = [a for a in body["alerts"] if not a["simulated"]]
    assert [(a["sensor_id"], a["level"], a["stale"]) for a in stored] == [
        ("RL01", "warn", False), ("RL02", "stale", True), ("RG01", "stale", True)]
    rg = stored[2]
    assert rg["value"] == 1.0  # the last reading, and its time
    assert abs(datetime.fromisoformat(rg["time"]) - datetime.fromisoformat(_ago(40))) < timedelta(seconds=30)
    went = datetime.fromisoformat(rg["stale_since"])
    assert went - datetime.fromisoformat(rg["time"]) == timedelta(minutes=15) and rg["since"] == rg["stale_since"]
    assert rg["last_status"] == "ok" and rg["kind"] == "rain_gauge" and rg["name"]
    rl2 = stored[1]  # a stale alarm keeps its status and when its alarm began; it says when it went stale
    assert rl2["status"] == "alarm" and datetime.fromisoformat(rl2["stale_since"]) - \
        datetime.fromisoformat(rl2["time"]) == timedelta(minutes=15)
    assert body["stale"] == 2 and "TC01" not in [a["sensor_id"] for a in stored]


def test_a_sensor_that_never_reported_is_listed_once_the_server_has_waited(city, monkeypatch):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, prewarm=False, simulated_sensors=False)),
                    base_url="http://127.0.0.1") as c:
        assert c.get("/api/sensors/alerts").json()["count"] == 0  # just started: nothing is known yet
        started = time.time() - 3600
        monkeypatch.setattr(c.app.state.twin_state.jobs, "started", started)
        r = c.post("/api/sensors/readings", json={"readings": [{"sensor_id": "RG01", "time": _ago(1), "value": 1.0}]})
        assert r.status_code == 201, r.text
        alerts = c.get("/api/sensors/alerts").json()["alerts"]
        ids = [a["sensor_id"] for a in alerts]
        assert "RG01" not in ids and ids  # live and ok
        a = alerts[0]
        assert a["never_reported"] is True and a["stale"] is True and a["level"] == "stale"
        assert a["time"] is None and a["value"] is None
        assert datetime.fromisoformat(a["since"]).timestamp() == int(started + 900)
