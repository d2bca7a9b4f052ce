"""``twin.runs()`` and ``twin runs`` say which runs are stale and why, as the map does (one rule:
cim.results.stale_results): a notebook user saw an old flood, and a traffic run made on it, as current."""

from __future__ import annotations

import json
import time
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.errors import TwinWarning
from twin_core.twin import Twin

CRS = "EPSG:4544"
X0, Y0 = 409_900.0, 3_391_000.0


def _dem(store, value: float) -> None:
    from cim.raster import Raster

    store.write_raster("dem", Raster(np.full((4, 4), value, "float32"), Affine(10, 0, X0, 0, -10, Y0 + 40), CRS))


@pytest.fixture
def target(store_target):
    """A twin (either store) with a DEM, a flood run on it, the DEM replaced, then a traffic run made on the
    flood and one without it."""
    from cim.store import open_store

    with open_store(store_target, create=True, crs=CRS) as s:
        s.write_layer("road_links", gpd.GeoDataFrame(
            {"link_id": ["L1"]}, geometry=[shapely.LineString([(X0, Y0), (X0 + 40, Y0 + 40)])], crs=CRS))
        _dem(s, 10.0)
    time.sleep(0.02)  # a GeoPackage keeps last_change to the millisecond
    with Twin(store_target) as twin:
        twin.save_result(None, "storm50", "summary", {"engine": "flood"}, meta={"engine": "simulation.flood"})
        time.sleep(0.02)
        _dem(twin.store, 12.0)
        time.sleep(0.02)
        twin.save_result(None, "jam", "summary", {"engine": "traffic", "flooded_by": "storm50"},
                         meta={"engine": "simulation.traffic"})
        twin.save_result(None, "dry", "summary", {"engine": "traffic"}, meta={"engine": "simulation.traffic"})
    return store_target


def test_twin_runs_has_stale_and_why(target):
    with Twin(target) as twin:
        runs = twin.runs().set_index("run")
        dem_at = twin.store.raster_written("dem")
    assert list(runs.columns[-2:]) == ["stale", "stale_why"] and runs["stale"].dtype == bool
    when = f"{dem_at:%Y-%m-%d %H:%M} UTC"
    assert runs.loc["storm50", "stale"]
    assert runs.loc["storm50", "stale_why"] == f"raster dem replaced {when}, after this run"
    assert runs.loc["jam", "stale"]
    assert runs.loc["jam", "stale_why"] == f"flood run storm50 is stale: raster dem replaced {when}, after that run"
    assert not runs.loc["dry", "stale"] and runs.loc["dry", "stale_why"] is None


def test_twin_runs_stale_when_empty_is_bool(tmp_path):
    with Twin.create(str(tmp_path / "e.gpkg"), crs=CRS) as twin:
        runs = twin.runs()
    assert runs.empty and list(runs.columns[-2:]) == ["stale", "stale_why"] and runs["stale"].dtype == bool


def test_twin_runs_command_marks_stale_runs_with_the_reason(target):
    res = CliRunner().invoke(get_app(), ["runs", target])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    jam = next(i for i, x in enumerate(lines) if " jam " in x)
    assert lines[jam].startswith("! ")
    assert lines[jam + 1].strip().startswith("stale: flood run storm50 is stale: raster dem replaced ")
    dry = next(x for x in lines if " dry " in x)
    assert dry.startswith("  ")  # current: no mark
    assert any(x.startswith("! stale: 2 runs made before what they read changed") for x in lines), res.stdout
    rows = {r["run"]: r for r in json.loads(CliRunner().invoke(get_app(), ["runs", target, "--json"]).stdout)["runs"]}
    assert rows["jam"]["stale"] is True and rows["jam"]["stale_why"].startswith("flood run storm50 is stale: ")
    assert rows["dry"]["stale"] is False and rows["dry"]["stale_why"] is None


def test_real_ifc_storey_and_plaza_crowd_runs_when_the_areas_are_replaced(small_city_gpkg, tmp_path):
    """What the crowd adapter really stores tells the two apart: the plaza run read ``areas``, the storey
    run did not."""
    from bim_import.samples import BoxBuilding, write_box_building

    ifc = write_box_building(BoxBuilding(20, 10, 2, 3.0, 409700.0, 3390900.0), tmp_path / "box.ifc")
    with Twin.open(small_city_gpkg) as twin, warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        twin.crowd("A001", agents=20, until="30s", run="c-plaza")
        twin.crowd(ifc=ifc, storey=0, agents=12, until="30s", run="c-ifc")
        assert not twin.runs()["stale"].any()
        time.sleep(0.02)
        twin.store.write_layer("areas", twin.layer("areas"))  # `twin import ... --class areas` again
        runs = twin.runs().set_index("run")
    assert runs.loc["c-plaza", "stale"] and runs.loc["c-plaza", "stale_why"].startswith("layer areas replaced ")
    assert not runs.loc["c-ifc", "stale"], runs.loc["c-ifc", "stale_why"]
    assert isinstance(runs.loc["c-ifc", "about"], str) and pd.notna(runs.loc["c-ifc", "created"])
