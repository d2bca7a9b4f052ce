"""POST /api/sensors/readings refuses implausible readings (out of the sensor's range, more than a year old) and a
body that names a key twice: 422 with the reason, nothing stored."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest


def _now(minutes: float = 0.0) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat(timespec="seconds")


def _stored(client) -> bool:
    return client.app.state.twin_state.store.has_table("sensor_readings")


def test_the_sample_sensors_carry_their_range(client):
    p = {f["properties"]["sensor_id"]: f["properties"] for f in client.get("/api/sensors/latest").json()["features"]}
    assert (p["RG01"]["min_value"], p["RG01"]["max_value"]) == (0.0, 500.0)
    assert (p["RL01"]["min_value"], p["RL01"]["max_value"]) == (0.0, 15.0)
    tc = [v for k, v in p.items() if k.startswith("TC")]
    assert tc and all(v["min_value"] == 0.0 and v["max_value"] > v["alarm_threshold"] for v in tc)


@pytest.mark.parametrize("sid, value, time, words", [
    ("RG01", 1e308, None, ["row 1: value 1e+308 mm/h is above 500 mm/h", "RG01"]),
    ("RG01", -5, None, ["row 1: value -5 mm/h is below 0 mm/h", "RG01"]),
    ("RL01", 16.0, None, ["row 1: value 16 m is above 15 m", "RL01's max_value"]),
    ("RG01", 1.0, "1900-01-01T00:00:00+08:00", ["row 1: time", "more than 365.0 days old", "oldest="]),
])
def test_implausible_readings_are_422_naming_them(client, sid, value, time, words):
    body = {"readings": [{"sensor_id": "RG01", "time": _now(5), "value": 12.5},
                         {"sensor_id": sid, "time": time or _now(), "value": value}]}
    r = client.post("/api/sensors/readings", json=body)
    assert r.status_code == 422, r.text
    got = r.json()
    for w in words:
        assert w in got["detail"], (w, got)
    assert [p["index"] for p in got["problems"]] == [1]
    assert not _stored(client)


@pytest.mark.parametrize("text", [
    '{"readings": [{"sensor_id": "RG01", "time": "%s", "value": 1, "value": 2}]}',
    '{"readings": [{"sensor_id": "RG01", "time": "%s", "value": 1}], "readings": []}',
])
def test_a_key_named_twice_is_422_and_nothing_is_stored(client, text):
    r = client.post("/api/sensors/readings", content=(text % _now()).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "more than once" in r.json()["detail"] and "Traceback" not in r.text
    assert not _stored(client)


def test_a_plausible_batch_sent_as_raw_json_is_stored(client):
    text = json.dumps({"readings": [{"sensor_id": "RG01", "time": _now(), "value": 499.9},
                                    {"sensor_id": "RL01", "time": _now(), "value": 0.0}]})
    r = client.post("/api/sensors/readings", content=text.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json() == {"stored": 2, "already_stored": 0}
    # a body that is not JSON is still FastAPI's own refusal
    r = client.post("/api/sensors/readings", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text
