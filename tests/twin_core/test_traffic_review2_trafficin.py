"""A user review of the traffic side (review2): a huge demand scale gave 0 trips (1e308) or absurd figures
(1e30: TSTT 7e149 veh-h) as a normal run, the API stored it; an unknown link id in traffic_closed_links was
recorded and broke every later run; compare hid the storm's stranded trips; GeoJSON lost the end of a closure
that never ends; two messages pointed the wrong way."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString
from typer.testing import CliRunner

from twin_core.errors import LayerNotFoundError, ParameterError, TwinWarning


@pytest.fixture
def city(small_city_gpkg):
    from twin_core.twin import Twin

    with Twin.open(small_city_gpkg) as twin:
        yield twin


def _cli(*args):
    from twin_core.cli import get_app

    return CliRunner().invoke(get_app(), [str(a) for a in args])


# ------------------------------------------------------------------ 1. the demand scale's bound
@pytest.mark.parametrize("scale", [1e308, 1e30, 50.0])
def test_a_huge_demand_scale_is_refused_with_the_bound(city, scale):
    from twin_core.adapters.traffic import demo_demand_scale, run_assign

    real = demo_demand_scale(city, "am")
    with pytest.raises(ParameterError, match=r"more than 10 times the real Chengdu peak's density") as e:
        run_assign(city, None, "x", demand_scale=scale, save=False)
    assert f"at most {10 * real:.3g}" in str(e.value)


def test_the_cli_refuses_demand_scale_1e308(small_city_gpkg):
    r = _cli("traffic", "assign", small_city_gpkg, "--demand-scale", "1e308", "-q")
    assert r.exit_code != 0 and "0 trips" not in r.output
    assert isinstance(r.exception, ParameterError) and "more than 10 times" in str(r.exception)


def test_an_overloaded_assignment_warns_and_a_realistic_one_does_not(city):
    from twin_core.adapters.traffic import demo_demand_scale, run_assign

    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        s = run_assign(city, None, "real", save=False).summary  # the calibrated peak: no warning
    assert s["trips"] > 0
    top = 0.99 * 10 * demo_demand_scale(city, "am")  # just under the bound: runs, and says it is overloaded
    with pytest.warns(TwinWarning, match="the demand overloads the network") as rec:
        s = run_assign(city, None, "top", demand_scale=top, save=False).summary
    assert np.isfinite(s["tstt"]) and s["trips"] > 0
    assert "times the real Chengdu peak's density" in str(rec[0].message)


def test_land_use_demand_never_counts_an_overflow_as_zero_trips(city):
    from twin_core.adapters.traffic import land_use_demand, network_links

    links = network_links(city.layer("road_links"))
    assert land_use_demand(city.layer("buildings"), links, scale=1.0).total > 0
    with pytest.raises(ParameterError, match="more trips than can be counted"):
        land_use_demand(city.layer("buildings"), links, scale=1e308)


def test_a_stored_huge_scenario_demand_scale_is_refused_not_zero_trips(city):
    from twin_core.adapters.traffic import run_assign

    from cim.scenario import Scenarios

    s = city.scenarios.create("rv2")
    # recorded past the checks (cim's own Scenarios has none, or a store from before them)
    Scenarios(city.store).get("rv2").set_param("traffic_demand_scale", 1e308)
    with pytest.raises(ParameterError, match=r"scenario parameter traffic_demand_scale 1e\+308 \(it multiplies the "
                                             r"demand\) asks for more than 10 times") as e:
        run_assign(city, "rv2", "x", save=False)
    assert "Set it to at most 10" in str(e.value)
    s.undo()
    s.set_param("traffic_demand_scale", 2.0)  # within the bound, but not with 10x the rates given to the run
    with pytest.raises(ParameterError, match="times the scenario's traffic_demand_scale 2 is more than 10 times"):
        run_assign(city, "rv2", "x", demand_scale=4.0, save=False)


def test_scenario_demand_scale_is_checked_against_the_bound():
    from twin_core.adapters.scenario_params import check_scenario_param

    for ok in (0, 1.2, 10):
        check_scenario_param("traffic_demand_scale", ok)
    for bad in (1e308, 10.5, -1, float("nan")):
        with pytest.raises(ParameterError, match="a number >= 0 and at most 10"):
            check_scenario_param("traffic_demand_scale", bad)


# ------------------------------------------------------------------ 2. link ids checked at edit time
def test_unknown_link_ids_are_refused_at_edit_time(city):
    from twin_core.adapters.scenario_params import check_scenario_param

    roads = city.layer("road_links")
    roads.loc[roads.index[0], "oneway"] = False  # a two-way road: its reverse '<id>:r' is a link too
    city.store.write_layer("road_links", roads, mode="replace")
    two_way = str(roads["link_id"].iloc[0])
    s = city.scenarios.create("rv2")
    check_scenario_param("traffic_closed_links", [two_way, two_way + ":r"], s)
    with pytest.raises(ParameterError, match=":r', not in road_links"):
        check_scenario_param("traffic_closed_links", [str(roads["link_id"].iloc[1]) + ":r"], s)  # one-way
    check_scenario_param("traffic_closed_links", two_way, s)
    check_scenario_param("traffic_capacity_factor", {two_way: 0.5}, s)
    with pytest.raises(ParameterError, match=r"'nosuch', not in road_links as of scenario 'rv2'"):
        check_scenario_param("traffic_closed_links", ["nosuch"], s)
    with pytest.raises(ParameterError, match="'nosuch'"):
        check_scenario_param("traffic_closed_links", [two_way, "nosuch"], s)
    with pytest.raises(ParameterError, match="'nosuch'"):
        check_scenario_param("traffic_capacity_factor", {"nosuch": 0.5}, s)
    check_scenario_param("traffic_closed_links", ["nosuch"])  # without a scenario: the type alone


def test_python_set_param_refuses_what_the_engines_would_not_take(city):
    # twin.scenario(...).set_param went straight to the edit log: an unknown link id was recorded and every later
    # traffic run of the scenario failed; the CLI and the map refused it
    s = city.scenarios.create("rv3")
    with pytest.raises(ParameterError, match=r"'nosuch', not in road_links as of scenario 'rv3'"):
        s.set_param("traffic_closed_links", ["nosuch"])
    with pytest.raises(ParameterError, match="a number >= 0 and at most 10"):
        city.scenario("rv3").set_param("traffic_demand_scale", 1e308)
    assert s.params() == {} and s.n_edits == 0
    link = str(city.layer("road_links")["link_id"].iloc[0])
    s.set_param("traffic_closed_links", [link])
    assert s.params() == {"traffic_closed_links": [link]}


def test_the_cli_records_no_unknown_link(small_city_gpkg):
    from twin_core.twin import Twin

    r = _cli("scenario", "set", small_city_gpkg, "rv2", "traffic_closed_links", '["nosuch"]')
    assert r.exit_code != 0 and isinstance(r.exception, ParameterError)
    assert "'nosuch', not in road_links" in str(r.exception)
    with Twin.open(small_city_gpkg) as twin:
        assert "rv2" not in twin.scenarios.names()  # a failed edit leaves no new, empty scenario
    r = _cli("scenario", "set", small_city_gpkg, "rv2", "traffic_demand_scale", "1e308")
    assert r.exit_code != 0 and "a number >= 0 and at most 10" in str(r.exception)


def test_the_map_refuses_an_unknown_link_and_a_huge_scale(small_city_gpkg):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=small_city_gpkg)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        assert c.post("/api/scenarios", json={"name": "rv2"}).status_code == 201

        def edit(key, value):
            return c.post("/api/scenarios/rv2/edits", json={"op": "set_param", "key": key, "value": value})

        r = edit("traffic_closed_links", ["nosuch"])
        assert r.status_code == 422 and "nosuch" in r.json()["detail"], r.text
        r = edit("traffic_capacity_factor", {"nosuch": 0.5})
        assert r.status_code == 422, r.text
        r = edit("traffic_demand_scale", 1e308)
        assert r.status_code == 422 and "a number >= 0 and at most 10" in r.json()["detail"], r.text
        assert c.get("/api/scenarios/rv2").json()["params"] == {}
        assert edit("traffic_closed_links", ["576684245"]).status_code == 201


# ------------------------------------------------------------------ 3. compare says the stranded trips
def _sim_run(twin, run, stranded: int | None):
    links = gpd.GeoDataFrame({"link_id": ["a", "b"], "vehicles": [10.0, 5.0]},
                             geometry=[LineString([(0, 0), (10, 0)]), LineString([(10, 0), (20, 0)])],
                             crs="EPSG:4544")
    twin.save_result(None, run, "link_loads", links, meta={"engine": "simulation.traffic"})
    s = {"engine": "traffic", "mode": "simulate", "period": "am", "trips": 100, "vehicles": 100, "completed": 100,
         "mean_trip_time_s": 60.0, "disconnected_trips": 0}
    if stranded is not None:
        s.update({"flooded_by": "storm", "trips_stranded_by_flood": stranded, "completed": 100 - stranded})
    twin.save_result(None, run, "summary", s, meta={"engine": "simulation.traffic"})


def test_compare_counts_the_trips_a_flood_strands(tmp_path):
    from twin_core import Twin
    from twin_core.adapters.compare import compare_runs

    twin = Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544")
    _sim_run(twin, "sim-base", None)
    _sim_run(twin, "sim-storm", 22)
    with pytest.warns(TwinWarning, match="strands 22 more trips"):
        c = compare_runs(twin, "sim-base", "sim-storm")
    assert c.summary["trips_stranded_by_flood_a"] == 0 and c.summary["trips_stranded_by_flood_b"] == 22
    assert "  trips_stranded_by_flood: 0 -> 22" in c.lines()
    assert json.loads(json.dumps(c.to_dict(), default=str))["trips_stranded_by_flood_b"] == 22
    with pytest.warns(TwinWarning, match="strands 22 more trips"):
        r = _cli("compare", str(tmp_path / "t.gpkg"), "sim-base", "sim-storm", "--json")
    assert r.exit_code == 0, r.output
    assert '"trips_stranded_by_flood_b": 22' in r.output


# ------------------------------------------------------------------ 4. GeoJSON keeps a closure that never ends
def test_geojson_says_a_road_is_closed_to_the_end(tmp_path):
    from twin_core import Twin

    twin = Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544")
    ll = gpd.GeoDataFrame({"link_id": ["open", "wet", "gone"], "closed_from_s": [np.nan, 60.0, 120.0],
                           "closed_until_s": [np.nan, 900.0, np.inf]},
                          geometry=[LineString([(410000 + 10 * i, 3390000), (410010 + 10 * i, 3390000)])
                                    for i in range(3)], crs="EPSG:4544")
    twin.save_result(None, "sim", "link_loads", ll, meta={"engine": "simulation.traffic"})
    props = {f["properties"]["link_id"]: f["properties"] for f in
             json.loads(twin.export_result("sim", "link_loads", tmp_path / "ll.geojson").read_text())["features"]}
    assert {k: (p["closed_until_s"], p["closed_to_end"]) for k, p in props.items()} == {
        "open": (None, False), "wet": (900.0, False), "gone": (None, True)}
    csv = pd.read_csv(twin.export_result("sim", "link_loads", tmp_path / "ll.csv"))
    assert np.isposinf(csv["closed_until_s"].iloc[2]) and "closed_to_end" not in csv
    back = gpd.read_file(twin.export_result("sim", "link_loads", tmp_path / "ll.gpkg"))
    assert np.isposinf(back["closed_until_s"].iloc[2]) and "closed_to_end" not in back


# ------------------------------------------------------------------ 5. messages
def test_a_twin_without_buildings_says_where_demand_comes_from(tmp_path):
    from twin_core import Twin
    from twin_core.adapters.traffic import run_assign

    twin = Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544")
    roads = gpd.GeoDataFrame({"link_id": ["a"], "from_node": ["1"], "to_node": ["2"], "speed_limit_kmh": [50.0]},
                             geometry=[LineString([(410000, 3390000), (410100, 3390000)])], crs="EPSG:4544")
    twin.store.write_layer("road_links", roads)
    with pytest.raises(LayerNotFoundError) as e:
        run_assign(twin, None, "x", save=False)
    msg = str(e.value)
    assert "buildings" in msg and "land use" in msg and "SUMO" in msg and "README" in msg
    assert "load_result" not in msg


def test_flooded_by_a_traffic_run_says_it_is_a_traffic_run(city):
    from twin_core.adapters.traffic import run_assign

    run_assign(city, None, "asg-base")
    with pytest.raises(ParameterError, match=r"'asg-base' under scenario 'base' is a traffic run, not a flood run"):
        run_assign(city, None, "x", flooded_by="asg-base", save=False)
