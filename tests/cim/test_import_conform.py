"""Import and conform with awkward sources (bug hunt): field types, wrong CRSs, appends, nodata."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

import geopandas as gpd
from cim.io.raster import import_raster
from cim.io.vector import import_vector, read_vector
from cim.schema import conform
from twin_core.errors import CRSError, FieldError, RasterError, SchemaError, TwinWarning

LON, LAT = 104.0665, 30.6574  # Tianfu Square
LINE = shapely.LineString([(LON, LAT), (LON + 0.01, LAT)])
SQUARE = [[[LON, LAT], [LON + 0.001, LAT], [LON + 0.001, LAT + 0.001], [LON, LAT + 0.001], [LON, LAT]]]


def pois(path, ids, **fields):
    g = gpd.GeoDataFrame({"poi_id": ids, "kind": ["shelter"] * len(ids), **fields},
                         geometry=[shapely.Point(LON, LAT)] * len(ids), crs="EPSG:4326")
    g.to_file(path)
    return path


def geojson(path, props: list[dict], geometry: dict):
    feats = [{"type": "Feature", "properties": p, "geometry": geometry} for p in props]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def links(oneway):
    n = len(oneway)
    return gpd.GeoDataFrame({"link_id": [f"L{i}" for i in range(n)], "from_node": ["a"] * n, "to_node": ["b"] * n,
                             "lanes": [1] * n, "speed_limit_kmh": [30.0] * n, "oneway": oneway},
                            geometry=[LINE] * n, crs="EPSG:4326")


# -- absent optional fields keep their declared type ------------------------------------------
def test_absent_optional_fields_are_stored_with_their_declared_type(store, tmp_path):
    import_vector(store, pois(tmp_path / "nocap.geojson", ["p1", "p2"]), "pois")
    assert store.layer_info("pois")["columns"]["capacity"] == "int64"  # was TEXT (an all-None object column)
    import_vector(store, pois(tmp_path / "cap.geojson", ["p3"], capacity=[500]), "pois", mode="append")
    got = store.read_layer("pois")
    assert got["capacity"].isna().tolist() == [True, True, False]
    assert int(got["capacity"].iloc[2]) == 500 and pd.api.types.is_integer_dtype(got["capacity"].dtype)
    src = tmp_path / "links.gpkg"
    links(["yes", "no"]).drop(columns="oneway").to_file(src)
    import_vector(store, src, "road_links")
    cols = store.layer_info("road_links")["columns"]
    assert (cols["oneway"], cols["lanes"], cols["priority"], cols["name"]) == ("bool", "int64", "int64", "str")
    assert store.read_layer("road_links")["oneway"].isna().all()


# -- booleans -----------------------------------------------------------------------------------
@pytest.mark.parametrize("values,want", [
    (["false", "0", "no", "N", "F", " No "], [False] * 6),
    (["TRUE", "1", "yes", "y", "t", "True"], [True] * 6),
    ([1, 0], [True, False]),
    ([1.0, 0.0], [True, False]),
    ([True, None], [True, None]),
    (["true", None], [True, None]),
])
def test_bool_fields_read_true_false_text_numbers_and_nulls(values, want):
    got = conform(links(pd.Series(values, dtype=object)), "road_links")["oneway"]
    assert [None if pd.isna(v) else bool(v) for v in got] == want


def test_bool_json_null_stays_null(tmp_path):
    src = geojson(tmp_path / "b.geojson", [
        {"link_id": f"L{i}", "from_node": "a", "to_node": "b", "lanes": 1, "speed_limit_kmh": 30, "oneway": v}
        for i, v in enumerate([True, False, None])], json.loads(shapely.to_geojson(LINE)))
    got = conform(read_vector(src), "road_links")["oneway"]  # read as float64 1.0 / 0.0 / NaN
    assert [None if pd.isna(v) else bool(v) for v in got] == [True, False, None]


@pytest.mark.parametrize("bad", ["maybe", 2, "1.5"])
def test_bool_field_refuses_other_values_naming_field_value_and_feature(bad):
    with pytest.raises(SchemaError, match=r"'oneway' must be true or false.*at feature 2 of 2 \(link_id 'L1'\)") as e:
        conform(links(pd.Series(["yes", bad], dtype=object)), "road_links")
    assert f"e.g. {bad!r} at" in str(e.value)


# -- text and integer casts ------------------------------------------------------------------
def test_whole_floats_become_integer_text_and_fractions_are_not_truncated(tmp_path):
    geom = {"type": "Polygon", "coordinates": SQUARE}
    src = geojson(tmp_path / "pid.geojson", [{"building_id": "B0", "height_m": 10, "parcel_id": 1001, "storeys": 3},
                                             {"building_id": "B1", "height_m": 10, "parcel_id": None, "storeys": 2}],
                  geom)
    got = conform(read_vector(src), "buildings")  # parcel_id is read as float64 (1001.0, NaN)
    assert got["parcel_id"].tolist() == ["1001", None]
    assert got["storeys"].tolist() == [3, 2]
    src = geojson(tmp_path / "frac.geojson", [{"building_id": "B0", "height_m": 10, "storeys": 2},
                                              {"building_id": "B1", "height_m": 10, "storeys": 3.6}], geom)
    want = r"'storeys' must be a whole number.*3\.6 at feature 2 of 2 \(building_id 'B1'\)"
    with pytest.raises(SchemaError, match=want):
        conform(read_vector(src), "buildings")


# -- appends ------------------------------------------------------------------------------------
def test_append_refuses_ids_the_layer_holds(store, tmp_path):
    import_vector(store, pois(tmp_path / "a.geojson", ["p1", "p2"]), "pois")
    with pytest.raises(SchemaError, match=r"cannot append to 'pois'.*poi_id.*\['p2'\]"):
        import_vector(store, pois(tmp_path / "b.geojson", ["p2", "p3"]), "pois", mode="append")
    assert store.read_layer("pois")["poi_id"].tolist() == ["p1", "p2"]  # nothing written
    import_vector(store, pois(tmp_path / "c.geojson", ["p3"]), "pois", mode="append")
    assert store.read_layer("pois")["poi_id"].tolist() == ["p1", "p2", "p3"]


# -- field maps ---------------------------------------------------------------------------------
def test_map_onto_an_existing_column_is_refused_and_drop_resolves_it(tmp_path):
    from typer.testing import CliRunner

    from twin_core.cli import get_app
    from cim.store import open_store

    src = pois(tmp_path / "n.geojson", ["p1"], name=["old"], NAME=["成都避难所"])
    store_path = str(tmp_path / "t.gpkg")
    open_store(store_path, create=True, crs="EPSG:4544").close()
    with open_store(store_path) as store:
        with pytest.raises(FieldError, match=r"renames 'NAME' to 'name'.*already has a column 'name'.*--drop name"):
            import_vector(store, src, "pois", field_map={"NAME": "name"})
        with pytest.raises(FieldError, match="maps both"):
            import_vector(store, src, "pois", field_map={"NAME": "name", "name": "name"})
    res = CliRunner().invoke(get_app(), ["import", store_path, str(src), "--class", "pois", "--map", "NAME=name",
                                         "--drop", "name", "--json"])
    assert res.exit_code == 0, res.output
    with open_store(store_path) as store:
        assert store.read_layer("pois")["name"].tolist() == ["成都避难所"]
        # --drop of a field the file lacks, or of its geometry: a clear error, the layer untouched
        with pytest.raises(FieldError, match=r"drop names source field\(s\) \['nope'\] that the input lacks"):
            import_vector(store, src, "pois", drop=["nope"])
        with pytest.raises(FieldError, match="geometry"):
            import_vector(store, src, "pois", drop=["geometry"])
        assert store.read_layer("pois")["name"].tolist() == ["成都避难所"]


# -- coordinates that do not fit the CRS -------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:'crs' was not provided")  # the shapefile has no .prj on purpose
def test_projected_metres_labelled_lon_lat_are_refused(store, tmp_path):
    import_vector(store, pois(tmp_path / "a.geojson", ["p1"]), "pois")
    src = tmp_path / "metres.shp"
    gpd.GeoDataFrame({"poi_id": ["b"], "kind": ["shelter"]}, geometry=[shapely.Point(409907, 3394000)]).to_file(src)
    with pytest.raises(CRSError, match=r"outside the area of its CRS EPSG:4490.*Check --crs"):
        import_vector(store, src, "pois", crs="EPSG:4490")
    assert store.read_layer("pois")["poi_id"].tolist() == ["p1"]  # the layer was not replaced


def test_coordinates_not_finite_in_the_twin_crs_are_refused(store, tmp_path):
    # a CRS without a declared area of use (a bare PROJ string, as from an unidentified .prj): metres read as
    # degrees pass the area check and reproject to inf
    src = tmp_path / "metres.gpkg"
    gpd.GeoDataFrame({"poi_id": ["b"], "kind": ["shelter"]}, geometry=[shapely.Point(409907, 3394000)],
                     crs="+proj=longlat +ellps=GRS80 +no_defs").to_file(src)
    with pytest.raises(CRSError, match=r"1 feature\(s\) have coordinates that are not finite.*EPSG:4544.*feature 1"):
        import_vector(store, src, "pois")
    assert not store.has_layer("pois")


def test_data_outside_the_twin_crs_area_is_refused(store, tmp_path):
    # valid British National Grid data given to the Chengdu twin (EPSG:4544, 103.5-106.5 E): it would land
    # ~9,000 km away, distorted, and replace the layer
    import_vector(store, pois(tmp_path / "a.geojson", ["p1"]), "pois")
    src = tmp_path / "bng.gpkg"
    gpd.GeoDataFrame({"poi_id": ["c"], "kind": ["shelter"]}, geometry=[shapely.Point(530000, 180000)],
                     crs="EPSG:27700").to_file(src)
    with pytest.raises(CRSError, match=r"outside the area the twin's CRS EPSG:4544 covers.*not data of this city"):
        import_vector(store, src, "pois")
    assert store.read_layer("pois")["poi_id"].tolist() == ["p1"]


def test_data_far_from_the_twin_warns_but_imports(store, tmp_path):
    store.set_meta({"extent": [409000.0, 3390000.0, 411000.0, 3392000.0]})
    src = tmp_path / "cq.geojson"  # Chongqing, ~270 km away
    gpd.GeoDataFrame({"poi_id": ["cq"], "kind": ["shelter"]}, geometry=[shapely.Point(106.55, 29.56)],
                     crs="EPSG:4326").to_file(src)
    with pytest.warns(TwinWarning, match=r"km from the twin's extent.*check the source CRS"):
        assert import_vector(store, src, "pois") == 1
    near = pois(tmp_path / "near.geojson", ["p1"])  # Tianfu Square, ~2 km from that extent: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        import_vector(store, near, "pois")


# -- rasters ------------------------------------------------------------------------------------
@pytest.mark.parametrize("crs,x0", [("EPSG:4544", 409300), ("EPSG:32648", 404200)])
def test_float64_dem_with_dblmax_nodata_keeps_nodata(store, tmp_path, crs, x0):
    nd = -1.7976931348623157e308  # ArcGIS's default nodata for float64
    a = np.full((40, 50), 500.0)
    a[:5, :] = nd
    src = tmp_path / "dem.tif"
    with rasterio.open(src, "w", driver="GTiff", width=50, height=40, count=1, dtype="float64", crs=crs,
                       transform=from_origin(x0, 3391400, 5, 5), nodata=nd) as ds:
        ds.write(a, 1)
    import_raster(store, src, "dem")
    r = store.read_raster("dem")
    assert not np.isinf(r.data).any()  # float32(-1.797e308) is -inf
    got = r.masked()
    assert np.nanmin(got) == pytest.approx(500.0) and np.nanmax(got) == pytest.approx(500.0)
    if crs == "EPSG:4544":  # same grid: exactly the nodata rows
        assert np.isnan(got[:5]).all() and not np.isnan(got[5:]).any()
    else:
        assert np.isnan(got).sum() >= 5 * 50 * 0.9


def test_values_beyond_float32_are_refused_not_made_infinite(store, tmp_path):
    a = np.full((4, 5), 500.0)
    a[1, 2] = -1e300  # an undeclared nodata
    src = tmp_path / "big.tif"
    with rasterio.open(src, "w", driver="GTiff", width=5, height=4, count=1, dtype="float64", crs="EPSG:4544",
                       transform=from_origin(409300, 3391400, 5, 5)) as ds:
        ds.write(a, 1)
    with pytest.raises(RasterError, match=r"beyond the float32 range.*row 1, col 2.*-a_nodata"):
        import_raster(store, src, "dem")
    assert not store.has_raster("dem")
