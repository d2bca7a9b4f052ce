"""fix_ops: the measured-rain flood counts the newest reading and refuses rain hours old; job parameters are
checked when posted (422), design-storm options beside rain_from_sensors are refused, a scenario with a job
queued or running on it is not deleted (409), and a body that is not JSON says what to send."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest


def _wait_job(client, job: dict, timeout: float = 300) -> dict:
    end = time.monotonic() + timeout
    while True:
        st = client.get(f"/api/jobs/{job['id']}").json()
        if st["status"] in ("done", "failed", "cancelled") or time.monotonic() > end:
            return st
        time.sleep(0.1)


def _post_readings(client, rows):
    r = client.post("/api/sensors/readings", json={"readings": rows})
    assert r.status_code in (200, 201), r.text


def test_measured_rain_counts_the_newest_reading(client):
    # 60, 25, 30, 100 mm/h every 5 min up to a minute ago: a 15-min window ends where the 100 mm/h reading stops
    # holding (5 min after it), so it counts: (25 + 30 + 100) x 5 / 60 mm. It ended at the newest reading's time,
    # which then counted for nothing: (60 + 25 + 30) x 5 / 60 = 9.58 mm
    last = (datetime.now(timezone.utc) - timedelta(minutes=1)).replace(second=0, microsecond=0)
    _post_readings(client, [{"sensor_id": "RG01", "time": (last - timedelta(minutes=5 * k)).isoformat(), "value": v}
                            for k, v in ((3, 60.0), (2, 25.0), (1, 30.0), (0, 100.0))])
    r = client.post("/api/jobs", json={"engine": "flood", "run": "meas4", "params": {
        "rain_from_sensors": "15min", "rain_gaps": "dry", "until": "20min"}})
    assert r.status_code == 202, r.text
    st = _wait_job(client, r.json())
    assert st["status"] == "done", st
    storm = st["summary"]["storm"]
    assert storm["total_mm"] == pytest.approx((25 + 30 + 100) * 5 / 60)
    assert storm["end"] == (last + timedelta(minutes=5)).isoformat()
    assert storm["start"] == (last - timedelta(minutes=10)).isoformat()


def test_measured_rain_hours_old_is_refused_unless_its_end_is_given(client):
    # the latest reading 8.5 h old: the window ran on rain of the morning without a word
    last = (datetime.now(timezone.utc) - timedelta(hours=8, minutes=30)).replace(second=0, microsecond=0)
    _post_readings(client, [{"sensor_id": "RG01", "time": (last - timedelta(minutes=5 * k)).isoformat(),
                             "value": 20.0} for k in range(24)])
    r = client.post("/api/jobs", json={"engine": "flood", "params": {"rain_from_sensors": "2h", "rain_gaps": "dry"}})
    assert r.status_code == 422, r.text
    msg = r.json()["detail"]
    assert "8.5 h old" in msg and "RG01" in msg and "rain_until" in msg, msg
    # the same window on purpose: an explicit end runs
    end = (last + timedelta(minutes=5)).isoformat()
    r = client.post("/api/jobs", json={"engine": "flood", "params": {
        "rain_from_sensors": "30min", "rain_until": end, "until": "30min"}})
    assert r.status_code == 202, r.text
    st = _wait_job(client, r.json())
    assert st["status"] == "done" and st["summary"]["storm"]["total_mm"] == pytest.approx(10.0), st


@pytest.mark.parametrize("params,words", [
    ({"engine": "flood", "params": {"storm": "50y", "duration": None}}, ["duration=None", "leave it out"]),
    ({"engine": "flood", "params": {"storm": None}}, ["storm=None"]),
    ({"engine": "flood", "params": {"rain_from_sensors": "2h", "storm": "100y", "duration": "30min"}},
     ["storm, duration", "rain_from_sensors", "leave them out"]),
    ({"engine": "flood", "params": {"rain_from_sensors": "2h", "duration": "1h"}}, ["duration", "leave it out"]),
    ({"engine": "flood", "params": {"rain_until": "2026-07-01T10:00:00+08:00"}}, ["rain_until without"]),
    ({"engine": "flood", "params": {"rain_from_sensors": "2h", "rain_until": "yesterday"}}, ["rain_until="]),
    ({"engine": "crowd", "params": {"area": "A999", "agents": 100}}, ["area='A999'", "A001"]),
    ({"engine": "crowd", "params": {"area": "A001", "agents": -5}}, ["agents=-5", "at least 1"]),
    ({"engine": "crowd", "params": {"area": "A001", "agents": 1e12}}, ["at most 1,000,000"]),
    ({"engine": "crowd", "params": {"area": "A001", "agents": True}}, ["agents=True", "whole number"]),
    ({"engine": "crowd", "params": {"area": "A001", "agents": 50.7}}, ["agents=50.7", "whole number"]),
    ({"engine": "crowd", "params": {"area": "A001"}}, ["needs agents"]),
    ({"engine": "crowd", "params": {"area": "A001", "agents": 10, "density": 1.0}}, ["not both"]),
    ({"engine": "crowd", "params": {"area": "A001", "density": 50}}, ["density", "at most 6"]),
    ({"engine": "crowd", "params": {"agents": 10}}, ["needs area"]),
    ({"engine": "access", "params": {"drive_kmh": "fast"}}, ["drive_kmh", "km/h"]),
    ({"engine": "access", "params": {"drive_kmh": 0}}, ["drive_kmh", "number > 0"]),
])
def test_bad_job_parameters_are_refused_when_posted(shared_client, params, words):
    jobs = shared_client.get("/api/jobs").json()
    r = shared_client.post("/api/jobs", json=params)
    assert r.status_code == 422, r.text
    for w in words:
        assert w in r.json()["detail"], (w, r.json()["detail"])
    assert len(shared_client.get("/api/jobs").json()) == len(jobs)  # nothing queued


def test_a_good_crowd_job_is_still_taken(shared_client):
    r = shared_client.post("/api/jobs", json={"engine": "crowd", "params": {"area": "A001", "agents": 20,
                                                                             "until": "30s"}})
    assert r.status_code == 202, r.text
    r = shared_client.post("/api/jobs", json={"engine": "crowd", "params": {"area": "A001", "agents": 20.0,
                                                                             "until": "30s", "save": False}})
    assert r.status_code == 202, r.text  # a whole number written as 20.0 is 20 people


def test_scenario_with_a_job_on_it_is_not_deleted(client):
    # the sample city has a scenario 'levee'
    r = client.post("/api/jobs", json={"engine": "flood", "scenario": "levee", "params": {
        "storm": "50y", "duration": "7d", "snapshot_interval": "1d"}})
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    r = client.delete("/api/scenarios/levee")
    assert r.status_code == 409, r.text
    assert jid in r.json()["detail"] and "cancel" in r.json()["detail"]
    assert client.get("/api/scenarios/levee").status_code == 200  # still there
    client.delete(f"/api/jobs/{jid}")
    st = _wait_job(client, {"id": jid}, 30)
    assert st["status"] in ("cancelled", "failed", "done"), st
    r = client.delete("/api/scenarios/levee")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/api/jobs", "/api/scenarios"])
def test_a_body_not_sent_as_json_says_what_to_send(shared_client, path):
    body = '{"engine": "flood", "params": {}}' if path == "/api/jobs" else '{"name": "x1"}'
    r = shared_client.post(path, content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"], r.text
    r = shared_client.post(path, data={"engine": "flood"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"], r.text
    r = shared_client.post(path, content="{bad", headers={"Content-Type": "application/json"})
    d = r.json()["detail"]
    assert r.status_code == 422 and "not valid JSON" in d and "at character 1" in d, d
    assert "1: JSON decode error" not in d


def test_an_oversize_new_scenario_is_not_called_an_edit(shared_client):
    from viewer.routers.scenarios import EDIT_BODY

    r = shared_client.post("/api/scenarios", content=b'{"name": "big", "description": "' + b"x" * (EDIT_BODY + 10)
                           + b'"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    d = r.json()["detail"]
    assert "the edit is" not in d and "POST /api/scenarios/NAME/edits" in d, d


def test_a_scenario_name_that_reads_as_another_is_refused(client):
    # the sample city has 'levee': 'Levee', 'LEVEE' and 'lеvee' (a Cyrillic е) were taken beside it
    for name in ("Levee", "LEVEE", "l\u0435vee", "ｌｅｖｅｅ"):
        r = client.post("/api/scenarios", json={"name": name})
        assert r.status_code == 409, (name, r.text)
        assert "reads as the existing scenario 'levee'" in r.json()["detail"], r.text
    assert client.post("/api/scenarios", json={"name": "levee_2"}).status_code in (200, 201)
