"""Map-server API answers a reviewer found wanting: scenario parameters and job parameters checked when they come
(not when a run fails on them later), the base refused as the city itself, one report for a batch of readings,
a JSON refusal of a Host name, and a 403 that names every role with the right."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient


def _edit(client, scenario, key, value):
    return client.post(f"/api/scenarios/{scenario}/edits", json={"op": "set_param", "key": key, "value": value})


# ------------------------------------------------------------------ scenario parameters
def test_set_param_refuses_a_key_no_engine_reads(client):
    assert client.post("/api/scenarios", json={"name": "storm"}).status_code == 201
    r = _edit(client, "storm", "traffic_demand_scal", 1.2)
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert "no engine reads scenario parameter 'traffic_demand_scal'" in d
    assert "did you mean 'traffic_demand_scale'" in d
    # a flood run's own parameter set on the scenario: it never reached the flood (drainage 0.0)
    for key in ("drainage_mmh", "drainage_mm_h"):
        r = _edit(client, "storm", key, 50)
        assert r.status_code == 422, r.text
        d = r.json()["detail"]
        assert "'drainage_mm_h' is a parameter of the flood run" in d and "/api/jobs" in d
    assert client.get("/api/scenarios/storm").json()["params"] == {}  # nothing was recorded


@pytest.mark.parametrize("key, value, words", [
    ("traffic_demand_scale", "lots", "takes a number >= 0"),
    ("traffic_demand_scale", -1, "takes a number >= 0"),
    ("traffic_demand_scale", None, "takes a number >= 0"),
    ("traffic_capacity_factor", "lots", "takes a mapping {link_id: factor}"),
    ("traffic_capacity_factor", {"L1": "half"}, "each factor a number >= 0"),
    ("traffic_closed_links", {"L1": True}, "takes a list of road link ids"),
    ("crowd_closed_exits", 5, "takes an exit name or a list of exit names"),
])
def test_set_param_refuses_a_value_of_the_wrong_type(client, key, value, words):
    assert client.post("/api/scenarios", json={"name": "typed"}).status_code == 201
    r = _edit(client, "typed", key, value)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and f"scenario parameter {key!r}" in r.json()["detail"], r.text
    assert client.get("/api/scenarios/typed").json()["params"] == {}


def test_set_param_records_what_the_engines_read(client):
    assert client.post("/api/scenarios", json={"name": "typed"}).status_code == 201
    # link ids of the small sample city (ids it does not have are refused: test_traffic_review2_trafficin)
    good = {"traffic_demand_scale": 1.2, "traffic_capacity_factor": {"576684245": 0.5},
            "traffic_closed_links": ["576684245", "-100289006#1"], "crowd_closed_exits": ["north gate"]}
    for key, value in good.items():
        assert _edit(client, "typed", key, value).status_code == 201
    # one id, as the engine takes it
    assert _edit(client, "typed", "traffic_closed_links", "-181190803#0").status_code == 201
    assert client.get("/api/scenarios/typed").json()["params"] == {**good, "traffic_closed_links": "-181190803#0"}


# ------------------------------------------------------------------ jobs
def test_job_errors_say_what_is_wrong(client):
    r = client.post("/api/jobs", json={"engine": "flood", "params": {"strom": "50y"}})
    assert r.status_code == 400 and r.json()["error"] == "UnknownParameter", r.text
    assert "no parameter(s) ['strom']" in r.json()["detail"] and "did you mean 'storm'" in r.json()["detail"]
    assert client.post("/api/scenarios", json={"name": "levee_2m"}).status_code == 201
    r = client.post("/api/jobs", json={"engine": "flood", "scenario": "levee_2"})
    assert r.status_code == 400 and r.json()["error"] == "UnknownScenario", r.text
    assert "no scenario 'levee_2'" in r.json()["detail"] and "did you mean 'levee_2m'" in r.json()["detail"]
    r = client.post("/api/jobs", json={"engine": "warp_drive"})
    assert r.status_code == 400 and r.json()["error"] == "UnknownEngine"


@pytest.mark.parametrize("engine, params, words", [
    ("flood", {"duration": "forever"}, ["duration='forever'", "'90min'"]),
    ("flood", {"storm": "often"}, ["storm='often'", "'50y'"]),
    ("flood", {"buildings": "blocks"}, ["buildings='blocks'", "['block', 'raise', 'none']", "did you mean 'block'"]),
    ("flood", {"rain_gaps": "wet"}, ["rain_gaps='wet'", "['error', 'dry']"]),
    ("traffic", {"mode": "assgin"}, ["mode='assgin'", "['assign', 'simulate']", "did you mean 'assign'"]),
    ("traffic", {"mode": "simulate", "until": "later"}, ["until='later'"]),
    ("traffic", {"mode": "simulate", "flood_timing": 3}, ["flood_timing=3", "'timed'"]),
    ("crowd", {"until": -5}, ["until=-5", "> 0"]),
    ("access", {"within": "soon"}, ["within='soon'"]),
    # a code review: these were 500s (a KeyError on mode None, an OverflowError on a 400-digit number)
    ("traffic", {"mode": None}, ["mode=None", "leave it out for 'assign'"]),
    ("flood", {"duration": 10 ** 400}, ["(401 digits) is beyond any duration"]),
    ("crowd", {"until": 10 ** 400}, ["(401 digits) is beyond any duration"]),
])
def test_job_values_are_checked_before_the_job_is_queued(client, engine, params, words):
    r = client.post("/api/jobs", json={"engine": engine, "params": params})
    assert r.status_code == 422 and r.json()["error"] == "InvalidParameter", r.text
    assert f"the {engine} engine cannot take" in r.json()["detail"]
    for w in words:
        assert w in r.json()["detail"], (w, r.json())
    assert client.get("/api/jobs").json() == []  # nothing was queued


def test_job_engine_is_described_from_the_registry(shared_client):
    from viewer.jobs import ENGINES

    schema = shared_client.get("/openapi.json").json()["components"]["schemas"]["JobIn"]["properties"]["engine"]
    assert "access" in ENGINES and all(e in schema["description"] for e in ENGINES)


def test_a_traffic_parameter_of_the_other_mode_is_refused_at_once(client):
    # run_traffic hands its parameters to run_assign or run_simulate: until with the default mode failed the job
    # with "TypeError: run_assign() got an unexpected keyword argument 'until'"
    r = client.post("/api/jobs", json={"engine": "traffic", "params": {"until": 600}})
    assert r.status_code == 400 and r.json()["error"] == "UnknownParameter", r.text
    assert "['until'] only in mode 'simulate', not in mode 'assign' (the default)" in r.json()["detail"]
    r = client.post("/api/jobs", json={"engine": "traffic", "params": {"mode": "simulate", "method": "bfw"}})
    assert r.status_code == 400 and "['method'] only in mode 'assign'" in r.json()["detail"], r.text
    assert client.get("/api/jobs").json() == []


# ------------------------------------------------------------------ the base and duplicate names
def test_the_base_is_not_edited_or_deleted(client):
    for r in (client.post("/api/scenarios/base/edits", json={"op": "set_param", "key": "traffic_demand_scale",
                                                               "value": 2}),
              client.delete("/api/scenarios/base"), client.delete("/api/scenarios/base/edits/last")):
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "conflict"
        assert "'base' is the city itself" in r.json()["detail"] and "create a scenario" in r.json()["detail"]
    assert client.get("/api/scenarios/nosuch").status_code == 404  # another unknown name stays a 404


def test_a_duplicate_scenario_name_is_a_conflict(client):
    assert client.post("/api/scenarios", json={"name": "twice"}).status_code == 201
    r = client.post("/api/scenarios", json={"name": "twice"})
    assert r.status_code == 409 and r.json()["error"] == "conflict", r.text
    assert "exists already" in r.json()["detail"]


# ------------------------------------------------------------------ sensor readings
def test_a_type_error_is_one_bad_row_of_the_batch_report(client):
    t = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")
    body = ('{"readings": [{"sensor_id": "RG01", "time": "%s", "value": 1.0},'
            ' {"sensor_id": "NOPE", "time": "%s", "value": 2.0},'
            ' {"sensor_id": "RG01", "time": "%s", "value": "12.5"},'
            ' {"sensor_id": "RG01", "time": "%s", "value": -1e999},'
            ' {"sensor_id": "RG01", "time": "%s"}]}' % (t, t, t, t, t)).encode()
    r = client.post("/api/sensors/readings", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["unknown_sensors"] == ["NOPE"]
    assert [p["index"] for p in out["problems"]] == [1, 2, 3, 4]
    assert "not a number" in out["problems"][1]["reason"] and "not a finite number" in out["problems"][2]["reason"]
    assert out["problems"][3]["reason"] == "missing value"
    assert "refused 4 of 5 readings, nothing stored" in out["detail"]
    assert not client.app.state.twin_state.store.has_table("sensor_readings")


def test_a_refused_batch_quotes_what_was_sent_briefly(client):
    """A code review: a 7 MB value came back in a 14 MB 422 (quoted in the message and again in the problems), and a
    sensor id with a lone surrogate broke the JSON answer (a 400 saying "'utf-8' codec can't encode")."""
    import json

    t = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="seconds")
    body = json.dumps({"readings": [{"sensor_id": "RG01", "time": t, "value": "A" * (1 << 20)},
                                    {"sensor_id": [0] * 20000, "time": t, "value": 1.0},
                                    {"sensor_id": "RG01", "time": t, "value": 1.0, "k" * 5000: 1}]}).encode()
    r = client.post("/api/sensors/readings", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 4000, len(r.content)
    assert "characters)" in r.json()["problems"][0]["reason"]
    body = ('{"readings": [{"sensor_id": "\\ud800", "time": "%s", "value": 1.0}]}' % t).encode()
    r = client.post("/api/sensors/readings", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "is not valid text (an unpaired surrogate)" in r.json()["detail"], r.text


def test_a_number_no_float_holds_is_no_scenario_parameter(client):
    assert client.post("/api/scenarios", json={"name": "huge"}).status_code == 201
    r = _edit(client, "huge", "traffic_demand_scale", 10 ** 400)  # the traffic engine's float() overflowed on it
    assert r.status_code == 422 and "takes a number >= 0" in r.json()["detail"], r.text


def test_the_readings_body_is_still_documented(shared_client):
    spec = shared_client.get("/openapi.json").json()
    item = spec["components"]["schemas"]["ReadingsIn"]["properties"]["readings"]["items"]
    assert set(item["required"]) == {"sensor_id", "time", "value"} and item["additionalProperties"] is False


# ------------------------------------------------------------------ Host header
def test_a_refused_host_gets_json_naming_the_hosts(city):
    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, port=8800, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        r = c.get("/api/layers", headers={"Host": "evil.example:8800"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
        d = r.json()["detail"]
        assert "127.0.0.1, localhost" in d and "'evil.example:8800'" in d and "twin serve STORE --host" in d
        assert "http://127.0.0.1:8800/" in d and r.json()["error"] == "invalid host"
        assert c.get("/api/layers", headers={"Host": "[::1]:8800"}).status_code == 200
        for host in ("[::1]x", "localhost:80x", "localhost.evil.example"):  # a loopback name with more after it
            assert c.get("/api/layers", headers={"Host": host}).status_code == 400, host


# ------------------------------------------------------------------ roles
def test_a_403_names_every_role_with_the_right(city):
    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ("sensor", "viewer")}
    with TestClient(create_app(Settings(store=city, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        r = c.get("/api/scenarios", headers={"Authorization": f"Bearer {tok['sensor']}"})
        assert r.status_code == 403
        assert "needs one of the roles viewer, planner, regulator or admin" in r.json()["detail"], r.text
        r = c.post("/api/scenarios", json={"name": "x"}, headers={"Authorization": f"Bearer {tok['viewer']}"})
        assert r.status_code == 403 and "needs one of the roles planner or admin" in r.json()["detail"], r.text
