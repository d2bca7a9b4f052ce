"""`twin import` of a SUMO network, and what `twin layers` / `twin info` show (review fix_vector_in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.twin import Twin

runner = CliRunner()
NET = Path(__file__).resolve().parents[3] / "shared" / "data" / "chengdu" / "chengdu.net.xml"


def run(*args):
    return runner.invoke(get_app(), [str(a) for a in args])


def said(res) -> str:
    """What a command printed, and the error it stopped on (the CLI prints that one as `error: ...`)."""
    return res.output + str(res.exception or "")


@pytest.fixture
def empty(tmp_path):
    path = tmp_path / "c.gpkg"
    Twin.create(path).close()
    return path


@pytest.mark.skipif(not NET.exists(), reason="the shared Chengdu SUMO network is not here")
def test_import_routes_a_sumo_network_to_its_importer(empty):
    res = run("import", empty, NET, "--class", "road_links", "--json")
    assert res.exit_code == 0, res.output
    counts = json.loads(res.stdout)["layers"]
    with Twin.open(empty) as t:
        assert counts == {"road_links": t.store.layer_info("road_links")["count"],
                          "road_nodes": t.store.layer_info("road_nodes")["count"]}
        assert counts["road_links"] > 0
    res = run("import", empty, NET, "--class", "road_links")
    assert res.exit_code == 0 and "replacing the" in res.output
    res = run("import", empty, NET, "--class", "pois")
    assert res.exit_code != 0 and "SUMO road network" in said(res) and "--class road_links" in said(res)
    res = run("import", empty, NET, "--class", "road_links", "--map", "a=b")
    assert res.exit_code != 0 and "--map" in said(res)


def test_import_of_cityjson_says_it_is_not_supported(empty, tmp_path):
    cj = tmp_path / "b.city.json"
    cj.write_text('{"type": "CityJSON"}')
    res = run("import", empty, cj, "--class", "buildings")
    assert res.exit_code != 0 and "CityJSON" in said(res) and "cannot import" in said(res)


def test_layers_shows_the_z_of_a_3d_layer(empty):
    import geopandas as gpd
    import shapely

    with Twin.open(empty) as t:
        ring = [(409000, 3393000, 5), (409010, 3393000, 5), (409010, 3393010, 5)]
        for name, poly in (("b3", shapely.Polygon(ring)), ("b2", shapely.Polygon([p[:2] for p in ring]))):
            g = gpd.GeoDataFrame({"x": [1]}, geometry=[shapely.MultiPolygon([poly])], crs="EPSG:4544")
            t.store.write_layer(name, g)
    res = run("layers", empty, "--json")
    assert res.exit_code == 0, said(res)
    kinds = {i["name"]: i["geometry_type"] for i in json.loads(res.stdout)}
    assert kinds == {"b3": "MULTIPOLYGON Z", "b2": "MULTIPOLYGON"}


def test_info_extent_holds_the_rasters(empty):
    import numpy as np
    from affine import Affine

    from cim.raster import Raster

    with Twin.open(empty) as t:
        t.store.write_raster("dem", Raster(np.zeros((10, 20), "float32"), Affine(10, 0, 408000, 0, -10, 3394000),
                                           "EPSG:4544"))
    res = run("info", empty, "--json")
    assert res.exit_code == 0, said(res)
    assert json.loads(res.stdout)["extent"] == [408000, 3393900, 408200, 3394000]
