"""Crowd adapter / CLI review fixes (2026-12-05, a public-safety planner's review): flood no-data cells beside
buildings are not dry ground, a flooded run says how many were placed and cut off, exit names depend on
--road-reach (recorded, compared, warned), plaza vs IFC storey compared, --storey -1 refused, lat/lon waypoints
and exits recognised, --agents with --density refused in its own words, --release-rate."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_core.errors import ParameterError

X0, Y0 = 409700.0, 3390870.0
FZK = os.path.join(os.environ.get("TWIN_IFC_DIR", "/work/shared/data/ifc"), "AC20-FZK-Haus.ifc")


@pytest.fixture
def twin(small_city_gpkg):
    from twin_core.twin import Twin

    t = Twin.open(small_city_gpkg)
    yield t
    t.close()


def _cli(*args):
    from twin_core.cli import get_app

    r = CliRunner().invoke(get_app(), [str(a) for a in args])
    return r.exit_code, r.output + ("" if r.exception is None else f"\nerror: {r.exception}")


def _room20():
    """A 20 m x 10 m hall with a 2 m door east and west, at the sample city's coordinates."""
    from shapely.geometry import box

    from simulation.crowd import WalkableArea

    return WalkableArea(box(X0, Y0, X0 + 20, Y0 + 10), exits={"east": [(X0 + 20, Y0 + 4), (X0 + 20, Y0 + 6)],
                                                               "west": [(X0, Y0 + 4), (X0, Y0 + 6)]})


def _flood(twin, run, depth_fn, dv_fn=None):
    """A flood run's max_depth and hazard on a 1 m grid over the hall (x, y: metres from the hall's corner)."""
    from affine import Affine

    from cim.raster import Raster

    tr = Affine(1.0, 0.0, X0 - 10, 0.0, -1.0, Y0 + 20)
    cols, rows = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    x, y = tr.c + cols - X0, tr.f - rows - Y0
    grid = lambda f: np.asarray(np.broadcast_to(f(x, y), x.shape), "float32")  # noqa: E731
    twin.save_result("base", run, "max_depth", Raster(grid(depth_fn), tr, twin.crs, unit="m"))
    twin.save_result("base", run, "hazard", Raster(grid(dv_fn or (lambda x, y: 0.0 * x)), tr, twin.crs, unit="m2/s"))


# ---- MEDIUM 2: a no-data cell of the flood grid (a building) takes its neighbours' water, not 0 m -------------

def _block(x, y):  # a 2 m x 2 m block of cells with no data (a building's footprint) in the middle of the hall
    return (x > 9) & (x < 11) & (y > 4) & (y < 6)


def test_nodata_cells_in_the_water_are_not_a_dry_island(twin):
    from twin_core.adapters.crowd import flood_walkable

    # 0.3 m of water across the hall's middle (x 8-12 m, deeper than the 0.2 m waded), with no data where a
    # building stands inside it: the old code took those 4 m2 as dry, an island "cut off by water"
    _flood(twin, "nd1", lambda x, y: np.where(_block(x, y), np.nan, np.where((x > 8) & (x < 12), 0.3, 0.05)))
    area, info, cut = flood_walkable(twin, _room20(), {}, scenario=None, flood_run="nd1", wading_depth=0.2)
    assert cut == 0 and info["cut_off_m2"] == 0.0
    assert info["water_m2"] == pytest.approx(40.0, abs=0.5)  # the whole strip, the no-data block included
    # beside dry ground a no-data cell is dry: the hall keeps all of its 200 m2 but the strip
    _flood(twin, "nd2", lambda x, y: np.where(_block(x, y), np.nan, 0.05))
    area, info, cut = flood_walkable(twin, _room20(), {}, scenario=None, flood_run="nd2", wading_depth=0.2)
    assert info["water_m2"] == 0.0 and cut == 0


def test_building_cells_stored_as_nodata_are_not_dry(twin):
    # as a flood run stores them: -9999 (the raster's nodata) where buildings stand, 0 m in its depth snapshots;
    # the plaza ground beside a building overlaps such cells and was a dry island "cut off by water"
    from affine import Affine

    from cim.raster import Raster
    from twin_core.adapters.crowd import flood_walkable

    tr = Affine(1.0, 0.0, X0 - 10, 0.0, -1.0, Y0 + 20)
    cols, rows = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    x, y = tr.c + cols - X0, tr.f - rows - Y0
    strip = (x > 8) & (x < 12)
    d = np.where(_block(x, y), -9999.0, np.where(strip, 0.3, 0.05)).astype("float32")
    twin.save_result("base", "nd4", "max_depth", Raster(d, tr, twin.crs, nodata=-9999.0, unit="m"))
    twin.save_result("base", "nd4", "hazard", Raster(np.where(_block(x, y), -9999.0, 0.0).astype("float32"), tr,
                                                     twin.crs, nodata=-9999.0, unit="m2/s"))
    snap = np.where(_block(x, y), 0.0, np.where(strip, 0.3, 0.05))
    twin.save_result("base", "nd4", "depth_snapshots", np.stack([snap, snap]).astype("float32"),
                     meta={"snapshot_times_s": [600.0, 1200.0], "transform": list(tr)[:6]})
    for when in (None, 900):
        _, info, cut = flood_walkable(twin, _room20(), {}, scenario=None, flood_run="nd4", wading_depth=0.2,
                                      flood_time=when)
        assert cut == 0 and info["water_m2"] == pytest.approx(40.0, abs=0.5), when


def test_nodata_in_the_hazard_grid_takes_its_neighbours_too(twin):
    from twin_core.adapters.crowd import flood_walkable

    # shallow (0.1 m) fast water across the middle (depth x velocity 0.9 > 0.6 m2/s), no data in its hazard
    _flood(twin, "nd3", lambda x, y: np.where(_block(x, y), np.nan, 0.1),
           dv_fn=lambda x, y: np.where(_block(x, y), np.nan, np.where((x > 8) & (x < 12), 0.9, 0.0)))
    area, info, cut = flood_walkable(twin, _room20(), {}, scenario=None, flood_run="nd3")
    assert cut == 0 and info["water_m2"] == pytest.approx(40.0, abs=0.5)


# ---- MEDIUM 3: the people cut off are said, in the summary, the verdict and compare ----------------------------

def _cut_off_flood(twin, run="storm1"):
    # water 0.8 m deep across the middle (x 8-12 m) and over the west door: the west half is cut off
    _flood(twin, run, lambda x, y: np.where(((x > 8) & (x < 12)) | ((x < 2) & (y > 3) & (y < 7)), 0.8, 0.3))


def test_a_flooded_run_says_how_many_were_placed_and_cut_off(twin):
    from twin_core.adapters.crowd import run_crowd

    _cut_off_flood(twin)
    s = run_crowd(twin, walkable=_room20(), info={}, agents=100, until=300, flooded_by="storm1", seed=1,
                  run="wet").summary
    cut = s["cut_off_persons"]
    assert cut == round(100 * 72 / 152) and s["agents"] == 100 - cut and s["agents_requested"] == 100
    assert s["status"] == "evacuated"  # the engine's status, kept; the verdict says the rest
    assert s["verdict"] == f"evacuated {100 - cut} of 100; {cut} cut off by water need rescue"
    assert twin.load_result("base", "wet", "summary")["verdict"] == s["verdict"]  # saved with the run
    dry = run_crowd(twin, walkable=_room20(), info={}, agents=100, until=300, seed=1, run="dry").summary
    assert "verdict" not in dry and "agents_requested" not in dry  # no flood: as before
    cmp = twin.compare("dry", "wet")
    assert cmp.summary["cut_off_persons_a"] == 0 and cmp.summary["cut_off_persons_b"] == cut
    assert cmp.summary["agents_requested_a"] == 100 and cmp.summary["agents_requested_b"] == 100
    text = "\n".join(cmp.lines())
    assert f"the runs placed different numbers of people (100 and {100 - cut}" in text, text
    assert f"cut off by water and not simulated: 0 and {cut}" in text


def test_cli_verdict_of_a_flooded_run(small_city_gpkg):
    from tests.twin_core.test_crowd_adapter import save_plaza_flood

    def moat(d, x0, y0, x1, y1):  # a 1 m deep moat round the plaza's middle: its people are cut off
        cx, cy = int((x1 - x0) / 2) + 5, int((y1 - y0) / 2) + 5
        d[cy - 12:cy + 12, cx - 12:cx + 12] = 1.0
        d[cy - 9:cy + 9, cx - 9:cx + 9] = 0.0

    save_plaza_flood(small_city_gpkg, "moat", moat)
    code, out = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "200", "--until", "900",
                     "--flooded-by", "moat", "--quiet")
    assert code == 0, out
    first = out.splitlines()[0]
    assert "cut off by water need rescue" in first and "of 200" in first, out
    assert "persons asked for" in out


# ---- MEDIUM 4: exit names depend on --road-reach ----------------------------------------------------------------

def _fake_crowd_summary(twin, run, **kw):
    """A stored crowd run's summary (what compare reads), without running the engine."""
    s = {"engine": "crowd", "scenario": "base", "run": run, "status": "evacuated", "agents": 10, "evacuated": 10,
         "evacuation_time_s": 30.0, "jams": [], "exits": [], "sim_time_s": 30.0, "model": "csm", "seed": 0,
         "closed_exits": [], "route": [], **kw}
    twin.save_result("base", run, "summary", s, meta={"engine": "simulation.crowd"})


def test_road_reach_is_in_the_summary_and_compare_says_when_it_differs(twin):
    s = twin.crowd("A001", agents=5, until=60, run="r30", road_reach=30).summary
    assert s["road_reach_m"] == 30.0
    assert twin.load_result("base", "r30", "summary")["road_reach_m"] == 30.0
    _fake_crowd_summary(twin, "r10", area_id="A001", road_reach_m=10.0)
    text = "\n".join(twin.compare("r10", "r30").lines())
    assert "the runs differ in road_reach_m besides the scenario: 10.0 and 30.0" in text, text


def test_a_closed_exit_name_that_means_another_stretch_at_this_reach_warns(twin):
    from twin_core.errors import TwinWarning

    # at 10 m '-266227878#1:1' is the 19.9 m east exit; at 30 m that name is a 12.1 m piece of the diagonal
    # edge and the east exit is ':2': the scenario's closure hit another exit without a word
    sc = twin.scenarios.create("shut_east", exist_ok=True)
    sc.set_param("crowd_closed_exits", ["-266227878#1:1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        twin.crowd("A001", agents=5, until=60, scenario="shut_east", save=False)  # the names' own reach: quiet
    with pytest.warns(TwinWarning, match=r"exit names depend on road_reach .* given for road_reach 10 m .* "
                                         r"'-266227878#1:1' is the 12.1 m stretch .* at 10 m it was the 19.9 m"):
        twin.crowd("A001", agents=5, until=60, scenario="shut_east", save=False, road_reach=30)
    sc.set_param("crowd_closed_exits_road_reach", 30)  # names made at 30 m: quiet there
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        twin.crowd("A001", agents=5, until=60, scenario="shut_east", save=False, road_reach=30)


# ---- LOW 8: a plaza against an IFC storey ---------------------------------------------------------------------

def test_compare_plaza_with_an_ifc_storey_says_so(twin):
    _fake_crowd_summary(twin, "plaza", area_id="A001")
    _fake_crowd_summary(twin, "fzk", ifc="/x/AC20-FZK-Haus.ifc", storey="Erdgeschoss")
    text = "\n".join(twin.compare("plaza", "fzk").lines())
    assert ("the runs differ in walkable area besides the scenario: area A001 and storey 'Erdgeschoss' of IFC "
            "model /x/AC20-FZK-Haus.ifc") in text, text


# ---- LOW 9: --storey -1 -----------------------------------------------------------------------------------------

def test_negative_storey_is_refused_with_the_range(small_city_gpkg):
    if not os.path.isfile(FZK):
        pytest.skip("no AC20-FZK-Haus.ifc")
    from twin_core.adapters.crowd import storey_area

    with pytest.raises(ParameterError, match=r"storey -1: a storey index counts from 0 \(the lowest\) up, 0 to \d"):
        storey_area(FZK, -1)
    code, out = _cli("crowd", small_city_gpkg, "--ifc", FZK, "--storey", "-1", "--agents", "5",
                     "--anchor", "409700,3390900")
    assert code != 0 and "counts from 0 (the lowest) up" in out, out


# ---- LOW 10: lat/lon waypoints and lon/lat exits --------------------------------------------------------------

def test_waypoint_given_latitude_first_is_recognised_and_the_extent_shown(small_city_gpkg):
    code, out = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "5", "--waypoint", "x=30.635,104.058")
    assert code != 0
    assert "look like latitude/longitude (latitude first)" in out and "spans (4096" in out, out


def test_exit_given_in_lonlat_is_said_to_be_lonlat(twin):
    with pytest.raises(ParameterError, match=r"exit 'e' \(104.06, 30.66\) is not on the walkable area.*look like "
                                             r"longitude/latitude"):
        twin.crowd("A001", agents=5, until=60, save=False, exits={"e": [(104.06, 30.66), (104.0601, 30.66)]})


# ---- LOW 11 and the release rate --------------------------------------------------------------------------------

def test_agents_and_density_together_are_refused_in_their_own_words(small_city_gpkg, twin):
    code, out = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "5", "--density", "0.5")
    assert code != 0 and "give one of --agents or --density, not both" in out, out
    with pytest.raises(ParameterError, match="not both"):
        twin.crowd("A001", agents=5, density=0.5, save=False)


def test_release_rate(small_city_gpkg, twin):
    s = twin.crowd("A001", agents=10, until=120, save=False, release_rate=1.0).summary
    assert s["release_rate_per_s"] == 1.0 and s["evacuated"] == 10
    with pytest.raises(ParameterError, match="release_rate"):
        twin.crowd("A001", agents=10, save=False, release_rate=0)
    code, out = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "10", "--until", "120",
                     "--release-rate", "2", "--json", "--quiet")
    assert code == 0, out
    assert json.loads(out)["release_rate_per_s"] == 2.0


def test_closed_exits_road_reach_is_a_known_scenario_parameter():
    from twin_core.adapters.crowd import CLOSED_EXITS_REACH_PARAM
    from twin_core.adapters.scenario_params import check_scenario_param, scenario_params
    from twin_core.errors import ParameterError

    assert CLOSED_EXITS_REACH_PARAM in scenario_params()  # no "no engine reads it" warning, the map takes it
    check_scenario_param(CLOSED_EXITS_REACH_PARAM, 30)
    for bad in (0, -5, "30", float("nan")):
        with pytest.raises(ParameterError, match=CLOSED_EXITS_REACH_PARAM):
            check_scenario_param(CLOSED_EXITS_REACH_PARAM, bad)


def test_the_lonlat_hint_shows_the_numbers_as_given():
    # ":g" cut 104.0563 to 104.056 (an engineer's review): the hint shows what was typed
    from twin_core.adapters.crowd import _lonlat_hint

    h = _lonlat_hint(104.0563, 30.6572, "EPSG:4544")
    assert "(104.0563, 30.6572) look like longitude/latitude" in h
