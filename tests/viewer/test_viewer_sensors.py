"""Readings into the map server (POST /api/sensors/readings), the alerts (GET /api/sensors/alerts), and who may
do which."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest


def _sensors(client) -> dict:
    return {f["properties"]["sensor_id"]: f["properties"] for f in client.get("/api/sensors/latest").json()["features"]}


def _ago(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).astimezone(
        timezone(timedelta(hours=8))).isoformat(timespec="seconds")


#: Beijing time: the offset the feeds send
CST = timezone(timedelta(hours=8))


def _post(client, readings, **kw):
    return client.post("/api/sensors/readings", json={"readings": readings}, **kw)


def test_readings_posted_are_stored_and_shown(client):
    # the server checks readings on the real clock (at most cim.sensors.MAX_AGE old), so the times are an hour
    # ago, not fixed dates: sent in Beijing time and in UTC ("Z"), stored as UTC ISO-8601 text
    t0 = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)
    t5 = t0 + timedelta(minutes=5)
    r = _post(client, [{"sensor_id": "RG01", "time": t0.astimezone(CST).isoformat(), "value": 12},
                       {"sensor_id": "RG01", "time": t5.astimezone(CST).isoformat(), "value": 55.5},
                       {"sensor_id": "RL01", "time": t5.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": 1.0}])
    assert r.status_code == 201, r.text
    assert r.json() == {"stored": 3, "already_stored": 0}
    p = _sensors(client)
    assert (p["RG01"]["value"], p["RG01"]["time"], p["RG01"]["status"], p["RG01"]["simulated"]) == (
        55.5, t5.isoformat(), "alarm", False)
    assert p["RL01"]["status"] == "ok" and p["RL02"]["simulated"] is True
    stored = client.app.state.twin_state.store.read_table("sensor_readings")
    assert stored["time"].tolist() == [t0.isoformat(), t5.isoformat(), t5.isoformat()]
    assert t5.isoformat().endswith("+00:00")
    assert _post(client, []).json() == {"stored": 0, "already_stored": 0}


#: a good reading: an hour before the real clock (the server refuses readings more than cim.sensors.MAX_AGE old
#: by the real clock, so a fixed date would be refused a year on)
GOOD = {"sensor_id": "RG01", "time": _ago(60), "value": 1.0}


@pytest.mark.parametrize("bad, words", [
    (dict(GOOD, sensor_id="NOPE"), ["row 1: unknown sensor 'NOPE'", "RG01"]),
    ({"sensor_id": "RG01", "time": "2026-07-01T08:00:00", "value": 1.0}, ["row 1: time", "has no offset", "+08:00"]),
    ({"sensor_id": "RG01", "time": "2099-07-01T08:00:00+08:00", "value": 1.0}, ["ahead of the clock"]),
    ({"sensor_id": "RG01", "time": "noon", "value": 1.0}, ["not an ISO-8601 instant"]),
    ({"sensor_id": "RG01", "time": "2026-07-01T08:00:00+08:00", "value": "12.5"}, ["row 1: value '12.5' (str) is not a number"]),
    ({"sensor_id": "RG01", "time": "2026-07-01T08:00:00+08:00", "value": True}, ["row 1: value True is a boolean"]),
    ({"sensor_id": "RG01", "time": "2026-07-01T08:00:00+08:00", "value": None}, ["row 1: value is missing"]),
    ({"sensor_id": "RG01", "time": 1782864000, "value": 1.0}, ["row 1: time must be ISO-8601 text"]),
    ({"sensor_id": "RG01", "value": 1.0}, ["row 1: missing time"]),
    ({"sensor_id": "RG01", "time": "2026-07-01T08:00:00+08:00", "value": 1.0, "unit": "mm"}, ["row 1: unexpected key(s) ['unit']"]),
    ({"sensor_id": "", "time": "2026-07-01T08:00:00+08:00", "value": 1.0}, ["row 1: sensor_id must be 1 to 200 characters"]),
])
def test_bad_readings_are_422_with_the_reason_and_nothing_is_stored(client, bad, words):
    r = _post(client, [GOOD, bad])
    assert r.status_code == 422, r.text
    body = r.json()
    for w in words:
        assert w in body["detail"], (w, body)
    assert "Traceback" not in r.text
    assert not client.app.state.twin_state.store.has_table("sensor_readings")  # the good one neither


def test_unknown_sensors_are_named(client):
    r = _post(client, [dict(GOOD, sensor_id=s) for s in ("X1", "RG01", "X2", "X1")])
    assert r.status_code == 422
    body = r.json()
    assert body["unknown_sensors"] == ["X1", "X2"]
    assert [p["index"] for p in body["problems"]] == [0, 2, 3]
    assert body["problems"][0]["reason"] == "unknown sensor 'X1'"
    assert "Unknown sensors: X1, X2" in body["detail"] and "refused 3 of 4 readings, nothing stored" in body["detail"]


@pytest.mark.parametrize("content", [b"not json", b'{"readings": {"sensor_id": "RG01"}}', b'[]', b'{"readings": [1]}',
                                     b'{"readings": [], "more": 1}',
                                     b'{"readings": [{"sensor_id": "RG01", "time": "%s", "value": NaN}]}'
                                     % GOOD["time"].encode()])
def test_malformed_bodies_are_422(client, content):
    r = client.post("/api/sensors/readings", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_at_most_10000_readings_per_request(client):
    t = datetime.now(timezone.utc) - timedelta(minutes=1)
    many = [{"sensor_id": "RG01", "time": (t - timedelta(seconds=k)).isoformat(timespec="seconds"),  # one a second:
             "value": float(k % 500)} for k in range(10_000)]  # one instant twice is a conflict; within 0-500 mm/h
    r = _post(client, many)
    assert r.status_code == 201 and r.json() == {"stored": 10_000, "already_stored": 0}
    r = _post(client, many + [many[0]])
    assert r.status_code == 422 and "at most 10000" in r.json()["detail"]
    r = client.post("/api/sensors/readings", content=b'{"readings": [' + b" " * (9 * 1024 * 1024) + b"]}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "at most 10000 readings" in r.json()["detail"]
    assert client.app.state.twin_state.store.count_rows("sensor_readings") == 10_000


def _stored_alerts(client) -> list[dict]:
    return [a for a in client.get("/api/sensors/alerts").json()["alerts"] if not a["simulated"]]


def test_alerts_list_the_sensors_in_warn_or_alarm_with_since_times(client):
    assert _stored_alerts(client) == []
    r = _post(client, [
        {"sensor_id": "RG01", "time": _ago(30), "value": 10.0},
        {"sensor_id": "RG01", "time": _ago(20), "value": 60.0},   # alarm from here
        {"sensor_id": "RG01", "time": _ago(10), "value": 70.0},
        {"sensor_id": "RL01", "time": _ago(25), "value": 1.9},    # warn from here
        {"sensor_id": "RL01", "time": _ago(5), "value": 2.0},
        {"sensor_id": "TC01", "time": _ago(5), "value": 1.0},     # ok
    ])
    assert r.status_code == 201, r.text
    stored = _stored_alerts(client)
    assert len(stored) == 2
    rg, rl = stored  # newest alert first: RG01 in alarm since 20 min ago, RL01 warned since 25 min
    assert (rg["sensor_id"], rg["status"], rg["value"], rg["threshold"]) == ("RG01", "alarm", 70.0, 50.0)
    assert (rl["sensor_id"], rl["status"], rl["value"], rl["threshold"]) == ("RL01", "warn", 2.0, 1.8)
    assert abs(datetime.fromisoformat(rg["since"]) - (datetime.now(timezone.utc) - timedelta(minutes=20))) < timedelta(minutes=1)
    assert abs(datetime.fromisoformat(rl["since"]) - (datetime.now(timezone.utc) - timedelta(minutes=25))) < timedelta(minutes=1)
    assert datetime.fromisoformat(rg["time"]) > datetime.fromisoformat(rg["since"])
    assert rg["unit"] == "mm/h" and rg["kind"] == "rain_gauge" and rg["name"].startswith("Rain gauge")
    assert 103 < rg["lon"] < 105 and 30 < rg["lat"] < 31
    feature = next(f for f in client.get("/api/sensors/latest").json()["features"] if f["properties"]["sensor_id"] == "RG01")
    assert feature["geometry"]["coordinates"] == pytest.approx([rg["lon"], rg["lat"]], abs=1e-6)
    # back below the threshold: off the list
    _post(client, [{"sensor_id": "RG01", "time": _ago(1), "value": 0.5}])
    assert [a["sensor_id"] for a in _stored_alerts(client)] == ["RL01"]


def test_the_alert_list_says_what_the_sensor_colours_say(client, monkeypatch):
    """With simulated readings (the demo's default) the map coloured a sensor orange or red from its simulated
    value while the alert list said all was well: simulated values never alerted."""
    import viewer.routers.sensors as sensors_router

    monkeypatch.setattr(sensors_router, "simulated_value", lambda sid, kind, t: 1e6 if sid.endswith("1") else 0.0)
    _post(client, [{"sensor_id": "RL02", "time": _ago(5), "value": 0.0}])  # a stored reading wins over simulation
    latest = client.get("/api/sensors/latest").json()["features"]
    coloured = {f["properties"]["sensor_id"]: f["properties"]["status"] for f in latest
                if f["properties"]["status"] in ("warn", "alarm")}
    listed = {a["sensor_id"]: a["status"] for a in client.get("/api/sensors/alerts").json()["alerts"]}
    assert coloured and listed == coloured
    alerts = client.get("/api/sensors/alerts").json()["alerts"]
    assert all(a["simulated"] and a["since"] is None for a in alerts)
    assert "RL02" not in listed


def test_roles_for_readings_and_alerts(city):
    from fastapi.testclient import TestClient

    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ("viewer", "planner", "sensor", "admin")}

    def h(role):
        return {"Authorization": f"Bearer {tok[role]}"}

    reading = [dict(GOOD)]
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        assert _post(c, reading).status_code == 401
        for role in ("viewer", "planner"):
            r = _post(c, reading, headers=h(role))
            assert r.status_code == 403 and "sensor or admin" in r.json()["detail"], r.text
        assert _post(c, reading, headers=h("sensor")).status_code == 201
        assert _post(c, reading, headers=h("admin")).status_code == 201
        # a feed sends readings and reads nothing
        assert c.get("/api/sensors/latest", headers=h("sensor")).status_code == 403
        assert c.get("/api/sensors/alerts", headers=h("sensor")).status_code == 403
        assert c.get("/api/layers", headers=h("sensor")).status_code == 403
        assert c.get("/api/whoami", headers=h("sensor")).json()["can"] == ["ingest"]
        assert "ingest" in c.get("/api/whoami", headers=h("admin")).json()["can"]
        assert c.get("/api/sensors/alerts").status_code == 401
        assert c.get("/api/sensors/alerts", headers=h("viewer")).status_code == 200
        # a write carries its token in the header, never in the URL
        r = c.post(f"/api/sensors/readings?access_token={tok['sensor']}", json={"readings": reading})
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"]
        # the caller is checked before the readings: without a token, bad readings are still a 401
        assert c.post("/api/sensors/readings", json={"readings": "junk"}).status_code == 401
    with open_store(city) as st:
        assert st.count_rows("sensor_readings") == 1  # the admin's is the sensor's reading again: not stored twice


def test_the_openapi_schema_documents_the_readings(shared_client):
    spec = shared_client.get("/openapi.json").json()
    post = spec["paths"]["/api/sensors/readings"]["post"]
    assert {"201", "413", "422"} <= set(post["responses"])
    body = json.dumps(spec["components"]["schemas"]["ReadingsIn"])
    assert '"maxItems": 10000' in body
    assert "/api/sensors/alerts" in spec["paths"]


def test_simulated_readings_have_the_sensor_kinds_resolution(shared_client):
    """The demo's simulated feed read 'Traffic counter 9 · 1410.918 veh/h' on the map: counters count whole
    vehicles and people, a rain gauge reads to 0.1 mm/h, a river gauge to the centimetre."""
    from viewer.routers.sensors import simulated_value

    decimals = {"traffic_counter": 0, "crowd_counter": 0, "air_quality": 0, "rain_gauge": 1, "river_level": 2}
    for kind, d in decimals.items():
        for t in range(0, 600, 7):
            v = simulated_value(f"S-{kind}-{t}", kind, float(t))
            assert round(v, d) == v, (kind, v)
    features = shared_client.get("/api/sensors/latest").json()["features"]
    seen = set()
    for f in features:
        p = f["properties"]
        if p["simulated"] and p["kind"] in decimals:
            assert round(p["value"], decimals[p["kind"]]) == p["value"], p
            seen.add(p["kind"])
    assert {"traffic_counter", "rain_gauge", "river_level"} <= seen, seen
