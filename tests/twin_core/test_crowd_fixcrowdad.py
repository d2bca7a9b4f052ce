"""Crowd adapter review fixes (2026-12-05): plaza exits without corner slivers, IFC storeys with several parts
or only stairs, lon/lat refused where metres are wanted, params merged with model= / trajectory_interval=,
errors in the CLI's words, the exits' geometry saved, and a scenario's own closures not reported by compare."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_core.errors import GeometryError, ParameterError

IFC_DIR = os.environ.get("TWIN_IFC_DIR", "/work/shared/data/ifc")
DUPLEX = os.path.join(IFC_DIR, "Ifc2x3_Duplex_Architecture.ifc")
FZK = os.path.join(IFC_DIR, "AC20-FZK-Haus.ifc")
#: where the models are put in the sample city (EPSG:4544 metres, inside its 1 km extent)
ANCHOR = (409700.0, 3390900.0)


def need(path: str) -> str:
    if not os.path.isfile(path):
        pytest.skip(f"no {os.path.basename(path)} in {IFC_DIR} (set TWIN_IFC_DIR to the real IFC models)")
    return path


@pytest.fixture
def twin(small_city_gpkg):
    from twin_core.twin import Twin

    t = Twin.open(small_city_gpkg)
    yield t
    t.close()


class _Out:
    """A CLI run: ``exit_code`` and ``output``, the printed text and the error it ended with."""

    def __init__(self, r):
        self.exit_code = r.exit_code
        self.output = r.output + ("" if r.exception is None else f"\nerror: {r.exception}")


def _cli(*args):
    from twin_core.cli import get_app

    return _Out(CliRunner().invoke(get_app(), [str(a) for a in args]))


# ---- 1. plaza exits: no sliver on a corner bend -------------------------------------------------------------

def test_corner_bend_and_straight_vertex_are_no_exits_of_their_own():
    from shapely.geometry import Polygon

    from twin_core.adapters.crowd import exits_from_roads

    # a 20 m x 10 m plaza with its south-east corner chamfered (1.34 m) and a vertex 2 cm off the straight east
    # edge: roads 5 m south and 5 m east of it
    plaza = Polygon([(0, 0), (18.8, 0), (20, 0.6), (20.02, 5), (20, 10), (0, 10)])
    ex = exits_from_roads(plaza, [[(5, -5), (25, -5)], [(25, -5), (25, 10)]], road_reach=5.5,
                          names=["south", "east"])
    # the bend (nearer the south road: it would be south:1) is dropped; the east edge is one straight exit
    assert set(ex) == {"south:0", "east:0"}
    assert np.allclose(sorted(ex["east:0"]), [(20, 0.6), (20, 10)], atol=0.01)
    # the south edge from where it comes within 5.5 m of the road's end (5, -5): x = 5 - sqrt(5.5^2 - 5^2)
    # (atol 0.03 m: shapely's buffer draws the road's round end with 8 segments a quarter circle, 0.015 m off here)
    assert np.allclose(sorted(ex["south:0"]), [(5 - np.sqrt(5.5 ** 2 - 25), 0), (18.8, 0)], atol=0.03)


def test_whole_short_opening_is_kept_and_a_sliver_under_min_width_is_not():
    from shapely.geometry import box

    from twin_core.adapters.crowd import exits_from_roads

    # one 1.5 m straight stretch near the road (no longer piece beside it): a narrow gate, kept
    road = [[(21, 4.25), (21, 5.75)]]
    assert list(exits_from_roads(box(0, 0, 20, 10), road, road_reach=1.0)) == ["road0:0"]
    # a 1.0 m one is narrower than MIN_EXIT_WIDTH_M (1.1 m): no exit
    assert exits_from_roads(box(0, 0, 20, 10), [[(20.5, 4.5), (20.5, 5.5)]], road_reach=0.5) == {}


def test_sample_plaza_exits_have_no_corner_slivers(twin):
    from twin_core.adapters.crowd import CORNER_BEND_M, plaza_area

    for area in ("A001", "A002"):
        walk, _ = plaza_area(twin, area)
        widths = dict(zip(walk.exit_names, np.hypot(walk.exit_segments[:, 2] - walk.exit_segments[:, 0],
                                                    walk.exit_segments[:, 3] - walk.exit_segments[:, 1])))
        assert "-265607427:0" not in widths and "-266227878#1:2" not in widths  # the 1.0 m slivers of the review
        assert min(widths.values()) >= 1.1
        assert sum(w < CORNER_BEND_M for w in widths.values()) == 0, widths
    # the README's exit keeps its name
    walk, _ = plaza_area(twin, "A001")
    assert "-265607427:1" in walk.exit_names


# ---- 2. IFC storeys: every part with an exit, stairs on upper storeys --------------------------------------

def test_duplex_ground_storey_keeps_both_halves(twin):
    run = twin.crowd(ifc=need(DUPLEX), storey=1, agents=30, anchor=ANCHOR, until=120, run="dup")  # tuple anchor
    s = run.summary
    assert s["status"] == "evacuated" and s["evacuated"] == 30
    assert s["floor_parts"] == 2 and s["parts_dropped"] == []
    use = run.result.exit_usage().set_index("exit")["agents"]
    assert len(use) == 4
    # each half of the semi-detached house has two doors; people leave through both halves
    halves = [use[["1hOSvn6df7F8_7GcBWlRGQ", "1s1jVhK8z0pgKYcr9jt7AB"]].sum(),
              use[["1hOSvn6df7F8_7GcBWlRH8", "1s1jVhK8z0pgKYcr9jt781"]].sum()]
    assert min(halves) > 0 and sum(halves) == 30
    # what repeats the run: the file, the storey and the anchor
    stored = twin.load_result("base", "dup", "summary")
    assert stored["ifc"] == need(DUPLEX) and stored["storey"] == "Level 1"
    assert stored["anchor"]["x"] == ANCHOR[0] and stored["anchor"]["y"] == ANCHOR[1]


def test_part_without_exit_is_dropped_with_a_warning(monkeypatch):
    import bim_import
    from bim_import.floorplan import Floorplan
    from shapely.geometry import MultiPolygon, box

    from twin_core.adapters.crowd import storey_area
    from twin_core.errors import TwinWarning

    plan = Floorplan(storey="L0", elevation_m=0.0, cut_z_m=1.0, walls=[], doors=[],
                     walkable=MultiPolygon([box(0, 0, 10, 10), box(20, 0, 25, 4)]),
                     exit_lines={"door": [(10, 4), (10, 5)], "far": [(40, 0), (40, 1)]})
    monkeypatch.setattr(bim_import, "storey_floorplan", lambda *a, **k: plan)
    with pytest.warns(TwinWarning, match=r"1 part\(s\) of the floor have no exit.*20.0 m2 round \(22.5, 2.0\)"):
        walk, info = storey_area("x.ifc", 0)
    assert walk.polygon.area == pytest.approx(100.0) and walk.exit_names == ["door"]  # "far" is on no kept part
    assert info["parts_dropped"] == [{"m2": 20.0, "x": 22.5, "y": 2.0}]


@pytest.mark.parametrize("path, storey, stairs", [(FZK, 1, 1), (DUPLEX, "Level 2", 2)])
def test_upper_storey_leaves_by_its_stairs(twin, path, storey, stairs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the models' sites are far from Chengdu: placed by the anchor
        run = twin.crowd(ifc=need(path), storey=storey, agents=10, anchor=ANCHOR, until=60, save=False)
    assert len(run.summary["stair_exits"]) == stairs
    assert sorted(run.summary["exit_names"]) == sorted(run.summary["stair_exits"])
    assert run.summary["evacuated"] >= 8  # the stairs carry people (a narrow flight may jam the last ones)


def test_storey_with_no_way_out_says_what_to_do():
    from twin_core.adapters.crowd import storey_area

    # the storeys that have a way out are named (it said "--storey 0, the lowest" whatever that storey was: the
    # Duplex's storey 0, 'T/FDN', has no door either)
    with pytest.raises(GeometryError, match=r"no external door and no stair.*one that has a way out: "
                                            r"--storey 1 \('Level 1'\), --storey 2 \('Level 2'\)") as e:
        storey_area(need(DUPLEX), "Roof")
    assert "--storey 0" not in str(e.value)
    with pytest.raises(GeometryError, match=r"storey 'T/FDN' has no external door.*--storey 1 \('Level 1'\)"):
        storey_area(need(DUPLEX), 0)


# ---- 3. lon/lat where metres are wanted ---------------------------------------------------------------------

def test_lonlat_anchor_is_refused_with_the_metres(small_city_gpkg, twin):
    r = _cli("crowd", small_city_gpkg, "--ifc", need(FZK), "--storey", "0", "--agents", "5",
             "--anchor", "104.058,30.635")
    assert r.exit_code != 0
    msg = " ".join(str(r.output).split())
    assert "--anchor" in msg and "look like longitude/latitude" in msg and "409692" in msg
    with pytest.raises(ParameterError, match="look like longitude/latitude"):
        twin.crowd(ifc=need(FZK), storey=0, agents=5, anchor=(104.058, 30.635))
    assert twin.runs().empty


def test_lonlat_waypoint_is_refused(small_city_gpkg):
    r = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "5", "--waypoint", "kiosk=104.058,30.635")
    assert r.exit_code != 0
    assert "waypoint 'kiosk'" in r.output and "look like longitude/latitude" in " ".join(r.output.split())


# ---- 4. params with model= / trajectory_interval=, a dict of params --------------------------------------------

def test_model_and_trajectory_interval_win_over_params(twin):
    from simulation.crowd import CrowdParameters

    run = twin.crowd("A001", agents=20, until=20, model="sfm", trajectory_interval=2.0,
                     params=CrowdParameters(speed_mean=1.2), save=False)
    assert run.summary["model"] == "sfm"
    t = np.unique(run.result.trajectories["time_s"].to_numpy())
    assert np.allclose(np.diff(t)[:3], 2.0, atol=0.011)  # frames fall on the engine's 0.01 s steps


def test_params_as_a_dict(twin):
    run = twin.crowd("A001", agents=10, until=10, params={"speed_mean": 1.0}, save=False)
    assert run.summary["model"] == "csm"
    with pytest.raises(ParameterError, match=r"params has no field 'speed'.*speed_mean"):
        twin.crowd("A001", agents=10, params={"speed": 1.0}, save=False)


# ---- 5. errors name what to change, in the CLI's words -------------------------------------------------------

def test_unknown_exit_in_the_scenario_names_the_setting(twin):
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM

    twin.scenarios.create("S").set_param(CLOSED_EXITS_PARAM, ["north gate"])
    with pytest.raises(GeometryError) as e:
        twin.crowd("A001", agents=10, scenario="S", save=False)
    msg = str(e.value)
    assert "'north gate'" in msg and "crowd_closed_exits of scenario 'S'" in msg and "twin scenario set" in msg
    assert "-265607427:1" in msg  # the exits to choose from
    with pytest.raises(GeometryError, match=r"unknown exit 'west' in closed_exits= \(CLI: --close-exit\)"):
        twin.crowd("A001", agents=10, closed_exits=["west"], save=False)


def test_cli_refuses_negative_reach_and_wading_depth_in_its_words(small_city_gpkg, twin):
    from twin_core.adapters.crowd import plaza_area

    r = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "5", "--road-reach", "-5")
    assert r.exit_code != 0 and "--road-reach" in r.output and "no road comes within" not in r.output
    r = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "5", "--wading-depth", "0")
    assert r.exit_code != 0 and "--wading-depth" in r.output
    with pytest.raises(ParameterError, match="road_reach"):
        plaza_area(twin, "A001", road_reach=-5)
    with pytest.raises(GeometryError, match=r"--road-reach METRES"):
        plaza_area(twin, "A001", road_reach=0.001)


# ---- 6. the exits' geometry saved ---------------------------------------------------------------------------

def test_exits_layer_places_the_exits(twin, tmp_path):
    run = twin.crowd("A001", agents=60, until=300, run="e1", closed_exits=["-265607427:1"])
    layer = twin.load_result("base", "e1", "exits")
    assert list(layer["exit"]) == run.summary["exit_names"]
    assert (layer.geometry.geom_type == "LineString").all() and str(layer.crs) == str(twin.crs)
    assert np.allclose(layer.geometry.length, layer["width_m"], atol=0.01)
    assert layer.set_index("exit")["closed"].to_dict()["-265607427:1"] and layer["closed"].sum() == 1
    assert layer["agents"].sum() == run.summary["evacuated"]
    out = tmp_path / "exits.geojson"
    twin.export_result("e1", "exits", out)
    assert len(json.loads(out.read_text())["features"]) == len(layer)


# ---- 7. compare: a scenario's own closures are the scenario ---------------------------------------------------

def test_compare_does_not_report_the_scenarios_own_closure(small_city_gpkg):
    from twin_core.twin import Twin

    assert _cli("scenario", "set", small_city_gpkg, "S", "crowd_closed_exits", '["-265607427:1"]').exit_code == 0
    for args in (("--run", "c"), ("--run", "cx", "-s", "S"), ("--run", "cy", "--close-exit", "-265607427:1")):
        r = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "30", "--until", "120", "-q", *args)
        assert r.exit_code == 0, r.output
    with Twin.open(small_city_gpkg) as t:
        from twin_core.adapters.compare import compare_runs

        assert "closed_exits" not in compare_runs(t, "c", "cx").differences
        # closed by the run itself (--close-exit), not by its scenario: that is a difference besides the scenario
        assert compare_runs(t, "cy", "cx").differences["closed_exits"] == (["-265607427:1"], [])
    r = _cli("compare", small_city_gpkg, "c", "cx")
    assert r.exit_code == 0 and "besides the scenario" not in r.output


def test_an_anchor_given_latitude_first_is_recognised_too():
    # the shared degrees hint (crowd and BIM anchors, inflows) knew only longitude first; a web map copies
    # "30.635, 104.058", latitude first, which got no hint at all
    from twin_core.adapters.crowd import _check_in_crs

    with pytest.raises(ParameterError, match=r"look like latitude/longitude \(latitude first\).*as lat/lon that is "
                                             r"409\d+\.\d,3390\d+\.\d in EPSG:4544"):
        _check_in_crs([(30.635, 104.058)], "EPSG:4544", "--anchor")
    with pytest.raises(ParameterError, match=r"look like longitude/latitude.*as lon/lat that is 409"):
        _check_in_crs([(104.058, 30.635)], "EPSG:4544", "--anchor")
