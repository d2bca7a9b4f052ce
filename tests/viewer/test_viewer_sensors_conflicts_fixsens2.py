"""POST /api/sensors/readings: a reading is a fact. A second value for a stored sensor and time (or two values at
one instant in one batch) is refused, 422, naming the pairs, and the stored alarm stands; the same reading again
is a re-send, 201, counted as already stored and not stored twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def _post(client, readings):
    return client.post("/api/sensors/readings", json={"readings": readings})


def _at(minutes_ago: float = 10.0) -> datetime:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).replace(microsecond=0)


def _alarm(client, sid):
    return next(((a["status"], a["value"]) for a in client.get("/api/sensors/alerts").json()["alerts"]
                 if a["sensor_id"] == sid), None)


def test_a_later_value_at_the_same_instant_does_not_clear_an_alarm(client):
    t = _at()
    cst = t.astimezone(timezone(timedelta(hours=8))).isoformat()
    r = _post(client, [{"sensor_id": "RL02", "time": cst, "value": 2.5}])
    assert r.status_code == 201 and r.json() == {"stored": 1, "already_stored": 0}, r.text
    assert _alarm(client, "RL02") == ("alarm", 2.5)
    r = _post(client, [{"sensor_id": "RL02", "time": cst, "value": 0.2}])
    assert r.status_code == 422, r.text
    body = r.json()
    assert f"RL02 at {t.isoformat()}: value 0.2 conflicts with 2.5 already stored" in body["detail"]
    assert body["conflicts"] == [{"index": 0, "sensor_id": "RL02", "time": t.isoformat(), "value": 0.2,
                                  "other_value": 2.5, "other": "stored"}]
    assert _alarm(client, "RL02") == ("alarm", 2.5)
    # the same reading again (the sender retrying, here in UTC) is accepted and not stored twice
    r = _post(client, [{"sensor_id": "RL02", "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": 2.5}])
    assert r.status_code == 201 and r.json() == {"stored": 0, "already_stored": 1}, r.text
    assert client.app.state.twin_state.store.count_rows("sensor_readings") == 1


def test_two_values_at_one_instant_in_a_batch_are_refused_whole(client):
    t = _at().isoformat()
    r = _post(client, [{"sensor_id": "RL01", "time": t, "value": 1.0}, {"sensor_id": "RG01", "time": t, "value": 3.0},
                       {"sensor_id": "RG01", "time": t, "value": 30.0}])
    assert r.status_code == 422, r.text
    assert [p["index"] for p in r.json()["problems"]] == [2]
    assert r.json()["conflicts"][0]["other"] == 1 and "in row 1 of this batch" in r.json()["detail"]
    assert not client.app.state.twin_state.store.has_table("sensor_readings")


def test_ten_thousand_readings_of_one_sensor_at_one_instant(client):
    t = _at().isoformat()
    r = _post(client, [{"sensor_id": "TC01", "time": t, "value": float(k % 500)} for k in range(10_000)])
    assert r.status_code == 422 and "refused 9980 of 10000 readings" in r.json()["detail"], r.text[:300]
    assert not client.app.state.twin_state.store.has_table("sensor_readings")
    r = _post(client, [{"sensor_id": "TC01", "time": t, "value": 120.0}] * 10_000)
    assert r.status_code == 201 and r.json() == {"stored": 1, "already_stored": 9999}, r.text
