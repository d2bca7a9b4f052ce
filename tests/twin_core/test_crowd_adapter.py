"""Crowd adapter and CLI: a sample-city plaza and an IFC storey evacuated end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_core.errors import GeometryError, LayerNotFoundError, ParameterError


@pytest.fixture
def twin(small_city_gpkg):
    from twin_core.twin import Twin

    t = Twin.open(small_city_gpkg)
    yield t
    t.close()


def test_plaza_area_is_the_area_minus_its_buildings(twin):
    import shapely

    from twin_core.adapters.crowd import plaza_area

    area, info = plaza_area(twin, "A001")
    plaza = twin.layer("areas", where={"area_id": "A001"}).geometry.iloc[0]
    b = twin.layer("buildings")
    inside = b[b.intersects(plaza)]
    assert len(inside) >= 1 and sorted(info["buildings_removed"]) == sorted(inside["building_id"])
    # walkable = plaza - buildings (the largest open part), to 1 m2 (0.01 m snapping)
    expected = plaza.difference(shapely.union_all(inside.geometry.values))
    expected = max(getattr(expected, "geoms", [expected]), key=lambda p: p.area)
    assert area.polygon.area == pytest.approx(expected.area, abs=1.0)
    assert info["exits_from"] == "roads" and len(area.exit_names) >= 1
    with pytest.raises(LayerNotFoundError, match="choose one of"):
        plaza_area(twin, "no such plaza")


def test_plaza_run_saves_results_and_scenario_edits_apply(twin):
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM, plaza_area, run_crowd

    base = run_crowd(twin, "A001", agents=150, until=300, run="r1")
    res = base.result
    assert res.status == "evacuated" and res.evacuated == 150
    assert base.result.exit_usage()["agents"].sum() == 150
    # saved in the store under base + run, and readable back
    curve = twin.load_result("base", "r1", "evacuation_curve")
    assert curve["remaining"].iloc[0] == 150 and curve["remaining"].iloc[-1] == 0
    summary = twin.load_result("base", "r1", "summary")
    assert summary["evacuated"] == 150 and summary["status"] == "evacuated"
    dens = twin.load_result("base", "r1", "density")
    assert dens.ndim == 3 and dens[0].sum() == pytest.approx(150.0)  # 1 m cells: persons/m2 sum to the count
    top = twin.load_result("base", "r1", "max_density")
    assert top.data.max() >= 1.0 and top.unit == "persons/m2"  # no unit before: the repr and a GeoTIFF stated none
    assert {"trajectories", "exit_usage", "jams"} <= set(twin.results(run="r1")["name"])
    # scenario: close the busiest exit; nobody uses it and the others carry the crowd
    use = res.exit_usage().set_index("exit")["agents"]
    busiest = use.idxmax()
    sc = twin.scenarios.create("closed", exist_ok=True)
    sc.set_param(CLOSED_EXITS_PARAM, [busiest])
    closed = run_crowd(twin, "A001", agents=150, until=300, scenario="closed", run="r2")
    use2 = closed.result.exit_usage().set_index("exit")["agents"]
    assert use2[busiest] == 0 and use2.sum() == 150
    assert twin.load_result("closed", "r2", "summary")["closed_exits"] == [busiest]
    with pytest.raises(GeometryError, match="unknown exit"):
        run_crowd(twin, "A001", agents=10, closed_exits=["nope"], save=False)
    with pytest.raises(ParameterError, match="agents"):
        run_crowd(twin, "A001", save=False)
    # a building added in a scenario is an obstacle there, not in the base
    import geopandas as gpd
    from shapely.geometry import box

    area_b, _ = plaza_area(twin, "A001")
    c = area_b.polygon.representative_point()
    new = gpd.GeoDataFrame({"building_id": ["NEW1"], "height_m": [10.0]},
                           geometry=[box(c.x - 5, c.y - 5, c.x + 5, c.y + 5)], crs=twin.crs)
    twin.scenarios.create("kiosk", exist_ok=True).add_features("buildings", new)
    area_k, info_k = plaza_area(twin, "A001", scenario="kiosk")
    assert "NEW1" in info_k["buildings_removed"]
    assert area_k.polygon.area == pytest.approx(area_b.polygon.area - 100.0, abs=1.0)


def test_ifc_storey_evacuation(tmp_path):
    from bim_import.samples import BoxBuilding, write_box_building
    from simulation.crowd import Agents, CrowdSimulation
    from twin_core.adapters.crowd import storey_area

    spec = BoxBuilding(20, 10, 2, 3.0, 500000.0, 3390000.0)
    path = write_box_building(spec, tmp_path / "box.ifc")
    area, info = storey_area(str(path), 0, twin_crs="EPSG:4544")
    assert len(area.exit_names) == 1 and info["walkable_m2"] > 180
    ag = Agents.in_region(area, n=40, seed=0)
    res = CrowdSimulation(area, ag).run(until=300)
    assert res.status == "evacuated" and res.evacuated == 40
    # nobody is faster than the fastest desired speed (2.0 m/s) over the straight-line distance to the door
    (a, b), = [area.exit_segments[0].reshape(2, 2)]
    door = (a + b) / 2
    dist = np.hypot(ag.x - door[0], ag.y - door[1]) - 0.5
    assert (res.exit_time >= dist / 2.0 - 1e-6).all()
    # 40 people through one 1 m door at <= 2 persons/(m s) (Seyfried et al. 2009: ~1.9) take > 19 s
    assert res.evacuation_time > 39 / 2.0


def test_cli_crowd(small_city_gpkg):
    from twin_core.cli import get_app

    runner = CliRunner()
    res = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "80", "--run", "c1",
                                    "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["status"] == "evacuated" and s["evacuated"] == 80 and "summary" in s["saved"]
    human = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "Tianfu-style Plaza (sample)",
                                      "--agents", "20", "--quiet"])
    assert human.exit_code == 0 and "evacuated 20" in human.output
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--agents", "20"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ParameterError)
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001"])
    assert bad.exit_code != 0 and "--agents" in str(bad.exception)
    # --storey without --ifc ran the plaza without a word
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "20", "--storey", "0"])
    assert isinstance(bad.exception, ParameterError) and "--ifc" in str(bad.exception)


def test_cli_crowd_route_through_a_waypoint(small_city_gpkg, twin):
    from twin_core.adapters.crowd import plaza_area
    from twin_core.cli import get_app

    area, _ = plaza_area(twin, "A001")
    c = area.polygon.representative_point()
    runner = CliRunner()
    res = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "30", "--run", "w1",
                                    "--waypoint", f"kiosk={c.x},{c.y}", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["status"] == "evacuated" and s["route"] == ["kiosk"] and "waypoint_passages" in s["saved"]
    passed = twin.load_result("base", "w1", "waypoint_passages")
    assert sorted(passed["agent"]) == list(range(30)) and set(passed["waypoint"]) == {"kiosk"}
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "5",
                                    "--waypoint", "kiosk=1,2,3"])
    assert bad.exit_code != 0 and "NAME=X,Y" in str(bad.exception)
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "5",
                                    "--waypoint", "kiosk=nan,2"])  # was "not on the walkable area, bounds (nan, nan)"
    assert bad.exit_code != 0 and "NAME=X,Y" in str(bad.exception)


@pytest.mark.slow
def test_real_house_storey_evacuation():
    # AC20-FZK-Haus (KIT reference IFC), ground floor: rooms, inner doors, two external doors
    import os

    from simulation.crowd import Agents, CrowdParameters, CrowdSimulation
    from twin_core.adapters.crowd import storey_area

    ifc_dir = os.environ.get("TWIN_IFC_DIR", "/work/shared/data/ifc")
    path = os.path.join(ifc_dir, "AC20-FZK-Haus.ifc")
    if not os.path.exists(path):
        pytest.skip(f"{path} not present (set TWIN_IFC_DIR)")
    area, info = storey_area(path, "Erdgeschoss")
    assert len(area.exit_names) == 2
    ag = Agents.in_region(area, n=30, seed=0)
    res = CrowdSimulation(area, ag, CrowdParameters(record_interval=0.05)).run(until=300)
    assert res.status == "evacuated" and res.evacuated == 30
    assert (res.exit_usage()["agents"] > 0).all()  # both doors carry people
    tr = res.trajectories
    assert area.contains(tr["x"].to_numpy(), tr["y"].to_numpy()).all()  # nobody walked through a wall


def test_results_round_trip_in_both_stores(store):
    # the same crowd result saved and read back from GeoPackage and PostGIS
    from shapely.geometry import box

    from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea
    from twin_core.adapters.crowd import save_crowd_result
    from twin_core.twin import Twin

    area = WalkableArea(box(0, 0, 8, 5), exits={"east": [(8, 2), (8, 3)]})
    res = CrowdSimulation(area, Agents.in_region(area, box(0.5, 0.5, 4, 4.5), n=12, seed=0),
                          CrowdParameters(density_interval=2.0)).run(until=120)
    twin = Twin.open(store)
    saved = save_crowd_result(twin, "base", "rt", res, {"area_id": "test"}, crs="EPSG:4544")
    assert {"summary", "evacuation_curve", "exit_usage", "trajectories", "density", "max_density"} <= set(saved)
    assert twin.load_result("base", "rt", "summary")["evacuated"] == 12
    ex = twin.load_result("base", "rt", "exit_usage")
    assert int(ex["agents"].sum()) == 12
    d = twin.load_result("base", "rt", "density")
    # stored as a flood's depth_snapshots, rows from the north (the engine's run from the south)
    assert d.shape == res.density.shape and np.allclose(d, res.density[:, ::-1, :])
    assert len(twin.load_result("base", "rt", "trajectories")) == len(res.trajectories)


def _two_door_room():
    from shapely.geometry import box

    from simulation.crowd import WalkableArea

    x0, y0 = 409700.0, 3390870.0
    return WalkableArea(box(x0, y0, x0 + 10, y0 + 10), exits={"east": [(x0 + 10, y0 + 4), (x0 + 10, y0 + 5)],
                                                               "west": [(x0, y0 + 4), (x0, y0 + 5)]})


def test_closed_exits_scenario_parameter_is_checked(twin):
    # it was read inside a bare `except: pass`: a number was ignored, one name was split into
    # its characters, and a scenario that does not exist was accepted (results saved under it)
    from cim.results import list_results
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM, run_crowd
    from twin_core.errors import ScenarioError

    sc = twin.scenarios.create("shut", exist_ok=True)
    sc.set_param(CLOSED_EXITS_PARAM, "east")  # one name, as a JSON string
    out = run_crowd(twin, walkable=_two_door_room(), agents=10, scenario="shut", until=120, save=False)
    assert out.info["closed_exits"] == ["east"]
    use = out.result.exit_usage().set_index("exit")["agents"]
    assert use["east"] == 0 and use["west"] == 10
    with pytest.raises(ParameterError, match="takes an exit name or a list of exit names"):
        sc.set_param(CLOSED_EXITS_PARAM, 5)  # refused when set; recorded past that (cim's own Scenarios) ...
    from cim.scenario import Scenarios

    Scenarios(twin.store).get("shut").set_param(CLOSED_EXITS_PARAM, 5)
    with pytest.raises(ParameterError, match="crowd_closed_exits of scenario 'shut' must be an exit name or a list"):
        run_crowd(twin, walkable=_two_door_room(), agents=5, scenario="shut", until=60, save=False)
    Scenarios(twin.store).get("shut").set_param(CLOSED_EXITS_PARAM, ["east", 3])
    with pytest.raises(ParameterError, match="list of exit names"):
        run_crowd(twin, walkable=_two_door_room(), agents=5, scenario="shut", until=60, save=False)
    n_before = len(list_results(twin.store))
    with pytest.raises(ScenarioError, match="no_such_scenario"):
        run_crowd(twin, walkable=_two_door_room(), agents=5, scenario="no_such_scenario", until=60)
    assert len(list_results(twin.store)) == n_before


def test_run_id_used_again_leaves_no_stale_results(store):
    # a second run under the same id without a route or density maps left the first run's
    # waypoint_passages, fundamental_diagram, density and max_density beside its summary
    from shapely.geometry import box

    from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea
    from twin_core.adapters.crowd import save_crowd_result
    from twin_core.twin import Twin

    area = WalkableArea(box(0, 0, 8, 5), exits={"east": [(8, 2), (8, 3)]}, waypoints={"k": (4, 2.5)})
    first = CrowdSimulation(area, Agents.in_region(area, box(0.5, 0.5, 3, 4.5), n=6, seed=0, route=["k"]),
                            CrowdParameters(density_interval=2.0)).run(until=120)
    second = CrowdSimulation(area, Agents.in_region(area, box(0.5, 0.5, 3, 4.5), n=4, seed=1),
                             CrowdParameters(density_interval=None, record_interval=None)).run(until=120)
    twin = Twin.open(store)
    twin.save_result("base", "other", "density", np.zeros(2))  # another run's results stay
    saved = save_crowd_result(twin, "base", "R1", first, crs="EPSG:4544")
    assert {"waypoint_passages", "fundamental_diagram", "density", "max_density"} <= set(saved)
    saved = save_crowd_result(twin, "base", "R1", second, crs="EPSG:4544")
    assert sorted(twin.results(run="R1")["name"]) == sorted(saved)
    assert not {"waypoint_passages", "fundamental_diagram", "density", "max_density"} & set(saved)
    assert twin.load_result("base", "R1", "summary")["agents"] == 4
    assert len(twin.load_result("base", "other", "density")) == 2


def test_cli_crowd_density_not_finite(small_city_gpkg):
    from twin_core.cli import get_app

    runner = CliRunner()
    for bad in ("nan", "inf", "0"):
        res = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--density", bad, "--quiet"])
        assert res.exit_code != 0 and isinstance(res.exception, ParameterError), res.output
        assert "--density must be a finite number" in str(res.exception)


def test_bad_run_id_fails_before_the_run(twin, monkeypatch):
    # the id was checked only when saving, after the whole simulation had run
    from simulation.crowd import CrowdSimulation
    from twin_core.adapters.crowd import run_crowd
    from twin_core.errors import SchemaError

    def no_run(*a, **k):
        raise AssertionError("the simulation ran")

    monkeypatch.setattr(CrowdSimulation, "run", no_run)
    with pytest.raises(SchemaError, match=r"run id 'my run/1' is not valid"):
        run_crowd(twin, area="A001", agents=20, run="my run/1")
    assert twin.results(run="my run/1").empty


def test_cli_crowd_json_is_strict_json_when_not_everybody_left(small_city_gpkg):
    # a run stopped by the time limit printed "evacuation_time_s": NaN and NaN flows of unused
    # exits: not JSON (jq and JSON.parse refuse it); they are null now
    from twin_core.cli import get_app

    def refuse(c):
        raise ValueError(f"not JSON: {c}")

    res = CliRunner().invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "60", "--until", "2",
                                         "--run", "short", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output, parse_constant=refuse)
    assert s["status"] == "time_limit" and s["evacuation_time_s"] is None
    unused = [e for e in s["exits"] if e["agents"] == 0]
    assert unused and all(e["flow_per_s"] is None and e["first_s"] is None for e in unused)


def test_measurement_line_results_are_saved_and_read_back(store):
    # the crossings of measurement lines (flow and speed at a line) were never saved: the
    # store had no trace of them, and a run id used again kept an earlier run's table
    import pandas as pd
    from shapely.geometry import box

    from simulation.crowd import Agents, CrowdSimulation, WalkableArea
    from twin_core.adapters.crowd import save_crowd_result
    from twin_core.twin import Twin

    area = WalkableArea(box(0, 0, 8, 5), exits={"east": [(8, 2), (8, 3)]})
    ag = Agents.in_region(area, box(0.5, 0.5, 4, 4.5), n=8, seed=0)
    res = CrowdSimulation(area, ag, measurement_lines={"mid": [(6, 0), (6, 5)],
                                                       "back": [(0.2, 0), (0.2, 5)]}).run(until=120)
    assert len(res.line_crossings) == 8
    twin = Twin.open(store)
    saved = save_crowd_result(twin, "base", "ml", res, crs="EPSG:4544")
    assert "line_crossings" in saved
    back = twin.load_result("base", "ml", "line_crossings")
    pd.testing.assert_frame_equal(back.reset_index(drop=True), res.line_crossings.reset_index(drop=True))
    assert twin.load_result("base", "ml", "summary")["measurement_lines"] == ["mid", "back"]
    # the same run id again, without lines: the old crossings go
    plain = CrowdSimulation(area, ag).run(until=120)
    assert "line_crossings" not in save_crowd_result(twin, "base", "ml", plain, crs="EPSG:4544")
    assert "line_crossings" not in set(twin.results(run="ml")["name"])
    # run_crowd takes the lines too
    from twin_core.adapters.crowd import run_crowd

    out = run_crowd(twin, walkable=area, agents=4, until=120, run="ml2", measurement_lines={"mid": [(6, 0), (6, 5)]})
    assert len(twin.load_result("base", "ml2", "line_crossings")) == len(out.result.line_crossings) > 0


def test_scenario_closing_every_exit_is_refused_clearly(twin):
    # it failed on "agent 0 at (...) cannot reach any open exit (open: [])", naming neither the
    # scenario nor its parameter
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM, run_crowd

    twin.scenarios.create("all_shut", exist_ok=True).set_param(CLOSED_EXITS_PARAM, ["east"])
    with pytest.raises(GeometryError, match=r"every exit of the area is closed \(\['west', 'east'\], from closed_exits "
                                            r"and the scenario parameter crowd_closed_exits of scenario 'all_shut'\)"):
        run_crowd(twin, walkable=_two_door_room(), agents=5, scenario="all_shut", closed_exits=["west"], until=60)
    assert twin.results(scenario="all_shut").empty


# ------------------------------------------------------------------ the cascade: evacuating in the storm
X0, Y0 = 409700.0, 3390870.0


def _room20():
    """A 20 m x 10 m hall with a 2 m door east and west, at the sample city's coordinates."""
    from shapely.geometry import box

    from simulation.crowd import WalkableArea

    return WalkableArea(box(X0, Y0, X0 + 20, Y0 + 10), exits={"east": [(X0 + 20, Y0 + 4), (X0 + 20, Y0 + 6)],
                                                               "west": [(X0, Y0 + 4), (X0, Y0 + 6)]})


def _flood(twin, run, depth_fn, dv_fn=None, snaps=None):
    """A flood run's results on a 1 m grid over the hall: max_depth, hazard (depth x velocity) and, with
    ``snaps`` ({time_s: depth_fn}), depth snapshots."""
    from affine import Affine

    from cim.raster import Raster

    tr = Affine(1.0, 0.0, X0 - 10, 0.0, -1.0, Y0 + 20)
    cols, rows = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    x, y = tr.c + cols - X0, tr.f - rows - Y0  # cell centres, in metres from the hall's corner
    grid = lambda f: np.asarray(np.broadcast_to(f(x, y), x.shape), "float32")  # noqa: E731
    twin.save_result("base", run, "max_depth", Raster(grid(depth_fn), tr, twin.crs, unit="m"))
    twin.save_result("base", run, "hazard", Raster(grid(dv_fn or (lambda x, y: 0.0 * x)), tr, twin.crs, unit="m2/s"))
    if snaps:
        times = sorted(snaps)
        twin.save_result("base", run, "depth_snapshots", np.stack([grid(snaps[t]) for t in times]),
                         meta={"snapshot_times_s": [float(t) for t in times], "transform": list(tr)[:6]})


def test_a_flooded_door_closes_and_ground_cut_off_by_water_is_counted(twin):
    # the cascade "evacuate the plaza in the storm": water 0.8 m deep across the hall's middle (x 8-12 m) and
    # over its west door (x < 2 m, y 3-7 m). The west half (8 x 10 m less the 2 x 4 m pool: 72 m2) has no dry way
    # out; the east half (80 m2) leaves by the east door. Shallow water (0.3 m elsewhere) is walked through.
    from twin_core.adapters.crowd import run_crowd

    def depth(x, y):
        strip = (x > 8) & (x < 12)
        pool = (x < 2) & (y > 3) & (y < 7)
        return np.where(strip | pool, 0.8, 0.3)

    _flood(twin, "storm1", depth)
    out = run_crowd(twin, walkable=_room20(), info={}, agents=100, until=300, flooded_by="storm1", save=False, seed=1)
    s = out.summary
    assert s["exits_under_water"] == ["west"] and s["exits_narrowed"] == []
    assert s["water_m2"] == pytest.approx(4 * 10 + 2 * 4, abs=0.5)
    assert s["cut_off_m2"] == pytest.approx(72.0, abs=0.5) and s["walkable_m2"] == pytest.approx(80.0, abs=0.5)
    assert s["cut_off_persons"] == round(100 * 72 / 152)  # the dry ground's people, in proportion to its area
    res = out.result
    assert res.evacuated == 100 - s["cut_off_persons"] and res.status == "evacuated"
    assert res.exit_usage().set_index("exit")["agents"].to_dict() == {"east": res.evacuated}
    tr = res.trajectories
    assert (tr["x"].to_numpy() >= X0 + 12 - 1e-6).all()  # nobody stood or walked in the water or beyond it


def test_flood_time_peak_and_depth_times_velocity(twin):
    # the flood as it stands at a moment (depth between snapshots is interpolated linearly) or at its peak,
    # where fast shallow water (0.3 m deep, depth x velocity 0.9 m2/s > 0.6) also stops people (AIDR 2017 H3)
    from twin_core.adapters.crowd import run_crowd

    door = lambda d: (lambda x, y: np.where((x < 3) & (y > 2) & (y < 8), d, 0.0))  # noqa: E731  over the west door
    _flood(twin, "storm2", door(0.6), snaps={600: door(0.3), 1200: door(0.7)})
    kw = dict(walkable=_room20(), info={}, agents=20, until=200, flooded_by="storm2", save=False)
    early = run_crowd(twin, flood_time=600, **kw).summary
    assert early["exits_under_water"] == [] and early["water_m2"] == 0  # 0.3 m: walked through
    mid = run_crowd(twin, flood_time="15min", **kw).summary  # 0.5 m halfway: not deeper than 0.5 m
    assert mid["exits_under_water"] == []
    late = run_crowd(twin, flood_time=1000, **kw)  # 0.3 + (0.4 * 400 / 600) = 0.567 m
    assert late.summary["exits_under_water"] == ["west"] and late.summary["flood_time_s"] == 1000
    assert late.result.exit_usage().set_index("exit")["agents"].to_dict() == {"east": 20}
    peak = run_crowd(twin, **kw).summary
    assert peak["exits_under_water"] == ["west"] and peak["flood_time_s"] is None
    _flood(twin, "fast", door(0.3), dv_fn=door(0.9))
    assert run_crowd(twin, **{**kw, "flooded_by": "fast"}).summary["exits_under_water"] == ["west"]
    with pytest.warns(UserWarning, match="after flood run 'storm2' ended"):
        after = run_crowd(twin, flood_time="2h", **kw).summary
    # the summary said "the flood's depth at 7200 s" of depths from 1200 s
    assert after["flood_used"].startswith("the flood's depth at 1200 s, the end of the run (asked: 7200 s)")


def test_a_door_half_under_water_narrows(twin):
    from twin_core.adapters.crowd import flood_walkable

    _flood(twin, "storm3", lambda x, y: np.where((x < 1) & (y < 5), 0.9, 0.0))  # the west door's lower half
    area, info, cut = flood_walkable(twin, _room20(), {}, scenario=None, flood_run="storm3")
    assert info["exits_narrowed"] == ["west"] and cut == 0
    west = area.exit_segments[area.exit_index("west")]
    assert sorted([west[1], west[3]]) == pytest.approx([Y0 + 5, Y0 + 6])  # the dry metre of the door is left


def test_flood_cascade_bad_input(twin):
    from twin_core.adapters.crowd import flood_walkable, run_crowd

    kw = dict(walkable=_room20(), info={}, agents=20, until=100, save=False)
    with pytest.raises(ParameterError, match="no flood run 'nosuch' under scenario 'base'"):
        run_crowd(twin, flooded_by="nosuch", **kw)
    with pytest.raises(ParameterError, match="flood_time needs flooded_by"):
        run_crowd(twin, flood_time=600, **kw)
    with pytest.raises(ParameterError, match="wading_depth=0.3 needs flooded_by"):  # was ignored without a word
        run_crowd(twin, wading_depth=0.3, **kw)
    _flood(twin, "peakonly", lambda x, y: 0.0 * x)
    with pytest.raises(ParameterError, match="no depth snapshots"):
        run_crowd(twin, flooded_by="peakonly", flood_time=600, **kw)
    with pytest.raises(ParameterError, match="flood_time"):
        run_crowd(twin, flooded_by="peakonly", flood_time=-5, **kw)
    with pytest.raises(ParameterError, match="wading_depth must be a number > 0"):
        run_crowd(twin, flooded_by="peakonly", wading_depth=0, **kw)
    _flood(twin, "doors", lambda x, y: np.where((x < 1) | (x > 19), 0.9, 0.0))  # both doors under water
    with pytest.raises(GeometryError, match=r"every exit of the area is under water .* cut off"):
        run_crowd(twin, flooded_by="doors", **kw)
    _flood(twin, "lake", lambda x, y: 2.0 + 0.0 * x)
    with pytest.raises(GeometryError, match="whole walkable area"):
        flood_walkable(twin, _room20(), {}, scenario=None, flood_run="lake")
    with pytest.raises(Exception, match="no scenario 'nope'"):
        run_crowd(twin, flooded_by="lake", scenario="nope", **kw)
    # an area in another CRS (an IFC storey in model coordinates) is not taken as dry without a word
    from shapely.geometry import box

    from simulation.crowd import WalkableArea

    model = WalkableArea(box(0, 0, 20, 10), exits={"east": [(20, 4), (20, 6)]})
    with pytest.raises(ParameterError, match="lies outside flood run 'lake'.s grid"):
        flood_walkable(twin, model, {}, scenario=None, flood_run="lake")
    half = WalkableArea(box(X0 + 25, Y0, X0 + 45, Y0 + 10), exits={"east": [(X0 + 45, Y0 + 4), (X0 + 45, Y0 + 6)]})
    _flood(twin, "edge", lambda x, y: 0.0 * x)  # the grid ends 30 m east of the hall's corner
    with pytest.warns(UserWarning, match="75 % of the walkable area lies outside"):
        flood_walkable(twin, half, {}, scenario=None, flood_run="edge")


def save_plaza_flood(path, run: str, paint) -> None:
    """A flood run ``run`` (its max_depth only) on a 1 m grid over the sample plaza A001 and 5 m round it, dry but
    where ``paint(depth, x0, y0, x1, y1)`` puts water (``depth`` indexed [row, col] from the grid's north-west
    corner, (x0, y0, x1, y1) the plaza's bounds)."""
    from affine import Affine

    from cim.raster import Raster
    from twin_core.adapters.crowd import plaza_area
    from twin_core.twin import Twin

    with Twin.open(path) as t:
        area, _ = plaza_area(t, "A001")
        x0, y0, x1, y1 = area.polygon.bounds
        tr = Affine(1.0, 0.0, x0 - 5, 0.0, -1.0, y1 + 5)
        d = np.zeros((int(y1 - y0) + 10, int(x1 - x0) + 10), "float32")
        paint(d, x0, y0, x1, y1)
        t.save_result("base", run, "max_depth", Raster(d, tr, t.crs, unit="m"))


def test_cli_crowd_flooded_by(small_city_gpkg):
    from twin_core.cli import get_app
    from twin_core.twin import Twin

    def pond(d, x0, y0, x1, y1):  # over the plaza's west third, 1 m deep
        d[:, : int((x1 - x0) / 3) + 5] = 1.0

    save_plaza_flood(small_city_gpkg, "pond", pond)
    res = CliRunner().invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "60", "--until", "600",
                                         "--flooded-by", "pond", "--json", "--run", "flooded1"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["flooded_by"] == "pond" and s["water_m2"] > 0 and s["wading_depth_m"] == 0.5
    assert s["agents"] + s["cut_off_persons"] == 60
    with Twin.open(small_city_gpkg) as t:  # the run is saved with what the flood did
        assert t.load_result("base", "flooded1", "summary")["flooded_by"] == "pond"


def test_cli_crowd_lists_every_exit_and_the_closed_ones(small_city_gpkg, twin):
    # the README sends users to "a plain crowd run" for the exit names, but exits nobody used were left out and a
    # closed exit was not mentioned
    from twin_core.adapters.crowd import plaza_area
    from twin_core.cli import get_app

    area, _ = plaza_area(twin, "A001")
    names = list(area.exit_names)
    res = CliRunner().invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "3", "--quiet",
                                         "--close-exit", names[0]])
    assert res.exit_code == 0, res.output
    listed = [ln for ln in res.stdout.splitlines() if ln.startswith("  exit ")]
    assert len(listed) == len(names), res.stdout
    assert f"  exit {names[0]}: closed, width" in res.stdout


def test_cli_crowd_places_an_ifc_storey_with_anchor(small_city_gpkg, tmp_path):
    """The georeference errors told CLI users to pass --anchor, which `twin crowd` did not take."""
    from bim_import.samples import BoxBuilding, write_box_building
    from twin_core.cli import get_app
    from twin_core.errors import GeoreferenceError
    from twin_core.twin import Twin

    path = str(write_box_building(BoxBuilding(20, 10, 1, 3.0, 0.0, 0.0, georeferenced=False), tmp_path / "nogeo.ifc"))
    runner = CliRunner()
    res = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--ifc", path, "--storey", "0", "--agents", "10",
                                    "--anchor", "409600,3390800", "--json", "--quiet", "--run", "storey-1"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert json.loads(res.output)["evacuated"] == 10
    with Twin.open(small_city_gpkg) as twin:
        trips = twin.load_result("base", "storey-1", "trajectories")
    assert 409600 <= trips["x"].min() and trips["x"].max() <= 409620  # placed at the anchor, 20 m long
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--ifc", path, "--storey", "0", "--agents", "10",
                                    "--anchor", "409600"])
    assert isinstance(bad.exception, GeoreferenceError) and "X,Y" in str(bad.exception)
    bad = runner.invoke(get_app(), ["crowd", small_city_gpkg, "--area", "A001", "--agents", "5", "--anchor", "1,2"])
    assert isinstance(bad.exception, ParameterError) and "--ifc" in str(bad.exception)
