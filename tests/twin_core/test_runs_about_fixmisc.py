"""``twin.runs()`` / ``twin runs`` say what each run was (``about``): two crowd runs named
``crowd-20261205T063139-3894`` and ``crowd-...`` could not be told apart (no area, file, agents, model)."""

from __future__ import annotations

import json
import re
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.errors import TwinWarning
from twin_core.twin import Twin


def test_runs_say_what_each_run_was(small_city_gpkg, tmp_path):
    from bim_import.samples import BoxBuilding, write_box_building

    ifc = write_box_building(BoxBuilding(20, 10, 2, 3.0, 409700.0, 3390900.0), tmp_path / "box.ifc")
    with Twin.open(small_city_gpkg) as twin, warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        twin.flood(storm="5y", duration="5min", run="f5")
        plaza = twin.crowd("A001", agents=20, until="1min", run="c-plaza")
        storey = twin.crowd(ifc=ifc, storey=0, agents=12, until="1min", model="sfm", run="c-ifc")
        twin.traffic(mode="assign", demand_scale=0.5, run="t1")
        twin.access("fire_station", within="5min", run="a1")
        twin.compare("c-plaza", "c-ifc", save="cmp")
        runs = twin.runs().set_index("run")
        name = twin.layer("areas").set_index("area_id").loc["A001", "name"]
    assert list(runs.columns[:4]) == ["scenario", "engine", "created", "results"]  # the columns kept
    about = runs["about"].to_dict()
    assert re.fullmatch(r"5-year storm, 5 min, \d+ mm", about["f5"]), about["f5"]
    assert about["c-plaza"] == f"A001 {name}, 20 agents, csm"
    assert about["c-ifc"] == f"box.ifc storey {storey.summary['storey']}, 12 agents, sfm"
    assert about["c-plaza"] != about["c-ifc"] and plaza.summary["model"] == "csm"
    assert re.fullmatch(r"assign am, demand x0\.50", about["t1"]), about["t1"]
    assert about["a1"] == "from fire_station (1), within 5 min"
    assert about["cmp"] == "crowd: c-plaza vs c-ifc"

    res = CliRunner().invoke(get_app(), ["runs", small_city_gpkg])
    assert res.exit_code == 0, res.output
    head = res.stdout.splitlines()[1].split()
    assert head[:6] == ["created", "(UTC)", "scenario", "engine", "run", "about"] and head[-1] == "results"
    line = next(x for x in res.stdout.splitlines() if " c-ifc " in x)
    assert about["c-ifc"] in line and "sfm" in line
    rows = json.loads(CliRunner().invoke(get_app(), ["runs", small_city_gpkg, "--json"]).stdout)["runs"]
    assert {r["run"]: r["about"] for r in rows} == about


def test_analyses_sweeps_and_hand_saved_results_have_an_about(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin, warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        twin.sunlight("2026-01-20", bounds=(409500, 3390700, 409600, 3390800), spacing=20, step_minutes=60,
                      run="sun")
        twin.viewshed((409550.0, 3390750.0), radius=50, run="view")
        df = twin.sweep("flood", {"storm": ["2y", "5y"]}, duration="5min")
        twin.save_result("base", "mine", "note", {"a": 1})
        # a summary of another shape (saved by hand, as a crowd's): no line, and no error
        twin.save_result("base", "odd", "summary", {"agents": "many"}, meta={"engine": "simulation.crowd"})
        about = twin.runs().set_index("run")["about"].to_dict()
    assert about["sun"] == "2026-01-20 08:00-16:00, 20 m grid"
    assert about["view"] == "from 409550,3390750, radius 50 m"
    assert about[df.attrs["sweep"]] == "flood over storm (2 runs)"
    members = [about[r] for r in df["run"]]
    assert [m.split(", ")[:2] for m in members] == [["2-year storm", "5 min"], ["5-year storm", "5 min"]], members
    assert about["mine"] == "" and about["odd"] == ""


def test_describe_run_traffic_after_a_flood_and_observed_rain():
    from twin_core.twin import describe_run

    s = {"mode": "simulate", "period": "pm", "demand_scale": 0.4, "flooded_by": "storm50",
         "closed_links": ["a", "b", "c"]}
    assert describe_run("traffic", s) == "simulate pm, demand x0.40, flooded by storm50, 3 links closed"
    rain = {"storm": {"formula": "observed rain (rain gauges)", "gauges": ["g1", "g2"], "duration_s": 5400.0,
                      "total_mm": 31.6}}
    assert describe_run("flood", rain) == "observed rain (2 gauges), 90 min, 32 mm"
    assert describe_run("flood", {}) == "" and describe_run("", {"storm": {}}) == ""


@pytest.mark.postgis
def test_runs_about_on_postgis(pg_dsn):
    """The summaries are read from the store's index: a PostGIS twin's as a GeoPackage's."""
    with Twin.create(pg_dsn) as twin:
        twin.save_result("base", "c1", "summary", {"engine": "crowd", "area_id": "A9", "agents": 40, "model": "sfm"},
                         meta={"engine": "simulation.crowd"})
        twin.save_result("base", "c1", "exit_usage", pd.DataFrame({"exit": ["e1"], "count": [40]}),
                         meta={"engine": "simulation.crowd"})
        assert twin.runs()[["run", "about"]].values.tolist() == [["c1", "A9, 40 agents, sfm"]]
