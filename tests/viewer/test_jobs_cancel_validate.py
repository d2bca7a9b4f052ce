"""Jobs: a long flood job stops soon after a cancel or a shutdown and the queue moves on; bad parameters are
refused at submit (4xx with the reason), never queued to fail; clear messages for a bad body, an unknown
engine and a run id (review2, items 2 and 8)."""

from __future__ import annotations

import time

import pytest

LONG = {"engine": "flood", "params": {"storm": "50y", "duration": "7d", "snapshot_interval": "1d"}}


def _quick(twin, *, scenario, run, params, progress):
    progress(1, 1)
    twin.save_result(scenario, run, "quick", {"ok": True})
    return {"ok": True}


def _wait(client, jid: str, statuses, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while True:
        st = client.get(f"/api/jobs/{jid}").json()
        if st["status"] in statuses or time.monotonic() > end:
            return st
        time.sleep(0.05)


def _running_long_job(client) -> dict:
    r = client.post("/api/jobs", json=LONG)
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["id"], ("running", "failed", "done"), 30)
    assert job["status"] == "running", job
    time.sleep(2.0)  # past the inputs, into the engine's time loop (a week of it: many minutes of work)
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "running"
    return job


def test_cancelled_long_flood_job_stops_within_seconds_and_the_queue_moves_on(client):
    """A cancel was seen only at the flood engine's next 1 % report: minutes for a long run (99999h never
    stopped), and the job queued behind it never started."""
    client.app.state.twin_state.jobs.register("quick", _quick)
    job = _running_long_job(client)
    nxt = client.post("/api/jobs", json={"engine": "quick", "run": "after-the-flood"}).json()
    assert nxt["status"] == "queued"
    t0 = time.monotonic()
    r = client.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["message"] == "cancelling"
    st = _wait(client, job["id"], ("cancelled", "failed", "done"), 10)
    took = time.monotonic() - t0
    assert st["status"] == "cancelled" and st["message"] == "cancelled by request", st
    assert took < 2.5, took
    assert _wait(client, nxt["id"], ("done", "failed"), 10)["status"] == "done"
    assert nxt["run"] == "after-the-flood"


def test_shutdown_cancels_a_running_job_and_returns_promptly(client):
    """The server's shutdown waited for the running job (pool.shutdown(wait=True)): a SIGTERM did not stop it."""
    client.app.state.twin_state.jobs.register("quick", _quick)
    job = _running_long_job(client)
    queued = client.post("/api/jobs", json={"engine": "quick"}).json()
    t0 = time.monotonic()
    assert client.app.state.twin_state.jobs.shutdown(timeout=10) is True
    assert time.monotonic() - t0 < 3
    st = client.get(f"/api/jobs/{job['id']}").json()
    assert st["status"] == "cancelled" and "shutting down" in st["message"], st
    st = client.get(f"/api/jobs/{queued['id']}").json()
    assert st["status"] == "cancelled" and "shutting down" in st["message"], st


@pytest.mark.parametrize("params, words", [
    ({"storm": "50y", "duration": "99999h"}, "duration='99999h' is 4167 days; a flood run takes at most 7 days"),
    ({"storm": "50y", "duration": 1e308}, "a flood run takes at most 7 days"),
    ({"storm": "50y", "duration": "1h", "until": "30d"}, "until='30d' is 30 days"),
    ({"storm": "500y", "duration": "1h"}, "outside the storm formula's range (1 to 100 years"),
])
def test_flood_job_params_the_run_would_refuse_are_refused_at_submit(client, params, words):
    r = client.post("/api/jobs", json={"engine": "flood", "params": params})
    assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert client.get("/api/jobs").json() == []  # nothing queued to fail later


def test_flooded_by_must_name_a_flood_run_of_the_scenario(client):
    twin = client.app.state.twin_state.twin
    twin.save_result("base", "asg-base", "summary", {"trips": 1}, meta={"engine": "simulation.traffic"})
    twin.save_result("levee", "storm-l", "summary", {"max_depth_m": 0.1}, meta={"engine": "simulation.flood"})
    for engine in ("traffic", "access"):
        r = client.post("/api/jobs", json={"engine": engine, "params": {"flooded_by": "nosuch"}})
        assert r.status_code == 422, r.text
        assert "flooded_by: no flood run 'nosuch' under scenario 'base'" in r.json()["detail"]
    r = client.post("/api/jobs", json={"engine": "traffic", "params": {"flooded_by": "asg-base"}})
    assert r.status_code == 422 and "run 'asg-base' under scenario 'base' is traffic run, not a flood run" \
        in r.json()["detail"], r.text
    r = client.post("/api/jobs", json={"engine": "traffic", "params": {"flooded_by": "storm-l"}})
    assert r.status_code == 422 and "(it is under ['levee']: run the traffic job on that scenario)" \
        in r.json()["detail"], r.text
    assert client.get("/api/jobs").json() == []


def test_bad_json_body_says_what_a_job_request_is(client):
    r = client.post("/api/jobs", content=b"{engine: flood", headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert d.startswith("the request body is not valid JSON") and '"engine"' in d and '"params"' in d
    assert '{"engine": "flood"' in d  # an example
    r = client.post("/api/jobs", json=["flood"])
    assert r.status_code == 422 and "must be a JSON object with \"engine\"" in r.json()["detail"], r.text
    r = client.post("/api/jobs", json={"params": {}})
    assert r.status_code == 422 and "engine: missing; give one of [" in r.json()["detail"], r.text


def test_a_misspelt_field_is_refused_not_dropped(client):
    # {"parms": ...} was dropped and the flood ran with its default storm and duration, not the 100-year one asked
    r = client.post("/api/jobs", json={"engine": "flood", "parms": {"storm": "100y"}})
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert d.startswith("unknown field 'parms' in the job request") and "inside \"params\"" in d
    assert client.get("/api/jobs").json() == []


def test_unknown_engine_lists_the_engines(client):
    r = client.post("/api/jobs", json={"engine": "flod"})
    assert r.status_code == 400, r.text
    d = r.json()["detail"]
    assert "no engine 'flod'" in d and "'flood'" in d and "'traffic'" in d and "did you mean 'flood'" in d
    assert "not installed" not in d


def test_job_run_id_is_used_when_valid_and_refused_with_the_rule_when_not(client):
    client.app.state.twin_state.jobs.register("quick", _quick)
    r = client.post("/api/jobs", json={"engine": "quick", "run": "../../x"})
    assert r.status_code == 422, r.text
    assert "run id '../../x' is not valid: use ASCII letters" in r.json()["detail"]
    r = client.post("/api/jobs", json={"engine": "flood", "run": "r1", "params": {"duration": "10min"}})
    assert r.status_code == 422 and "holds results saved by hand" in r.json()["detail"], r.text  # conftest's r1
    assert client.get("/api/jobs").json() == []
    job = client.post("/api/jobs", json={"engine": "quick", "run": "my-run.1"}).json()
    assert job["run"] == "my-run.1"
    assert _wait(client, job["id"], ("done", "failed"), 10)["status"] == "done"
    results = client.get("/api/results?scenario=base").json()
    assert any(e["run"] == "my-run.1" and e["name"] == "quick" for e in results)
