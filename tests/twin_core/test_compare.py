"""``twin compare`` / ``compare_runs``: what a what-if changes, on hand-made runs with figures worked by hand and
on real runs of the small sample city."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from twin_core.errors import LayerNotFoundError, ParameterError, RasterError, SchemaError

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
    # wet (> 0.15 m) in A: 0.2, 0.5, 0.3, 0.3, 1.0 = 5 cells; in B: 0.2, 0.6, 0.3, 0.2, 0.5, 0.16 = 6 cells
    assert (s["flooded_area_m2_a"], s["flooded_area_m2_b"], s["flooded_area_m2_change"]) == (125.0, 150.0, 25.0)
    # newly wet: (0,1) 0.1 -> 0.2 and (2,2) 0 -> 0.16; dry again: (0,2) 0.2 -> 0.1
    assert (s["newly_flooded_m2"], s["no_longer_flooded_m2"]) == (50.0, 25.0)
    # wet in both: (0,3) +0.1 deeper; (1,1) -0.1 and (2,0) -0.5 shallower; (1,0) the same
    assert (s["deeper_m2"], s["shallower_m2"]) == (25.0, 50.0)
    assert (s["max_depth_m_a"], s["max_depth_m_b"]) == (1.0, pytest.approx(0.6))
    assert (s["exposed_buildings_a"], s["exposed_buildings_b"], s["exposed_buildings_change"]) == (4, 4, 0)
    diff = c.rasters["max_depth_diff"]
    # nodata in both stays out: -9999 as in every other raster saved (NaN before 2026-12-05, review fix_flood)
    assert diff.transform == GRID and diff.unit == "m" and diff.nodata == -9999.0 and diff.data[1, 3] == -9999.0
    np.testing.assert_allclose(np.nan_to_num(diff.masked(), nan=9), np.array(
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
    assert t.loc["north", "agents_change"] == -20 and t.loc["north", "state_b"] == "closed"
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

    from twin_core import Twin
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
    bad = run.invoke(get_app(), ["compare", target, "fa", "fb", "--out", str(tmp_path / "b.xlsx"), "--save", "c2"])
    assert bad.exit_code != 0 and ".csv, .parquet" in str(bad.exception)
    with Twin.open(target) as t:
        assert "c2" not in set(t.runs()["run"])  # refused before anything was saved
    same = run.invoke(get_app(), ["compare", target, "fa", "fa"])
    assert same.exit_code != 0 and "same run" in str(same.exception)


def test_real_runs_of_the_small_city(small_city_gpkg):
    """End to end on the engines: a levee's flood against the base's, and a closure's traffic."""
    from shapely import box

    from twin_core import Twin
    from twin_core.adapters.compare import ENGINES, compare_runs
    from twin_core.errors import TwinWarning

    with Twin.open(small_city_gpkg) as twin:
        s = twin.scenarios.create("works")
        s.close_roads(box(409900, 3391000, 410000, 3391100))
        s.patch_raster("dem", box(409500, 3391090, 409700, 3391100), delta=2.0)
        twin.flood(None, storm="10y", duration="10min", until="10min", run="fa")
        twin.flood("works", storm="10y", duration="10min", until="10min", run="fb")
        c = compare_runs(twin, "fa", "fb")
        fa, fb = twin.load_result("base", "fa", "max_depth"), twin.load_result("works", "fb", "max_depth")
        # its nodata is -9999 (NaN before 2026-12-05): compared as read, nodata as NaN
        np.testing.assert_allclose(c.rasters["max_depth_diff"].masked(), fb.masked() - fa.masked(), atol=1e-6)
        summary_a = twin.load_result("base", "fa", "summary")
        assert c.summary["flooded_area_m2_a"] == summary_a["flooded_area_m2"]  # wet as the engine counts it
        assert set(ENGINES["flood"]) <= set(summary_a)  # every parameter it compares is recorded by the engine
        assert c.differences == {}
        twin.flood(None, storm="10y", duration="10min", until="10min", run="drained", drainage_mm_h=60)
        d = compare_runs(twin, "fa", "drained")
        assert d.differences == {"drainage_mm_h": (0.0, 60.0)}  # it was not recorded, so not said
        twin.traffic(None, mode="assign", run="ta")
        twin.traffic("works", mode="assign", run="tb")
        with pytest.warns(TwinWarning, match="more trips without a path"):  # the TSTT would flatter the closure
            t = compare_runs(twin, "ta", "tb")
        links = t.tables["link_changes"]
        assert t.summary["links_less"] == (links["change"] == "less").sum() > 0
        assert links["diff"].abs().is_monotonic_decreasing


def _buildings(ids):
    import geopandas as gpd
    from shapely import box

    return gpd.GeoDataFrame({"building_id": ids, "height_m": [10.0] * len(ids)},
                            geometry=[box(410000 + 20 * i, 3395000, 410010 + 20 * i, 3395010) for i in range(len(ids))],
                            crs="EPSG:4544")


def test_features_a_scenario_builds_or_pulls_down_are_not_water_or_reach_changes(tmp_path):
    """Flood: a building demolished in B was counted 'no longer flooded'; access: 'out of reach', and the
    merged table's NaN made B's unreachable count 1 where the engine said 0."""
    from twin_core.adapters.compare import compare_runs

    nan = float("nan")
    twin = _twin(tmp_path)
    twin.store.write_layer("buildings", _buildings(["B1", "B2", "B3"]))
    s = twin.scenarios.create("rebuild")
    s.remove_features("buildings", ["B3"])
    s.add_features("buildings", _buildings(["B1", "B2", "B3", "B9"]).iloc[[3]])
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5, "B3": 0.2})
    _flood(twin, "rebuild", "fb", B_DEPTH, {"B1": 0.6, "B9": 0.3})
    c = compare_runs(twin, "fa", "fb")
    t = c.tables["exposure_buildings_change"].set_index("building_id")["change"].to_dict()
    assert t == {"B1": "deeper", "B9": "added", "B3": "removed"}
    assert (c.summary["buildings_newly_flooded"], c.summary["buildings_no_longer_flooded"],
            c.summary["buildings_added"], c.summary["buildings_removed"]) == (0, 0, 1, 1)

    for run, scen, ids, times in (("aa", None, ["B1", "B2", "B3"], [60.0, 100.0, 30.0]),
                                  ("ab", "rebuild", ["B1", "B2", "B9"], [60.0, 300.0, 90.0])):
        twin.save_result(scen, run, "access_buildings", pd.DataFrame({"building_id": ids, "time_s": times,
                                                                      "within": [x <= 240 for x in times]}))
        twin.save_result(scen, run, "summary", {"engine": "access", "from_kind": "fire_station", "within_s": 240.0,
                                                "within": sum(x <= 240 for x in times), "unreachable": 0})
    a = compare_runs(twin, "aa", "ab")
    assert a.tables["access_buildings_change"].set_index("building_id")["change"].to_dict() == {
        "B2": "out of reach", "B9": "added", "B3": "removed", "B1": "same"}
    assert (a.summary["unreachable_a"], a.summary["unreachable_b"], a.summary["within_a"], a.summary["within_b"]) \
        == (0, 0, 3, 2)
    assert (a.summary["buildings_added"], a.summary["buildings_removed"], a.summary["out_of_reach"]) == (1, 1, 1)
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    twin.save_result(None, "aa2", "access_buildings", pd.DataFrame({"building_id": ["B1", "B2"], "time_s": [60.0, nan],
                                                                     "within": [True, False]}))
    twin.save_result(None, "aa2", "summary", {"engine": "access", "within": 1, "unreachable": 1})
    twin.save_result(None, "ab2", "access_buildings", pd.DataFrame({"building_id": ["B1", "B2"], "time_s": [90.0, nan],
                                                                     "within": [True, False]}))
    twin.save_result(None, "ab2", "summary", {"engine": "access", "within": 1, "unreachable": 1})
    out = CliRunner().invoke(get_app(), ["compare", twin.store.uri, "aa2", "ab2"]).output
    assert "access_buildings_change: 1 of 2 rows changed" in out, out  # B2, reached in neither, is no change


def test_runs_with_different_thresholds_are_not_compared_row_by_row(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5})
    _flood(twin, None, "f30", B_DEPTH, {"B1": 0.6}, threshold_m=0.3)
    with pytest.raises(ParameterError, match="deeper than 0.15 m .* deeper than 0.3 m: compare runs made with one"):
        compare_runs(twin, "fa", "f30")


def test_crowd_people_cut_off_and_exits_under_water(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    base = {"engine": "crowd", "status": "evacuated", "jams": [], "closed_exits": [],
            "exit_names": ["north", "south"], "evacuation_time_s": 60.0}
    twin.save_result(None, "dry", "summary", {**base, "agents": 100, "evacuated": 100, "exits": [
        {"exit": "north", "agents": 90, "last_s": 60.0}, {"exit": "south", "agents": 10, "last_s": 20.0}]})
    twin.save_result(None, "wet", "summary", {**base, "agents": 60, "evacuated": 60, "cut_off_persons": 40,
                                              "exits_under_water": ["north"], "flooded_by": "storm",
                                              "exits": [{"exit": "south", "agents": 60, "last_s": 70.0}]})
    c = compare_runs(twin, "dry", "wet")
    assert (c.summary["cut_off_persons_a"], c.summary["cut_off_persons_b"]) == (0, 40)  # was never compared
    t = c.tables["exit_changes"].set_index("exit")
    assert t["change"].to_dict() == {"north": "under water", "south": "more"}  # it said "fewer"
    assert c.differences == {}  # 'agents' (people simulated, after the cut-off) is a result, not a parameter
    lines = c.lines()
    assert "  cut_off_persons: 0 -> 40 (+40)" in lines


def test_a_comparison_id_taken_under_another_scenario_is_refused(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    twin.scenarios.create("levee")
    _flood(twin, None, "fa", A_DEPTH, {})
    _flood(twin, "levee", "fb", B_DEPTH, {})
    c = compare_runs(twin, "fa", "fb")
    with pytest.raises(ParameterError, match="taken under scenario 'base'"):  # it made 'fa' name two runs
        c.save(twin, "fa")
    with pytest.raises(SchemaError, match="run id .. is not valid"):  # an empty id is not "no id"
        twin.compare("fa", "fb", save="")


def test_sunlight_means_are_over_the_cells_both_runs_have(tmp_path):
    from cim.raster import Raster
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    nan = float("nan")
    for run, hours in (("sa", [[4.0, 4.0], [2.0, 8.0]]), ("sb", [[3.0, 4.0], [2.0, nan]])):  # B built on 8 h
        twin.save_result(None, run, "sunlight_hours", Raster(np.array(hours, "float32"), GRID, "EPSG:4544", unit="h"),
                         meta={"analysis": "sunlight", "date": "2026-01-20"})
    c = compare_runs(twin, "sa", "sb")
    s = c.summary
    assert (s["mean_sunlight_hours_a"], s["mean_sunlight_hours_b"]) == (pytest.approx(10 / 3), 3.0)
    assert (s["cells"], s["less_m2"], s["no_value_in_b_m2"], s["largest_loss"]) == (3, 25.0, 25.0, 1.0)


def test_lines_pair_figures_with_units():
    from twin_core.adapters.compare import Comparison

    c = Comparison("traffic", ("base", "a"), ("works", "b"), {"mean_trip_time_a_s": 600.0, "mean_trip_time_b_s": 660.0,
                                                               "mean_trip_time_change_s": 60.0, "links_more": 3})
    assert c.lines()[1:] == ["  mean_trip_time_s: 600 -> 660 (+60)", "  links_more: 3"]


def test_save_leaves_results_saved_by_hand_and_takes_a_scenario_in_either_unicode_form(tmp_path):
    import unicodedata

    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    nfc = "café"
    twin.scenarios.create(nfc)
    _flood(twin, None, "fa", A_DEPTH, {})
    _flood(twin, nfc, "fb", B_DEPTH, {})
    twin.save_result(nfc, "notes-run", "notes", {"by": "planner"})  # no engine: saved by hand
    c = compare_runs(twin, "fa", "fb")
    with pytest.raises(ParameterError, match=r"holds results saved by hand \(\['notes'\]\)"):
        c.save(twin, "notes-run")  # it deleted them
    assert twin.load_result(nfc, "notes-run", "notes") == {"by": "planner"}
    nfd = unicodedata.normalize("NFD", nfc)
    assert c.save(twin, "cmp1", scenario=nfd) == "cmp1"
    assert c.save(twin, "cmp1", scenario=nfd) == "cmp1"  # again: the same scenario, not "taken under 'café'"


def test_a_depth_at_the_threshold_is_not_flooded(tmp_path):
    """The engine counts deeper than the threshold as flooded (its flooded_area_m2, its exposure tables)."""
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    at = [[0.125, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]  # 0.125: exact in float32 too
    above = [[0.25, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    _flood(twin, None, "at", at, {}, threshold_m=0.125)
    _flood(twin, None, "above", above, {"B1": 0.25}, threshold_m=0.125)
    s = compare_runs(twin, "at", "above").summary
    assert (s["flooded_area_m2_a"], s["flooded_area_m2_b"], s["newly_flooded_m2"]) == (0.0, 25.0, 25.0)


def test_cli_checks_every_table_against_out_before_saving(small_city_gpkg, tmp_path):
    from typer.testing import CliRunner

    from twin_core import Twin
    from twin_core.cli import get_app

    with Twin.open(small_city_gpkg) as twin:
        twin.flood(None, storm="10y", duration="10min", until="10min", run="fa")
        twin.flood(None, storm="50y", duration="10min", until="10min", run="fb")
    res = CliRunner().invoke(get_app(), ["compare", small_city_gpkg, "fa", "fb", "--save", "cmpx", "--out",
                                         str(tmp_path / "o.gpkg")])
    assert res.exit_code != 0 and "no geometry" in str(res.exception)
    with Twin.open(small_city_gpkg) as twin:
        assert "cmpx" not in set(twin.runs()["run"])  # it was saved before --out failed
    ok = CliRunner().invoke(get_app(), ["compare", small_city_gpkg, "fa", "fb", "--out", str(tmp_path / "o.csv")])
    assert ok.exit_code == 0, ok.output
    wrote = sorted(p.name for p in tmp_path.glob("o-*.csv"))  # each table of a flood comparison
    assert wrote == ["o-exposure_buildings_change.csv", "o-exposure_pois_change.csv",
                     "o-exposure_road_links_change.csv"], ok.output
    assert "the runs differ in storm besides the scenario" in ok.output  # a 10- and a 50-year storm
