"""`twin runs` and `twin export --run` (Twin.export_result): a run's results out to GeoTIFF, CSV, GeoPackage ..."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from typer.testing import CliRunner

from cim.raster import Raster
from twin_core.cli import get_app
from twin_core.errors import ImportFormatError, LayerNotFoundError, TwinWarning
from twin_core.twin import Twin

runner = CliRunner()
CRS = "EPSG:4544"
T = Affine(5.0, 0.0, 410000.0, 0.0, -5.0, 3395100.0)


def run(*args):
    return runner.invoke(get_app(), list(args))


@pytest.fixture
def city(tmp_path, two_roads, save_crowd_density):
    path = str(tmp_path / "c.gpkg")
    with Twin.create(path, name="results-test", crs=CRS) as t:
        links = two_roads
        t.store.write_layer("road_links", links)
        depth = np.arange(12, dtype="float32").reshape(3, 4) / 10
        t.save_result("base", "flood-1", "max_depth", Raster(depth, T, CRS, nodata=None))
        snaps = np.stack([depth * 0, depth * 0.5, depth])
        t.save_result("base", "flood-1", "depth_snapshots", snaps,
                      meta={"snapshot_times_s": [0.0, 600.0, 1200.0], "transform": list(T)[:6], "crs": CRS})
        t.save_result("base", "flood-1", "exposure_road_links",
                      pd.DataFrame({"link_id": ["b", "gone"], "max_depth_m": [0.4, 0.2]}))
        t.save_result("base", "flood-1", "gauges", pd.DataFrame({"time_s": [0, 60], "x": [410010.0, 410020.0],
                                                                  "y": [3395010.0, 3395020.0], "depth_m": [0, 0.1]}))
        t.save_result("base", "flood-1", "mass_balance", pd.DataFrame({"quantity": ["rain"], "value": [1.5]}))
        t.save_result("base", "flood-1", "summary", {"max_depth_m": 1.1, "名": "暴雨"})
        t.save_result("base", "flood-1", "loose", np.ones((2, 2)))
        save_crowd_density(t)  # density rows from the south, its grid in the summary
        t.scenarios.create("works")
        t.save_result("works", "flood-1", "max_depth", Raster(depth * 2, T, CRS, nodata=None))
    return path


def test_rasters_and_snapshots_to_geotiff(city, tmp_path):
    with Twin.open(city) as t:
        p = t.export_result("flood-1", "max_depth", tmp_path / "md.tif", scenario="base")
        with rasterio.open(p) as ds:
            assert ds.crs.to_epsg() == 4544 and ds.transform == T
            np.testing.assert_allclose(ds.read(1), np.arange(12).reshape(3, 4) / 10, rtol=1e-6)
        p = t.export_result("flood-1", "depth_snapshots", tmp_path / "snaps.tiff", scenario="base")
        with rasterio.open(p) as ds:
            assert ds.count == 3 and ds.transform == T
            assert ds.descriptions == ("t=0 s", "t=600 s", "t=1200 s")
            np.testing.assert_allclose(ds.read(2), np.arange(12).reshape(3, 4) / 20, rtol=1e-6)
        # the crowd's density: rows stored from the south come out north-up, on the summary's grid
        p = t.export_result("crowd-1", "density", tmp_path / "dens.tif")
        with rasterio.open(p) as ds:
            assert ds.transform == Affine(1.0, 0.0, 410000.0, 0.0, -1.0, 3395003.0)
            assert ds.descriptions == ("t=0 s", "t=2 s")
            assert (ds.read(2)[-1] == 2.0).all() and (ds.read(2)[:-1] == 0).all()
        np.testing.assert_array_equal(
            np.load(t.export_result("flood-1", "loose", tmp_path / "loose.npy", scenario="base")), np.ones((2, 2)))


def test_tables_placed_on_the_map_by_feature_id_or_xy(city, tmp_path):
    with Twin.open(city) as t:
        with pytest.warns(TwinWarning, match="1 of 2 rows of 'exposure_road_links' name a road_links feature"):
            p = t.export_result("flood-1", "exposure_road_links", tmp_path / "x.gpkg", scenario="base")
        g = gpd.read_file(p)
        assert g.crs.to_epsg() == 4544 and g["link_id"].tolist() == ["b", "gone"]
        assert g.geometry.iloc[0].equals(shapely.LineString([(410100, 3395000), (410100, 3395200)]))
        assert g.geometry.iloc[1] is None
        g = gpd.read_file(t.export_result("flood-1", "gauges", tmp_path / "g.geojson", scenario="base"))
        assert g.crs.to_epsg() == 4326 and g.geometry.iloc[0].x == pytest.approx(104.07, abs=0.05)
        df = pd.read_csv(t.export_result("flood-1", "mass_balance", tmp_path / "mb.csv", scenario="base"))
        assert df.to_dict("list") == {"quantity": ["rain"], "value": [1.5]}
        assert pd.read_parquet(t.export_result("flood-1", "mass_balance", tmp_path / "mb.parquet",
                                               scenario="base")).shape == (1, 2)
        p = t.export_result("flood-1", "summary", tmp_path / "s.json", scenario="base")
        assert json.loads(p.read_text(encoding="utf-8")) == {"max_depth_m": 1.1, "名": "暴雨"}


def test_bad_requests_are_refused_clearly(city, tmp_path):
    with Twin.open(city) as t:
        with pytest.raises(LayerNotFoundError, match=r"run 'flood-1' is under several scenarios \['base', 'works'\]"):
            t.export_result("flood-1", "max_depth", tmp_path / "a.tif")
        with pytest.raises(LayerNotFoundError, match="no run 'flod-1' in this twin; did you mean 'flood-1'"):
            t.export_result("flod-1", "max_depth", tmp_path / "a.tif")
        with pytest.raises(LayerNotFoundError, match="no run 'crowd-1' under scenario 'works': it is under scenario 'base'"):
            t.export_result("crowd-1", "density", tmp_path / "a.tif", scenario="works")
        with pytest.raises(LayerNotFoundError, match="has no result 'max_dpeth'; did you mean 'max_depth'"):
            t.export_result("flood-1", "max_dpeth", tmp_path / "a.tif", scenario="base")
        with pytest.raises(ImportFormatError, match=r"is a raster; it cannot be written as \.csv; use one of \.tif"):
            t.export_result("flood-1", "max_depth", tmp_path / "a.csv", scenario="base")
        with pytest.raises(ImportFormatError, match="stored without its grid"):
            t.export_result("flood-1", "loose", tmp_path / "a.tif", scenario="base")
        with pytest.raises(ImportFormatError, match="no x/y columns and name no feature"):
            t.export_result("flood-1", "mass_balance", tmp_path / "a.gpkg", scenario="base")
        with pytest.raises(ImportFormatError, match="is a folder"):
            t.export_result("flood-1", "max_depth", tmp_path, scenario="base")
        with pytest.raises(ImportFormatError, match="the twin's own store"):
            t.export_result("flood-1", "max_depth", city, scenario="base")
        with pytest.raises(ImportFormatError, match="file without an extension"):
            t.export_result("flood-1", "summary", tmp_path / "summary", scenario="base")
    assert not list(tmp_path.glob("a.*"))


def test_cli_runs_lists_runs_and_results_and_exports(city, tmp_path):
    res = run("runs", city, "--json")
    assert res.exit_code == 0, res.output
    runs = json.loads(res.stdout)["runs"]
    assert [(r["scenario"], r["run"]) for r in runs] == [("base", "flood-1"), ("base", "crowd-1"),
                                                         ("works", "flood-1")]
    res = run("runs", city, "flood-1", "--scenario", "base")
    assert res.exit_code == 0, res.output
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines()[1:-1]}
    assert lines["max_depth"].split("->")[1].split() == [".tif"] and "3 x 4 cells" in lines["max_depth"]
    assert ".gpkg" in lines["exposure_road_links"] and ".gpkg" not in lines["mass_balance"]
    assert lines["depth_snapshots"].split("->")[1].split() == [".npy", ".tif"]
    assert lines["loose"].split("->")[1].split() == [".npy"]
    assert "twin export" in res.stdout.splitlines()[-1]
    res = run("runs", city, "flood-1")
    assert isinstance(res.exception, LayerNotFoundError) and "under several scenarios" in str(res.exception)
    out = tmp_path / "out" / "md.tif"
    res = run("export", city, "max_depth", str(out), "--run", "flood-1", "--scenario", "works", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"exported": "max_depth", "run": "flood-1", "to": str(out)}
    with rasterio.open(out) as ds:
        assert ds.read(1).max() == pytest.approx(2.2)
    res = run("export", city, "summary", str(tmp_path / "s.tif"), "--run", "crowd-1")
    assert isinstance(res.exception, ImportFormatError)
    assert "is a summary (JSON); it cannot be written as .tif" in str(res.exception)
    res = run("info", city)
    assert "results: 10 in 3 runs (`twin runs" in res.stdout and "road_links" in res.stdout
    assert "2 features" in res.stdout.split("road_links")[1].splitlines()[0]


def test_a_real_flood_run_exports(small_city_gpkg, tmp_path):
    with Twin.open(small_city_gpkg) as t:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TwinWarning)  # a run shorter than the storm
            s = t.flood(until=120, run="f", snapshot_interval=60)
        assert s.run == "f"
        snaps = t.load_result("base", "f", "depth_snapshots")
        p = t.export_result("f", "depth_snapshots", tmp_path / "s.tif")
        md = t.load_result("base", "f", "max_depth")
        with rasterio.open(p) as ds:
            assert ds.count == len(snaps) and ds.transform == md.transform and ds.crs == rasterio.crs.CRS.from_user_input(t.crs)
            # buildings (nodata in max_depth) are nodata in every snapshot too, not 0 m (dry)
            blocked = md.data == md.nodata
            assert ds.nodata == md.nodata and (ds.read()[:, blocked] == ds.nodata).all()
            np.testing.assert_allclose(ds.read()[:, ~blocked], snaps.astype("float32")[:, ~blocked])
        g = gpd.read_file(t.export_result("f", "exposure_road_links", tmp_path / "r.gpkg"))
        assert g.geometry.notna().all() and len(g) == len(t.load_result("base", "f", "exposure_road_links"))
