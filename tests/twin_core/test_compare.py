"""``twin compare`` / ``compare_runs``: what a what-if changes, on hand-made runs with figures worked by hand and
on real runs of the small sample city."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from twin_core.errors import LayerNotFoundError, ParameterError, RasterError

GRID = Affine(5.0, 0.0, 410000.0, 0.0, -5.0, 3395015.0)  # 3 x 4 cells of 25 m2


def _twin(tmp_path):
    from twin_core import Twin

    return Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544")


def _flood(twin, scenario, run, depth, exposed: dict, **summary):
    from cim.raster import Raster

    twin.save_result(scenario, run, "max_depth", Raster(np.asarray(depth, "float32"), GRID, "EPSG:4544",
                                                        nodata=-9999.0, unit="m"), meta={"engine": "simulation.flood"})
    twin.save_result(scenario, run, "exposure_buildings",
                     pd.DataFrame({"building_id": list(exposed), "max_depth_m": list(exposed.values()),
                                   "time_of_arrival_s": [600.0] * len(exposed)}), meta={"engine": "simulation.flood"})
    twin.save_result(scenario, run, "summary", {"engine": "flood", "threshold_m": 0.15, "max_depth_m":
                                                float(np.max(depth)), "exposed_buildings": len(exposed), **summary},
                     meta={"engine": "simulation.flood"})


A_DEPTH = [[0.0, 0.1, 0.2, 0.5], [0.3, 0.3, 0.0, -9999.0], [1.0, 0.0, 0.0, 0.0]]
B_DEPTH = [[0.0, 0.2, 0.1, 0.6], [0.3, 0.2, 0.0, -9999.0], [0.5, 0.0, 0.16, 0.0]]
STORM = {"return_period_y": 50.0, "duration_s": 1800.0}


def test_flood_comparison_worked_by_hand(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    twin.scenarios.create("levee")
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5, "B2": 0.3, "B3": 0.2, "B4": 1.0}, storm=STORM)
    _flood(twin, "levee", "fb", B_DEPTH, {"B1": 0.6, "B2": 0.31, "B5": 0.16, "B4": 0.5}, storm=STORM)
    c = compare_runs(twin, "fa", "fb")
    assert (c.engine, c.a, c.b, c.differences) == ("flood", ("base", "fa"), ("levee", "fb"), {})
    s = c.summary
    # wet (>= 0.15 m) in A: 0.2, 0.5, 0.3, 0.3, 1.0 = 5 cells; in B: 0.2, 0.6, 0.3, 0.2, 0.5, 0.16 = 6 cells
    assert (s["flooded_area_m2_a"], s["flooded_area_m2_b"], s["flooded_area_m2_change"]) == (125.0, 150.0, 25.0)
    # newly wet: (0,1) 0.1 -> 0.2 and (2,2) 0 -> 0.16; dry again: (0,2) 0.2 -> 0.1
    assert (s["newly_flooded_m2"], s["no_longer_flooded_m2"]) == (50.0, 25.0)
    # wet in both: (0,3) +0.1 deeper; (1,1) -0.1 and (2,0) -0.5 shallower; (1,0) the same
    assert (s["deeper_m2"], s["shallower_m2"]) == (25.0, 50.0)
    assert (s["max_depth_m_a"], s["max_depth_m_b"]) == (1.0, pytest.approx(0.6))
    assert (s["exposed_buildings_a"], s["exposed_buildings_b"], s["exposed_buildings_change"]) == (4, 4, 0)
    diff = c.rasters["max_depth_diff"]
    assert diff.transform == GRID and diff.unit == "m" and np.isnan(diff.data[1, 3])  # nodata in both stays out
    np.testing.assert_allclose(np.nan_to_num(diff.data, nan=9), np.array(
        [[0, 0.1, -0.1, 0.1], [0, -0.1, 0, 9], [-0.5, 0, 0.16, 0]]), atol=1e-6)
    t = c.tables["exposure_buildings_change"].set_index("building_id")
    assert t["change"].to_dict() == {"B5": "newly flooded", "B1": "deeper", "B3": "no longer flooded",
                                     "B4": "shallower", "B2": "same"}
    assert list(t.index) == ["B5", "B1", "B3", "B4", "B2"]  # the worse changes first
    assert (s["buildings_newly_flooded"], s["buildings_no_longer_flooded"]) == (1, 1)
    assert t.loc["B3", "max_depth_change_m"] == pytest.approx(-0.2) and np.isnan(t.loc["B3", "max_depth_m_b"])
    lines = c.lines()
    assert lines[0] == "flood: A = run 'fa' (base), B = run 'fb' (levee)"
    assert "  flooded_area_m2: 125 -> 150 (+25)" in lines and "<Comparison flood: 'fa' (base) -> 'fb'" in repr(c)


def test_a_parameter_that_differs_besides_the_scenario_is_said(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {}, storm=STORM)
    _flood(twin, None, "f10", B_DEPTH, {}, storm={**STORM, "return_period_y": 10.0})
    c = compare_runs(twin, "fa", "f10")
    assert c.differences == {"storm": (STORM, {**STORM, "return_period_y": 10.0})}
    assert any("differ in storm besides the scenario" in x for x in c.lines())
    assert c.to_dict()["differences"]["storm"][1]["return_period_y"] == 10.0


def test_bad_pairs_are_refused_clearly(tmp_path):
    from cim.raster import Raster
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {})
    twin.save_result(None, "acc", "summary", {"engine": "access"})
    twin.save_result(None, "odd", "summary", {"engine": "something"})
    with pytest.raises(ParameterError, match="same run 'fa'"):
        compare_runs(twin, "fa", "fa")
    with pytest.raises(ParameterError, match="'fa' is a flood run and 'acc' a access run"):
        compare_runs(twin, "fa", "acc")
    with pytest.raises(ParameterError, match="is a something run; runs of .*'crowd'.* can be compared"):
        compare_runs(twin, "odd", "fa")
    with pytest.raises(LayerNotFoundError, match="did you mean 'fa'"):
        compare_runs(twin, "fa", "faa")
    with pytest.raises(ParameterError, match="run id"):
        compare_runs(twin, "fa", 7)
    # another grid: the cells do not match, so no difference can be taken
    _flood(twin, None, "coarse", A_DEPTH, {})
    twin.save_result(None, "coarse", "max_depth", Raster(np.zeros((3, 4), "float32"), Affine(10, 0, 410000, 0, -10,
                                                                                              3395030), "EPSG:4544"))
    with pytest.raises(RasterError, match="different grids.*same DEM extent and cell size"):
        compare_runs(twin, "fa", "coarse")


def test_access_comparison(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    nan = float("nan")
    for run, times in (("aa", [100.0, 200.0, 230.0, nan, 50.0, nan, 300.0]),
                       ("ab", [100.5, 300.0, 200.0, 120.0, nan, nan, nan])):
        twin.save_result(None, run, "access_buildings", pd.DataFrame({
            "building_id": [f"B{i}" for i in range(7)], "time_s": times, "within": [t <= 240 for t in times]}))
        twin.save_result(None, run, "summary", {"engine": "access", "from_kind": "fire_station", "within_s": 240.0,
                                                "median_time_s": float(np.nanmedian(times)),
                                                "flooded_by": None if run == "aa" else "storm"})
    c = compare_runs(twin, "aa", "ab")
    t = c.tables["access_buildings_change"].set_index("building_id")
    # B4 was within reach and has no road now: out of reach; B6 was reached, beyond 240 s, and is no longer
    assert t["change"].to_dict() == {"B1": "out of reach", "B4": "out of reach", "B6": "no longer reached",
                                     "B3": "now within reach", "B2": "faster", "B0": "same", "B5": "reached in neither"}
    assert list(t.index) == ["B1", "B4", "B6", "B3", "B2", "B0", "B5"]  # losses first
    s = c.summary
    assert (s["within_a"], s["within_b"], s["within_change"]) == (4, 3, -1)
    assert (s["unreachable_a"], s["unreachable_b"], s["out_of_reach"], s["now_within_reach"]) == (2, 3, 2, 1)
    assert c.differences == {"flooded_by": (None, "storm")}


def test_crowd_comparison_counts_each_exit(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)

    def exits(**agents):
        return [{"exit": k, "width_m": 2.0, "agents": v, "last_s": 10.0 * v, "flow_per_s": 1.0} for k, v in agents.items()]

    twin.save_result(None, "ca", "summary", {"engine": "crowd", "status": "evacuated", "agents": 30, "evacuated": 30,
                                             "evacuation_time_s": 60.0, "jams": [], "closed_exits": [],
                                             "exits": exits(north=20, south=10, west=0)})
    twin.save_result(None, "cb", "summary", {"engine": "crowd", "status": "jammed", "agents": 30, "evacuated": 25,
                                             "evacuation_time_s": None, "jams": [{"t": 1}], "closed_exits": ["north"],
                                             "exits": exits(south=20, west=5)})
    c = compare_runs(twin, "ca", "cb")
    t = c.tables["exit_changes"].set_index("exit")
    assert t["change"].to_dict() == {"north": "closed", "south": "more", "west": "more"}
    assert t.loc["north", "agents_change"] == -20 and bool(t.loc["north", "closed_b"])
    s = c.summary
    assert (s["status_a"], s["status_b"], s["evacuated_change"], s["jams_a"], s["jams_b"]) == (
        "evacuated", "jammed", -5, 0, 1)
    assert s["evacuation_time_s_change"] is None  # B never finished: no change to give
    assert c.differences == {"closed_exits": ([], ["north"])}


def test_save_lists_exports_and_views_the_comparison(tmp_path):
    import rasterio

    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5})
    _flood(twin, None, "fb", B_DEPTH, {"B1": 0.6})
    c = compare_runs(twin, "fa", "fb")
    run = c.save(twin, "cmp")
    runs = twin.runs().set_index("run")
    assert run == "cmp" and runs.loc["cmp", "engine"] == "compare"
    assert twin.load_result("base", "cmp", "summary")["flooded_area_m2_change"] == 25.0
    out = tmp_path / "d.tif"
    twin.export_result("cmp", "max_depth_diff", out)
    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1)[0], [0, 0.1, -0.1, 0.1], atol=1e-6)
    with pytest.raises(ParameterError, match="holds a simulation.flood run"):  # a flood run's id is not free
        c.save(twin, "fa")
    deck = twin.view(result=("cmp", "max_depth_diff"))
    legend = deck.legend  # round 0, as far as the largest change (-0.5 m) either way
    assert legend["style"] == "diff" and legend["vmin"] == -legend["vmax"] == pytest.approx(-0.5)
    again = twin.compare("fa", "fb", save="cmp")  # the same id again: replaced whole, not mixed
    assert again.saved_as == "cmp" and set(twin.results().query("run == 'cmp'")["name"]) == {
        "summary", "max_depth_diff", "exposure_buildings_change"}


def test_cli_compare(tmp_path):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    twin = _twin(tmp_path)
    twin.scenarios.create("levee")
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5, "B3": 0.2})
    _flood(twin, "levee", "fb", B_DEPTH, {"B1": 0.6, "B5": 0.16})
    twin.close()
    target = str(tmp_path / "t.gpkg")
    run = CliRunner()
    res = run.invoke(get_app(), ["compare", target, "fa", "fb", "--out", str(tmp_path / "b.csv"), "--save", "c1"])
    assert res.exit_code == 0, res.output
    assert "  newly_flooded_m2: 50" in res.output
    assert "exposure_buildings_change: 3 of 3 rows changed; the 3 most changed:" in res.output
    assert pd.read_csv(tmp_path / "b.csv")["change"].tolist() == ["newly flooded", "deeper", "no longer flooded"]
    assert "saved as run 'c1' under scenario 'levee'" in res.output
    doc = json.loads(run.invoke(get_app(), ["compare", target, "fa", "fb", "--json"]).stdout)
    assert doc["compared"] == "flood" and doc["a"] == ["base", "fa"] and doc["saved_as"] is None
    bad = run.invoke(get_app(), ["compare", target, "fa", "fb", "--out", str(tmp_path / "b.gpkg")])
    assert bad.exit_code != 0 and "no geometry" in str(bad.exception)
    same = run.invoke(get_app(), ["compare", target, "fa", "fa"])
    assert same.exit_code != 0 and "same run" in str(same.exception)


def test_real_runs_of_the_small_city(small_city_gpkg):
    """End to end on the engines: a levee's flood against the base's, and a closure's traffic."""
    from shapely import box

    from twin_core import Twin
    from twin_core.adapters.compare import compare_runs

    with Twin.open(small_city_gpkg) as twin:
        s = twin.scenarios.create("works")
        s.close_roads(box(409900, 3391000, 410000, 3391100))
        s.patch_raster("dem", box(409500, 3391090, 409700, 3391100), delta=2.0)
        twin.flood(None, storm="10y", duration="10min", until="10min", run="fa")
        twin.flood("works", storm="10y", duration="10min", until="10min", run="fb")
        c = compare_runs(twin, "fa", "fb")
        fa, fb = twin.load_result("base", "fa", "max_depth"), twin.load_result("works", "fb", "max_depth")
        np.testing.assert_allclose(c.rasters["max_depth_diff"].data, fb.masked() - fa.masked(), atol=1e-6)
        assert c.summary["flooded_area_m2_a"] == pytest.approx(twin.load_result("base", "fa", "summary")
                                                                ["flooded_area_m2"], rel=0.05)
        twin.traffic(None, mode="assign", run="ta")
        twin.traffic("works", mode="assign", run="tb")
        with pytest.warns(Warning):  # the closure leaves trips without a path: the TSTT is said to flatter it
            t = compare_runs(twin, "ta", "tb")
        links = t.tables["link_changes"]
        assert t.summary["links_less"] == (links["change"] == "less").sum() > 0
        assert links["diff"].abs().is_monotonic_decreasing
