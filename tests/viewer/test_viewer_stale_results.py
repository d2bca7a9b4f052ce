"""A run made before its scenario's latest edit is marked stale for the map (GET /api/results, the scene):
after a planner closes roads in a scenario, its old flood is no longer its answer."""

from __future__ import annotations

import time


def _by_run(entries, scenario):
    return {e["run"]: e["stale"] for e in entries if e["scenario"] == scenario}


def test_runs_before_the_latest_edit_are_stale(client, city):
    from twin_core.twin import Twin

    lonlat = [[103.9, 30.5], [104.2, 30.5], [104.2, 30.8], [103.9, 30.8], [103.9, 30.5]]  # the whole city
    assert client.post("/api/scenarios", json={"name": "works"}).status_code == 201
    with Twin(city) as twin:  # a run stored before any edit, and one on the base
        twin.save_result("works", "old-run", "summary", {"engine": "flood"})
        twin.save_result(None, "base-run", "summary", {"engine": "flood"})
    assert _by_run(client.get("/api/results").json(), "works") == {"old-run": False}  # no edit yet

    time.sleep(0.01)
    r = client.post("/api/scenarios/works/edits", json={"op": "close_roads",
                                                        "polygon": {"type": "Polygon", "coordinates": [lonlat]}})
    assert r.status_code == 201, r.text
    with Twin(city) as twin:
        twin.save_result("works", "new-run", "summary", {"engine": "flood"})
    got = client.get("/api/results").json()
    assert _by_run(got, "works") == {"old-run": True, "new-run": False}
    assert not any(_by_run(got, "base").values()) and "base-run" in _by_run(got, "base")  # the base: no edits
    assert _by_run(client.get("/api/scene").json()["results"], "works") == {"old-run": True, "new-run": False}


def test_an_edit_of_the_parent_makes_the_childs_runs_stale(client, city):
    from twin_core.twin import Twin

    assert client.post("/api/scenarios", json={"name": "p"}).status_code == 201
    assert client.post("/api/scenarios", json={"name": "c", "parent": "p"}).status_code == 201
    with Twin(city) as twin:
        twin.save_result("c", "child-run", "summary", {"engine": "traffic"})
    time.sleep(0.01)
    assert client.post("/api/scenarios/p/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1}).status_code == 201
    assert _by_run(client.get("/api/results?scenario=c").json(), "c") == {"child-run": True}
