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
from twin_core.errors import CRSError, FieldError, ImportFormatError, RasterError, SchemaError, TwinWarning

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


# -- inputs that must not reach the twin (bad-input audit) -------------------------------------------
def test_a_file_without_features_is_refused_and_the_layer_kept(store, tmp_path):
    import_vector(store, pois(tmp_path / "a.geojson", ["p1", "p2"]), "pois")
    empty = tmp_path / "empty.gpkg"  # the right fields, no rows: replacing would empty the layer
    gpd.GeoDataFrame({"poi_id": pd.Series([], dtype=str), "kind": pd.Series([], dtype=str)},
                     geometry=gpd.GeoSeries([], crs="EPSG:4326")).to_file(empty)
    nofeat = tmp_path / "nofeat.geojson"
    nofeat.write_text('{"type": "FeatureCollection", "features": []}')
    for src, mode in ((empty, "replace"), (nofeat, "replace"), (empty, "append")):
        with pytest.raises(ImportFormatError, match=rf"{src.name} holds no features; nothing was imported and "
                                                    r"'pois' is left as it was"):
            import_vector(store, src, "pois", mode=mode)
    assert store.read_layer("pois")["poi_id"].tolist() == ["p1", "p2"]


@pytest.mark.parametrize("geom,why", [
    (shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), "Self-intersection"),  # a bow tie
    (shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(20, 20), (25, 20), (25, 25), (20, 25)]]),
     "Hole lies outside shell"),
])
def test_invalid_polygons_are_refused_naming_the_feature_and_the_fix(store, tmp_path, geom, why):
    import_vector(store, pois(tmp_path / "a.geojson", ["p1"]), "pois")
    x0, y0 = 409900.0, 3391000.0
    ok = shapely.box(x0, y0, x0 + 10, y0 + 10)
    src = tmp_path / "b.gpkg"
    gpd.GeoDataFrame({"building_id": ["B1", "B2"], "height_m": [10.0, 12.0]},
                     geometry=[ok, shapely.affinity.translate(geom, x0, y0)], crs="EPSG:4544").to_file(src)
    with pytest.raises(SchemaError, match=rf"layer 'buildings': 1 feature\(s\) have invalid geometry, e\.g\. feature 2 "
                                          rf"of 2 \(building_id 'B2'\): {why}.*ST_MakeValid"):
        import_vector(store, src, "buildings")
    assert not store.has_layer("buildings") and store.read_layer("pois")["poi_id"].tolist() == ["p1"]


def test_infinite_numbers_are_refused_naming_the_feature(store, tmp_path):
    src = geojson(tmp_path / "inf.geojson", [{"building_id": "B1", "height_m": 10}, {"building_id": "B2",
                                             "height_m": "inf"}], {"type": "Polygon", "coordinates": SQUARE})
    with pytest.raises(SchemaError, match=r"field 'height_m' must be a number.*1 value\(s\) are infinite, e\.g\. "
                                          r"'inf' at feature 2 of 2 \(building_id 'B2'\)"):
        import_vector(store, src, "buildings")
    assert not store.has_layer("buildings")


def test_geojson_not_in_utf8_says_so_and_what_to_do(store, tmp_path):
    src = tmp_path / "gbk.geojson"  # saved by a Chinese-locale tool in GBK
    src.write_bytes(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "poi_id": "p1", "kind": "shelter", "name": "避难所"}, "geometry": {"type": "Point", "coordinates": [LON, LAT]}}]},
        ensure_ascii=False).encode("gbk"))
    with pytest.raises(ImportFormatError, match=r"gbk\.geojson: its text is not UTF-8 \(byte 0x.. at offset \d+\); "
                                                r"save it as UTF-8.*iconv"):
        import_vector(store, src, "pois")
    assert not store.has_layer("pois")


def test_raster_outside_the_twin_area_is_refused_and_one_far_away_warned(store, tmp_path):
    store.set_meta({"extent": [409000.0, 3390000.0, 411000.0, 3392000.0]})

    def tif(path, crs, transform):
        with rasterio.open(path, "w", driver="GTiff", width=5, height=4, count=1, dtype="float32", crs=crs,
                           transform=transform) as ds:
            ds.write(np.full((4, 5), 50.0, "float32"), 1)
        return path

    beijing = tif(tmp_path / "beijing.tif", "EPSG:4326", from_origin(116.39, 39.9, 0.001, 0.001))
    with pytest.raises(CRSError, match=r"outside the area the twin's CRS EPSG:4544 covers.*not data of this city"):
        import_raster(store, beijing, "dem")
    metres = tif(tmp_path / "metres.tif", "EPSG:4490", from_origin(409300, 3391400, 5, 5))  # metres said to be degrees
    with pytest.raises(CRSError, match=r"outside the area of its CRS EPSG:4490"):
        import_raster(store, metres, "dem")
    assert not store.has_raster("dem")
    far = tif(tmp_path / "far.tif", "EPSG:4544", from_origin(409300, 2391400, 5, 5))  # 1,000 km south
    with pytest.warns(TwinWarning, match=r"the 4 x 5 cells for 'dem' lie 9\d\d\.\d km from the twin's extent"):
        import_raster(store, far, "dem")
    near = tif(tmp_path / "near.tif", "EPSG:4544", from_origin(409300, 3391400, 5, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        import_raster(store, near, "dem")


def test_shapefile_with_chinese_text_and_no_encoding_is_refused_until_a_cpg_names_it(store, tmp_path):
    src = tmp_path / "gbk.shp"  # as many Chinese GIS tools write them: GBK text, no .cpg, no code page in the .dbf
    gpd.GeoDataFrame({"poi_id": ["p1"], "kind": ["shelter"], "name": ["避难所"]},
                     geometry=[shapely.Point(LON, LAT)], crs="EPSG:4326").to_file(src, encoding="gbk")
    src.with_suffix(".cpg").unlink(missing_ok=True)
    with pytest.raises(ImportFormatError, match=r"gbk\.shp does not say how its text is encoded \(no gbk\.cpg file\) "
                                                r"and its field 'name' holds non-ASCII text .*'避难所' in GBK.*gbk\.cpg"):
        import_vector(store, src, "pois")
    assert not store.has_layer("pois")
    src.with_suffix(".cpg").write_text("GBK")
    import_vector(store, src, "pois")
    assert store.read_layer("pois")["name"].tolist() == ["避难所"]


def _zip_shapefile(src, zpath, members: dict[str, str], extra: dict[str, str] | None = None):
    """A .zip holding the Shapefile ``src``'s files under other names (``{'gbk': 'a'}``: gbk.shp -> a.shp ...)."""
    import zipfile

    with zipfile.ZipFile(zpath, "w") as zf:
        for old, new in members.items():
            for ext in (".shp", ".shx", ".dbf", ".prj"):
                zf.write(src.with_name(old + ext), new + ext)
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    return zpath


def test_zipped_shapefile_with_chinese_text_and_no_encoding_is_refused_like_a_plain_one(store, tmp_path):
    # a Shapefile delivered as a .zip (as most portals do) used to skip the encoding check: '避难所' came in
    # as '±ÜÄÑËù' without a word
    src = tmp_path / "gbk.shp"
    gpd.GeoDataFrame({"poi_id": ["p1"], "kind": ["shelter"], "name": ["避难所"]},
                     geometry=[shapely.Point(LON, LAT)], crs="EPSG:4326").to_file(src, encoding="gbk")
    src.with_suffix(".cpg").unlink(missing_ok=True)
    bare = _zip_shapefile(src, tmp_path / "shelters.zip", {"gbk": "gbk"})
    with pytest.raises(ImportFormatError, match=r"shelters\.zip: gbk\.shp does not say how its text is encoded \(no "
                                                r"gbk\.cpg file inside shelters\.zip\) and its field 'name' holds "
                                                r"non-ASCII text .*'避难所' in GBK.*write the encoding into gbk\.cpg "
                                                r"inside shelters\.zip"):
        import_vector(store, bare, "pois")
    assert not store.has_layer("pois")
    with pytest.raises(ImportFormatError, match=r"gbk\.cpg file inside"):
        read_vector(bare)
    declared = _zip_shapefile(src, tmp_path / "declared.zip", {"gbk": "gbk"}, {"gbk.cpg": "GBK"})
    import_vector(store, declared, "pois")
    assert store.read_layer("pois")["name"].tolist() == ["避难所"]


@pytest.mark.parametrize("layer,ok", [("a", False), (0, False), ("b", True), (1, True)])
def test_zip_of_two_shapefiles_checks_the_one_read(tmp_path, layer, ok):
    import zipfile

    src = tmp_path / "gbk.shp"
    gpd.GeoDataFrame({"poi_id": ["p1"], "kind": ["shelter"], "name": ["避难所"]},
                     geometry=[shapely.Point(LON, LAT)], crs="EPSG:4326").to_file(src, encoding="gbk")
    src.with_suffix(".cpg").unlink(missing_ok=True)
    two = tmp_path / "two.zip"  # a.shp without a .cpg, b.shp with one (in upper case)
    _zip_shapefile(src, two, {"gbk": "a"})
    with zipfile.ZipFile(two, "a") as zf:
        for ext in (".shp", ".shx", ".dbf", ".prj"):
            zf.write(src.with_suffix(ext), "b" + ext)
        zf.writestr("b.CPG", "GBK")
    if ok:
        assert read_vector(two, layer)["name"].tolist() == ["避难所"]
    else:
        with pytest.raises(ImportFormatError, match=r"two\.zip: a\.shp does not say how its text is encoded"):
            read_vector(two, layer)


def test_zipped_ascii_shapefile_and_zipped_geojson_need_no_cpg(store, tmp_path):
    import zipfile

    src = pois(tmp_path / "ascii.shp", ["p1"], name=["Tianfu Square shelter"])
    src.with_suffix(".cpg").unlink(missing_ok=True)
    assert import_vector(store, _zip_shapefile(src, tmp_path / "ascii.zip", {"ascii": "ascii"}), "pois") == 1
    gj = pois(tmp_path / "cn.geojson", ["p2"], name=["避难所"])
    with zipfile.ZipFile(tmp_path / "gj.zip", "w") as zf:
        zf.write(gj, "cn.geojson")
    assert import_vector(store, tmp_path / "gj.zip", "pois", mode="append") == 1
    assert store.read_layer("pois")["name"].tolist() == ["Tianfu Square shelter", "避难所"]


def test_a_folder_a_file_of_many_layers_or_one_without_geometry_is_refused(store, tmp_path):
    import_vector(store, pois(tmp_path / "a.geojson", ["p1"]), "pois")
    folder = tmp_path / "delivery"  # GDAL reads a folder as its first Shapefile, whichever that is
    folder.mkdir()
    pois(folder / "other.shp", ["x1", "x2"])
    with pytest.raises(ImportFormatError, match=r"delivery is a folder; give the file to import"):
        import_vector(store, folder, "pois")
    many = tmp_path / "many.gpkg"
    pois(many, ["m1"])  # layer 'many'
    gpd.GeoDataFrame({"poi_id": ["s1"], "kind": ["school"]}, geometry=[shapely.Point(LON, LAT)],
                     crs="EPSG:4326").to_file(many, layer="schools")
    with pytest.raises(ImportFormatError, match=r"many\.gpkg holds 2 layers \['many', 'schools'\]; name the one to "
                                                r"import with --layer NAME"):
        import_vector(store, many, "pois")
    table = tmp_path / "table.csv"
    table.write_text("poi_id,kind\nc1,shelter\n")
    with pytest.raises(ImportFormatError, match=r"table\.csv has no geometry.*\['poi_id', 'kind'\].*ogr2ogr"):
        import_vector(store, table, "pois")
    assert store.read_layer("pois")["poi_id"].tolist() == ["p1"]
    assert import_vector(store, many, "pois", layer="schools") == 1  # naming the layer works
