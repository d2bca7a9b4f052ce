"""A run made on a base layer or raster that was replaced since is marked stale on the map (GET /api/results),
as one made before its scenario's latest edit is: after ``twin import ... --class road_links`` replaced the road
network, yesterday's traffic run is not the answer of the twin as it is now. Both stores: a GeoPackage keeps
when a layer was written in ``gpkg_contents.last_change``, PostGIS in ``twin_layer_written``."""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine

CRS = "EPSG:32648"


@pytest.fixture(params=["gpkg", "postgis"])
def target(request, tmp_path):
    """A small twin on either store: a road, its nodes, a building, an area, a POI and the flood's grids."""
    from cim.raster import Raster
    from cim.store import open_store

    where = str(tmp_path / "twin.gpkg") if request.param == "gpkg" else request.getfixturevalue("pg_dsn")
    s = open_store(where, create=True, crs=CRS)
    try:
        _layers(s)
        grid = Raster(np.full((4, 4), 10.0, "float32"), Affine(10, 0, 400000, 0, -10, 3400040), CRS)
        s.write_raster("dem", grid)
        s.write_raster("manning", grid)
    finally:
        s.close()
    return where


def _layers(s, names=("road_links", "road_nodes", "buildings", "areas", "pois")) -> None:
    box = shapely.box(400000, 3400000, 400040, 3400040)
    frames = {
        "road_links": {"link_id": ["L1"], "geometry": [shapely.LineString([(400000, 3400000), (400040, 3400040)])]},
        "road_nodes": {"node_id": ["N1"], "geometry": [shapely.Point(400000, 3400000)]},
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


def _runs(where) -> None:
    """A traffic run and a flood run (a summary and its exposure of road links) on the base."""
    from twin_core.twin import Twin

    with Twin(where) as twin:
        twin.save_result(None, "t1", "summary", {"engine": "traffic"}, meta={"engine": "simulation.traffic"})
        twin.save_result(None, "f1", "summary", {"engine": "flood"}, meta={"engine": "simulation.flood"})
        twin.save_result(None, "f1", "exposure_road_links", pd.DataFrame({"link_id": ["L1"], "max_depth_m": [0.3]}),
                         meta={"engine": "simulation.flood"})
    time.sleep(0.02)  # the GeoPackage keeps last_change to the millisecond


def _stale(client) -> dict:
    r = client.get("/api/results")
    assert r.status_code == 200, r.text
    return {(e["run"], e["name"]): (e["stale"], e["stale_why"]) for e in r.json() if e["scenario"] == "base"}


def test_a_replaced_layer_or_raster_the_run_read_makes_it_stale(target):
    from cim.raster import Raster
    from cim.store import open_store

    _runs(target)
    with _client(target) as client:
        assert {k: v[0] for k, v in _stale(client).items()} == {
            ("t1", "summary"): False, ("f1", "summary"): False, ("f1", "exposure_road_links"): False}

        with open_store(target) as s:  # what `twin import cd.gpkg net.xml --class road_links` does
            _layers(s, ("road_links", "road_nodes"))
        got = _stale(client)
        stale, why = got[("t1", "summary")]
        assert stale and why.startswith("layer road_links replaced ") and why.endswith(" UTC, after this run"), why
        assert got[("f1", "summary")] == (False, None)  # the flood's depths did not read the roads
        assert got[("f1", "exposure_road_links")][0]  # its table of flooded links did
        assert "road_links" in got[("f1", "exposure_road_links")][1]

        time.sleep(0.02)
        with open_store(target) as s:
            s.write_raster("dem", Raster(np.full((4, 4), 12.0, "float32"), Affine(10, 0, 400000, 0, -10, 3400040), CRS))
        got = _stale(client)
        assert got[("f1", "summary")][0] and got[("f1", "summary")][1].startswith("raster dem replaced "), got
        assert "dem" not in got[("t1", "summary")][1]  # a traffic run does not read the DEM


def test_a_layer_the_run_did_not_read_leaves_it_current(target):
    from cim.store import open_store

    _runs(target)
    with open_store(target) as s:  # a traffic run reads neither the POIs nor the nodes (their ids are on the links)
        _layers(s, ("pois", "road_nodes"))
    with _client(target) as client:
        got = _stale(client)
    assert got[("t1", "summary")] == (False, None)
    assert got[("f1", "exposure_road_links")] == (False, None)
    assert got[("f1", "summary")] == (False, None)


def test_a_scenario_edit_still_makes_its_runs_stale_and_says_so(target):
    from twin_core.twin import Twin

    with _client(target) as client:
        assert client.post("/api/scenarios", json={"name": "works"}).status_code == 201
        with Twin(target) as twin:
            twin.save_result("works", "w1", "summary", {"engine": "traffic"}, meta={"engine": "simulation.traffic"})
        time.sleep(0.02)
        r = client.post("/api/scenarios/works/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1})
        assert r.status_code == 201, r.text
        got = {e["run"]: e for e in client.get("/api/results?scenario=works").json()}
    assert got["w1"]["stale"] and got["w1"]["stale_why"].startswith("scenario works edited "), got["w1"]


def test_an_old_store_without_the_record_is_not_stale(target):
    """Layers written before the store kept when (PostGIS: no twin_layer_written; a GeoPackage written by a tool
    that left no readable last_change): unknown, so not stale, and no error."""
    from cim.store import open_store

    _runs(target)
    with open_store(target) as s:
        _layers(s, ("road_links",))
        if target.endswith(".gpkg"):
            with s._sql_txn():
                s._con.execute("UPDATE gpkg_contents SET last_change = '' WHERE table_name = 'road_links'")
        else:
            s.conn.execute(f'DROP TABLE "{s.schema}".twin_layer_written')
    with open_store(target) as s:
        assert s.layer_written("road_links") is None
    with _client(target) as client:
        got = _stale(client)
    assert got[("t1", "summary")] == (False, None)
