"""Vector and raster import/export, with bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

import geopandas as gpd
from cim.io.raster import export_raster, import_raster, read_geotiff
from cim.io.vector import export_layer, import_vector
from cim.raster import Raster
from twin_core.errors import CRSError, FieldError, ImportFormatError, RasterError, SchemaError

LON, LAT = 104.0665, 30.6574  # Tianfu Square


def shelters(crs="EPSG:4326"):
    g = gpd.GeoDataFrame({"ID": ["s1", "s2"], "TYPE": ["shelter", "hospital"], "CAP": [500, 80]},
                         geometry=[shapely.Point(LON, LAT), shapely.Point(LON + 0.01, LAT + 0.005)], crs="EPSG:4326")
    return g.to_crs(crs) if crs else g.set_crs(None, allow_override=True)


# GeoJSON is WGS 84 by definition (RFC 7946), so it is tried in EPSG:4326 only
@pytest.mark.parametrize("ext,src_crs", [(".geojson", "EPSG:4326")] + [
    (e, c) for e in (".gpkg", ".shp", ".parquet") for c in ("EPSG:4326", "EPSG:4490", "EPSG:32648", "EPSG:4544")])
def test_import_any_format_any_crs(store, tmp_path, src_crs, ext):
    path = tmp_path / f"in{ext}"
    g = shelters(src_crs)
    g.to_parquet(path) if ext == ".parquet" else g.to_file(path)
    n = import_vector(store, path, "pois", field_map={"ID": "poi_id", "TYPE": "kind", "CAP": "capacity"})
    assert n == 2
    got = store.read_layer("pois")
    back = got.to_crs("EPSG:4326")
    # EPSG:4490 (CGCS2000) and WGS 84 differ by centimetres; 1e-6 degrees is ~0.1 m
    assert back.geometry.x.iloc[0] == pytest.approx(LON, abs=1e-6)
    assert back.geometry.y.iloc[0] == pytest.approx(LAT, abs=1e-6)
    assert got["capacity"].tolist() == [500, 80]


def test_import_bad_inputs(store, tmp_path):
    nocrs = tmp_path / "nocrs.gpkg"
    shelters(None).to_file(nocrs)
    with pytest.raises(CRSError, match="no CRS.*EPSG:4490"):
        import_vector(store, nocrs, "pois", field_map={"ID": "poi_id", "TYPE": "kind", "CAP": "capacity"})
    # naming the CRS makes it work
    assert import_vector(store, nocrs, "pois", crs="EPSG:4326",
                         field_map={"ID": "poi_id", "TYPE": "kind", "CAP": "capacity"}) == 2
    good = tmp_path / "good.geojson"
    shelters().to_file(good)
    with pytest.raises(FieldError, match="unknown field.*CAP"):
        import_vector(store, good, "pois", field_map={"ID": "poi_id", "TYPE": "kind"})
    with pytest.raises(FieldError, match="required field.*poi_id"):
        import_vector(store, good, "pois", field_map={"TYPE": "kind", "CAP": "capacity"}, allow_extra=True)
    with pytest.raises(FieldError, match="lacks"):
        import_vector(store, good, "pois", field_map={"NOPE": "poi_id"})
    with pytest.raises(SchemaError, match="unknown feature class"):
        import_vector(store, good, "spaceships")
    bad = shelters()
    bad["TYPE"] = ["shelter", "ufo_base"]
    bad.to_file(tmp_path / "bad.geojson")
    with pytest.raises(SchemaError, match="ufo_base"):
        import_vector(store, tmp_path / "bad.geojson", "pois", field_map={"ID": "poi_id", "TYPE": "kind", "CAP": "capacity"})
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type": "Feat')
    with pytest.raises(ImportFormatError, match="cannot read"):
        import_vector(store, broken, "pois")
    with pytest.raises(ImportFormatError, match="does not exist"):
        import_vector(store, tmp_path / "missing.shp", "pois")
    # nothing of the failed imports reached the store: the layer is the good one
    assert store.read_layer("pois")["poi_id"].tolist() == ["s1", "s2"]


def test_export_formats(store, tmp_path):
    g = shelters("EPSG:4544")
    g = g.rename(columns={"ID": "poi_id", "TYPE": "kind", "CAP": "capacity"})
    store.write_layer("pois", g)
    for ext in (".gpkg", ".geojson", ".parquet", ".shp"):
        p = export_layer(store, "pois", tmp_path / f"out{ext}")
        back = gpd.read_parquet(p) if ext == ".parquet" else gpd.read_file(p)
        assert sorted(back["poi_id"]) == ["s1", "s2"]
        if ext == ".geojson":
            assert back.crs.to_epsg() == 4326
            assert json.loads(p.read_text())["features"][0]["geometry"]["coordinates"][0] == pytest.approx(LON, abs=1e-7)
    with pytest.raises(ImportFormatError, match="format"):
        export_layer(store, "pois", tmp_path / "out.xyz")


def test_geotiff_import_export(store, tmp_path):
    data = np.linspace(510, 490, 60 * 80, dtype="float32").reshape(60, 80)
    data[10:12, 10:12] = -9999
    src = tmp_path / "dem.tif"
    r = Raster(data, Affine(5, 0, 410000, 0, -5, 3396000), "EPSG:4544", nodata=-9999)
    export_raster(r, src)
    imported = import_raster(store, src, "dem", unit="m")
    np.testing.assert_array_equal(store.read_raster("dem").data, data)
    assert imported.unit == "m"
    out = export_raster(store, "dem", tmp_path / "again.tif")
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), data)
        assert ds.nodata == -9999
    # a DEM in UTM 48N is warped to the twin CRS
    utm = tmp_path / "utm.tif"
    export_raster(Raster(data, Affine(5, 0, 404000, 0, -5, 3393000), "EPSG:32648", nodata=-9999), utm)
    warped = import_raster(store, utm, "dem_utm")
    assert warped.crs == "EPSG:4544"
    assert np.nanmax(np.where(warped.data == -9999, np.nan, warped.data)) <= 510.01


def _write_tif(path, data, transform, crs="EPSG:4544"):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform) as ds:
        ds.write(data.astype("float32"), 1)


@pytest.mark.parametrize("flip_rows, flip_cols", [(True, False), (False, True), (True, True)])
def test_south_up_or_east_to_west_geotiff_imports_as_the_same_grid(store, tmp_path, flip_rows, flip_cols):
    # a south-up file (e > 0, as netCDF-derived grids often are) was refused ("must be north-up");
    # an east-to-west one crashed the GeoPackage write with a raw TypeError
    data = np.arange(12, dtype="float32").reshape(3, 4) + 500
    north_up = Affine(5, 0, 410000, 0, -5, 3396000)
    d, (a, c), (e, f) = data, (5.0, 410000.0), (-5.0, 3396000.0)
    if flip_rows:
        d, e, f = d[::-1], 5.0, 3396000.0 - 15
    if flip_cols:
        d, a, c = d[:, ::-1], -5.0, 410000.0 + 20
    _write_tif(tmp_path / "odd.tif", d, Affine(a, 0, c, 0, e, f))
    r = import_raster(store, tmp_path / "odd.tif", "dem")
    assert tuple(r.transform) == tuple(north_up)
    back = store.read_raster("dem")
    np.testing.assert_array_equal(back.data, data)
    assert tuple(back.transform) == tuple(north_up)


def test_raster_transform_must_run_west_to_east_and_north_up():
    with pytest.raises(RasterError, match="west to east"):
        Raster(np.zeros((2, 2)), Affine(-5, 0, 410000, 0, -5, 3396000), "EPSG:4544")
    with pytest.raises(RasterError, match="north-up"):
        Raster(np.zeros((2, 2)), Affine(5, 0, 410000, 0, 5, 3396000), "EPSG:4544")


def test_rotated_geotiff_is_refused_with_what_to_do(tmp_path):
    _write_tif(tmp_path / "rot.tif", np.zeros((3, 3)), Affine(5, 1, 410000, 1, -5, 3396000))
    with pytest.raises(RasterError, match="rotated grid; warp it to a north-up grid first"):
        read_geotiff(tmp_path / "rot.tif")


def test_geotiff_bad_inputs(store, tmp_path):
    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       transform=Affine(5, 0, 0, 0, -5, 0)) as ds:
        ds.write(np.zeros((4, 4), "float32"), 1)
    with pytest.raises(CRSError, match="no CRS"):
        read_geotiff(p)
    assert read_geotiff(p, crs="EPSG:4544").shape == (4, 4)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImportFormatError, match="cannot read"):
        read_geotiff(junk)



def test_geotiff_cut_short_says_the_file_is_damaged_and_stores_nothing(store, tmp_path):
    full = tmp_path / "full.tif"
    _write_tif(full, np.full((200, 200), 500.0), Affine(5, 0, 409000, 0, -5, 3391500))
    half = tmp_path / "half.tif"
    half.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # the header opens, the cells do not
    with pytest.raises(ImportFormatError, match=r"cannot read the cells of .*half\.tif .*damaged or cut short; copy "
                                                r"or export it again"):
        import_raster(store, half, "dem")
    assert not store.has_raster("dem")



@pytest.mark.parametrize("dtype,marker", [("float32", -9999.0), ("int16", -32768), ("float32", -3.4028234663852886e38)])
def test_geotiff_without_nodata_holding_a_nodata_marker_is_warned_about(store, tmp_path, dtype, marker):
    import warnings

    from twin_core.errors import TwinWarning

    a = np.full((4, 4), 500, dtype=dtype)
    a[0, :2] = marker
    src = tmp_path / "dem.tif"
    with rasterio.open(src, "w", driver="GTiff", width=4, height=4, count=1, dtype=dtype, crs="EPSG:4544",
                       transform=Affine(5, 0, 409000, 0, -5, 3391500)) as ds:
        ds.write(a, 1)
    held = re.escape(f"{marker:.9g}")
    with pytest.warns(TwinWarning, match=rf"dem\.tif declares no nodata value, but 2 cell\(s\) hold {held}"
                                         r".*gdal_edit\.py -a_nodata"):
        import_raster(store, src, "dem")
    with rasterio.open(src, "r+") as ds:
        ds.nodata = marker
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        import_raster(store, src, "dem")

@pytest.mark.parametrize("name,unit", [("dem", "ft"), ("dem", "mm"), ("manning", "m")])
def test_raster_in_another_unit_than_its_class_is_refused(store, tmp_path, name, unit):
    src = tmp_path / "r.tif"
    _write_tif(src, np.full((4, 4), 0.03), Affine(5, 0, 409000, 0, -5, 3391500))
    with pytest.raises(RasterError, match=rf"raster {name!r} holds .* in .*, but the unit given is {unit!r}; convert"):
        import_raster(store, src, name, unit=unit)
    assert not store.has_raster(name)
    # the declared unit, spelled either way, and any unit for a raster of no declared class
    assert import_raster(store, src, "dem", unit="metres").unit == "metres"
    assert import_raster(store, src, "manning", unit="s/m^1/3").unit == "s/m^1/3"
    assert import_raster(store, src, "rain_ft", unit="ft").unit == "ft"

def test_shapefile_export_says_which_field_names_it_shortens(store, tmp_path):
    """A Shapefile keeps 10-byte field names: one TwinWarning lists the renames (not GDAL's RuntimeWarnings),
    names that would collide once shortened are refused, and a path that cannot be written says so."""
    import warnings

    from twin_core.errors import StoreError, TwinWarning

    g = shelters("EPSG:4544").rename(columns={"ID": "link_id", "TYPE": "speed_limit_kmh", "CAP": "lane_count"})
    store.write_layer("links", g)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = export_layer(store, "links", tmp_path / "links.shp")
    assert [w.category for w in caught] == [TwinWarning]
    msg = str(caught[0].message)
    assert "speed_limit_kmh -> speed_limi" in msg and "lane_count" not in msg and ".gpkg" in msg
    assert sorted(gpd.read_file(p).columns) == sorted(["link_id", "speed_limi", "lane_count", "geometry"])

    store.write_layer("links", g.assign(speed_limit_mph=[50, 60]), mode="replace")
    with pytest.raises(SchemaError, match=r"'speed_limit_kmh' and 'speed_limit_mph' -> 'speed_limi'.*[Rr]ename"):
        export_layer(store, "links", tmp_path / "clash.shp")
    assert not (tmp_path / "clash.shp").exists()

    (tmp_path / "folder.gpkg").mkdir()
    with pytest.raises(ImportFormatError, match="is a folder"):
        export_layer(store, "links", tmp_path / "folder.gpkg")
    (tmp_path / "afile").write_text("")
    with pytest.raises(StoreError, match="cannot write .*check that its folder"):
        export_layer(store, "links", tmp_path / "afile" / "out.fgb")


def test_window_from_bounds_refuses_nan_and_infinite_bounds():
    r = Raster(np.zeros((10, 20), "float32"), Affine(5, 0, 410000, 0, -5, 3396000), "EPSG:4544")
    assert r.window_from_bounds((410000, 3395950, 410100, 3396000)).width == 20
    for bad in [(np.nan, 3395950, 410100, 3396000), (410000, 3395950, np.inf, 3396000),
                (410000, -np.inf, 410100, 3396000)]:
        with pytest.raises(RasterError, match="not all finite"):
            r.window_from_bounds(bad)
    with pytest.raises(RasterError, match="four numbers"):
        r.window_from_bounds((410000, 3395950, 410100))
