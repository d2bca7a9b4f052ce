"""`twin export` fixes from a GIS engineer's review: no silent replace of a layer in an existing GeoPackage
(--overwrite), no export into another twin, a raster exported to a vector file, and Shapefile text cut to 254 bytes."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.errors import TwinWarning
from twin_core.twin import Twin

runner = CliRunner()


def run(*args):
    return runner.invoke(get_app(), [str(a) for a in args])


def said(res) -> str:
    """What a command said: its output and the error it stopped with."""
    return res.output + str(res.exception or "")


@pytest.fixture
def city(tmp_path, two_roads):
    path = str(tmp_path / "c.gpkg")
    with Twin.create(path, name="cli-test") as t:
        t.store.write_layer("road_links", two_roads)
    return path


def test_export_refuses_replacing_a_layer_without_overwrite(city, tmp_path):
    out = tmp_path / "other.gpkg"
    keep = gpd.GeoDataFrame({"note": ["theirs"]}, geometry=[shapely.Point(410000, 3395000)], crs="EPSG:4544")
    keep.to_file(out, layer="road_links")
    keep.to_file(out, layer="pois")
    res = run("export", city, "road_links", out)
    assert res.exit_code != 0 and "already holds a layer 'road_links'" in said(res) and "--overwrite" in said(res)
    assert gpd.read_file(out, layer="road_links")["note"].tolist() == ["theirs"]  # untouched
    res = run("export", city, "road_links", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(gpd.read_file(out, layer="road_links")["link_id"]) == ["a", "b"]
    assert gpd.read_file(out, layer="pois")["note"].tolist() == ["theirs"]  # the file's other layers kept
    assert run("export", city, "road_links", tmp_path / "new.gpkg").exit_code == 0  # a new file: as before


def test_export_refuses_writing_into_another_twin(city, tmp_path, two_roads):
    other = str(tmp_path / "other_twin.gpkg")
    with Twin.create(other, name="other") as t:
        t.store.write_layer("road_links", two_roads.iloc[:1])
    for extra in ([], ["--overwrite"]):
        res = run("export", city, "road_links", other, *extra)
        assert res.exit_code != 0 and "is a RongTwin twin" in said(res) and "twin import" in said(res), said(res)
    with Twin.open(other) as t:
        assert t.layer("road_links")["link_id"].tolist() == ["a"]


def test_export_raster_to_vector_file_says_tif(city, tmp_path):
    tif = tmp_path / "dem.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs="EPSG:4544",
                       transform=Affine(10, 0, 410000, 0, -10, 3395100)) as ds:
        ds.write(np.full((1, 4, 4), 500.0, dtype="float32"))
    assert run("import-raster", city, tif, "--name", "dem").exit_code == 0
    res = run("export", city, "dem", tmp_path / "x.gpkg")
    assert res.exit_code != 0 and "'dem' is a raster" in said(res) and "x.tif" in said(res), said(res)


def test_shapefile_export_warns_of_cut_text(tmp_path):
    from cim.io.vector import write_frame

    g = gpd.GeoDataFrame({"name": ["x" * 300, "ok"], "note": ["长" * 100, "ok"]},  # 300 bytes of UTF-8 Chinese
                         geometry=[shapely.Point(410000, 3395000)] * 2, crs="EPSG:4544")
    with pytest.warns(TwinWarning, match=r"at most 254 bytes.*name \(1 value\(s\)\), note \(1 value\(s\)\).*gpkg"):
        write_frame(g, tmp_path / "long.shp", layer="long")
