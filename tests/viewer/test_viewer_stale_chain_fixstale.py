"""The map's stale marks (GET /api/results) follow the runs a run used and what it read, on both stores:

- a traffic or crowd run made on a flood run (``flooded_by``) is stale when that flood run is stale or was run
  again after it, and ``stale_why`` names the chain;
- a crowd run on an IFC storey read no ``areas``: replacing them leaves it current (a plaza run goes stale)."""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

CRS = "EPSG:32648"


@pytest.fixture(params=["gpkg", "postgis"])
def target(request, tmp_path):
    """A twin with a road, a building, an area, a POI and the flood's grids."""
    from cim.raster import Raster
    from cim.store import open_store

    where = str(tmp_path / "twin.gpkg") if request.param == "gpkg" else request.getfixturevalue("pg_dsn")
    with open_store(where, create=True, crs=CRS) as s:
        _layers(s)
        grid = Raster(np.full((4, 4), 10.0, "float32"), Affine(10, 0, 400000, 0, -10, 3400040), CRS)
        s.write_raster("dem", grid)
        s.write_raster("manning", grid)
    time.sleep(0.02)  # the GeoPackage keeps last_change to the millisecond
    return where


def _layers(s, names=("road_links", "buildings", "areas", "pois")) -> None:
    box = shapely.box(400000, 3400000, 400040, 3400040)
    frames = {
        "road_links": {"link_id": ["L1"], "geometry": [shapely.LineString([(400000, 3400000), (400040, 3400040)])]},
        "buildings": {"building_id": ["B1"], "geometry": [box.buffer(-15)]},
        "areas": {"area_id": ["A1"], "geometry": [box]},
        "pois": {"poi_id": ["P1"], "geometry": [shapely.Point(400020, 3400020)]},
    }
    for n in names:
        s.write_layer(n, gpd.GeoDataFrame(frames[n], crs=CRS))


def _client(where):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    return TestClient(create_app(Settings(store=where)), raise_server_exceptions=False, base_url="http://127.0.0.1")


def _stale(client) -> dict:
    r = client.get("/api/results")
    assert r.status_code == 200, r.text
    return {e["run"]: (e["stale"], e["stale_why"]) for e in r.json() if e["scenario"] == "base"}


def _save(where, run: str, engine: str, summary: dict) -> None:
    from twin_core.twin import Twin

    with Twin(where) as twin:
        twin.save_result(None, run, "summary", {"engine": engine, **summary}, meta={"engine": f"simulation.{engine}"})


def test_a_run_on_a_stale_or_rerun_flood_is_stale_on_the_map(target):
    from cim.raster import Raster
    from cim.store import open_store

    _save(target, "storm50", "flood", {})
    time.sleep(0.02)
    with open_store(target) as s:  # a new survey of the ground: the flood is not the twin's answer any more
        s.write_raster("dem", Raster(np.full((4, 4), 12.0, "float32"), Affine(10, 0, 400000, 0, -10, 3400040), CRS))
    time.sleep(0.02)
    _save(target, "jam", "traffic", {"flooded_by": "storm50"})
    _save(target, "evac", "crowd", {"area_id": "A1", "exits_from": "roads", "flooded_by": "storm50"})
    with _client(target) as client:
        got = _stale(client)
        assert got["storm50"][0] and got["storm50"][1].startswith("raster dem replaced ")
        for run in ("jam", "evac"):
            stale, why = got[run]
            assert stale and why.startswith("flood run storm50 is stale: raster dem replaced "), got[run]
            assert why.endswith(" UTC, after that run"), why

        time.sleep(0.02)
        _save(target, "storm50", "flood", {})  # run again on the new ground, after the runs made on the old one
        got = _stale(client)
        assert got["storm50"] == (False, None)
        for run in ("jam", "evac"):
            stale, why = got[run]
            assert stale and why.startswith("flood run storm50 re-run ") and why.endswith(", after this run"), why


def test_an_ifc_storey_crowd_run_stays_current_when_the_areas_are_replaced(target):
    from cim.store import open_store

    _save(target, "c-ifc", "crowd", {"ifc": "/data/box.ifc", "storey": "Level 0", "agents": 12})
    _save(target, "c-plaza", "crowd", {"area_id": "A1", "exits_from": "roads", "agents": 12})
    time.sleep(0.02)
    with open_store(target) as s:
        _layers(s, ("areas",))
    with _client(target) as client:
        got = _stale(client)
    assert got["c-ifc"] == (False, None)
    assert got["c-plaza"][0] and got["c-plaza"][1].startswith("layer areas replaced "), got
