"""What a store gives back is what was written, the same in both stores (issue hunt: odd dtypes,
replaced layers, appends of other geometry types)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

import geopandas as gpd
from twin_core.errors import SchemaError, TwinWarning

X0, Y0 = 410_000.0, 3_395_000.0


def _points(n: int):
    return [shapely.Point(X0 + i, Y0 + i) for i in range(n)]


def test_a_layer_replaced_with_other_column_types_reads_back(store):
    # PostGIS: psycopg prepared the read once it had run five times; after the layer was then
    # replaced with other column types every read failed with "cached plan must not change result type"
    values = [[1, 2], [True, False], [0.5, 1.5], ["a", "b"]] * 2
    for v in values:
        store.write_layer("pois", gpd.GeoDataFrame({"v": v}, geometry=_points(2), crs="EPSG:4544"))
        store.write_table("gauges", pd.DataFrame({"v": v}))
        assert store.read_layer("pois")["v"].tolist() == v
        assert store.read_table("gauges")["v"].tolist() == v


def test_object_columns_of_booleans_and_datetimes_keep_their_type(store):
    # [True, None, False] is an object column: it was stored as the text 'True'/'False' (in a
    # GeoPackage table '1'), and an object column of Timestamps became a datetime in the
    # GeoPackage layer but text in PostGIS
    ts = [pd.Timestamp("2024-01-01 08:00", tz="Asia/Shanghai"), None, pd.Timestamp("2024-01-01", tz="UTC")]
    frame = {"flag": [True, None, False], "seen": ts}
    store.write_layer("pois", gpd.GeoDataFrame(frame, geometry=_points(3), crs="EPSG:4544"))
    store.write_table("log", pd.DataFrame(frame))
    want_ts = [pd.Timestamp("2024-01-01 00:00", tz="UTC"), None, pd.Timestamp("2024-01-01", tz="UTC")]
    for back in (store.read_layer("pois"), store.read_table("log")):
        assert [None if v is pd.NA else v for v in back["flag"].tolist()] == [True, None, False]
        assert [None if v is pd.NaT else v for v in back["seen"].tolist()] == want_ts
    assert store.layer_info("pois")["columns"] == {"flag": "bool", "seen": "datetime"}
    assert len(store.read_layer("pois", where={"flag": True})) == 1
    assert store.count_rows("log", where={"flag": False}) == 1


@pytest.mark.parametrize("durations", [pd.to_timedelta([1, None], unit="s"), [pd.Timedelta(seconds=1), None]])
def test_durations_are_refused_with_the_fix(store, durations):
    # GDAL refused them with "field type is not supported timedelta64[us]", PostGIS kept text
    # ('0 days 00:00:01') and a GeoPackage table the text 'NaT' for a null
    with pytest.raises(SchemaError, match=r"durations.*total_seconds"):
        store.write_layer("pois", gpd.GeoDataFrame({"wait": durations}, geometry=_points(2), crs="EPSG:4544"))
    with pytest.raises(SchemaError, match=r"durations.*total_seconds"):
        store.write_table("log", pd.DataFrame({"wait": durations}))
    assert not store.has_layer("pois") and not store.has_table("log")


def test_bytes_in_layers_round_trip(store):
    # the GeoPackage layer kept str(b'..') (the text "b'\\x00\\x01'"), where PostGIS and both
    # stores' tables keep the bytes
    gdf = gpd.GeoDataFrame({"mesh": [b"\x00\x01glTF", None, b""], "h": [1.0, 2.0, 3.0]}, geometry=_points(3),
                           crs="EPSG:4544")
    store.write_layer("pois", gdf)
    store.write_layer("pois", gdf.iloc[:1], mode="append")
    back = store.read_layer("pois")
    assert back["mesh"].tolist() == [b"\x00\x01glTF", None, b"", b"\x00\x01glTF"]
    assert back["h"].tolist() == [1.0, 2.0, 3.0, 1.0]
    assert store.layer_info("pois")["columns"] == {"mesh": "bytes", "h": "float64"}
    if store.kind == "gpkg":  # still a GeoPackage GDAL reads, the column as binary
        import pyogrio

        assert pyogrio.read_dataframe(store.path, layer="pois")["mesh"].tolist()[:2] == [b"\x00\x01glTF", None]


def test_append_of_other_geometry_kinds_records_the_layer_type(store):
    # the GeoPackage kept POINT for a layer that then held polygons, PostGIS recorded POLYGON for a
    # layer that still held points: scenario edits were then checked against the wrong kind
    pts = gpd.GeoDataFrame({"h": [1.0]}, geometry=_points(1), crs="EPSG:4544")
    store.write_layer("things", pts)
    store.write_layer("things", gpd.GeoDataFrame({"h": [2.0]}, geometry=[shapely.box(X0, Y0, X0 + 1, Y0 + 1)],
                                                 crs="EPSG:4544"), mode="append")
    assert store.layer_info("things")["geometry_type"] == "GEOMETRY"
    assert [g.geom_type for g in store.read_layer("things").geometry] == ["Point", "Polygon"]
    store.write_layer("things", pts, mode="append")
    assert store.layer_info("things")["geometry_type"] == "GEOMETRY"
    # a polygon appended to a multipolygon layer becomes a multipolygon, as in a replace with that mix
    blocks = gpd.GeoDataFrame({"h": [1.0]}, geometry=[shapely.MultiPolygon([shapely.box(X0, Y0, X0 + 1, Y0 + 1)])],
                              crs="EPSG:4544")
    store.write_layer("blocks", blocks)
    store.write_layer("blocks", gpd.GeoDataFrame({"h": [2.0]}, geometry=[shapely.box(X0, Y0, X0 + 2, Y0 + 2)],
                                                 crs="EPSG:4544"), mode="append")
    assert store.layer_info("blocks")["geometry_type"] == "MULTIPOLYGON"
    assert [g.geom_type for g in store.read_layer("blocks").geometry] == ["MultiPolygon", "MultiPolygon"]
    # same kind or no geometry: the type stays
    store.write_layer("blocks", gpd.GeoDataFrame({"h": [3.0]}, geometry=[None], crs="EPSG:4544"), mode="append")
    assert store.layer_info("blocks")["geometry_type"] == "MULTIPOLYGON"


def test_json_results_are_plain_json_in_both_stores(store):
    # NumPy values became the text '1.5' and '[0 1 2]'; a NaN was kept by the GeoPackage, and PostGIS
    # refused the result with "invalid input syntax for type json ... Token "NaN" is invalid"
    from cim.results import list_results, load_result, save_result

    save_result(store, "base", "run1", "summary", {"max_m": np.float32(1.5), "cells": np.arange(3), "n": np.int64(4)})
    assert load_result(store, "base", "run1", "summary") == {"max_m": 1.5, "cells": [0, 1, 2], "n": 4}
    with pytest.warns(TwinWarning, match=r"2 NaN/infinite.*stored as None"):
        save_result(store, "base", "run1", "empty", {"mean_s": float("nan"), "runs": [{"max": np.float64(np.inf)}]})
    assert load_result(store, "base", "run1", "empty") == {"mean_s": None, "runs": [{"max": None}]}
    save_result(store, "base", "run1", "empty", {"mean_s": 2.0})  # replaces it
    assert list_results(store)["name"].tolist() == ["empty", "summary"]


def test_an_index_that_carries_data_is_kept_as_columns(store):
    # every index was dropped silently (a hydrograph's time axis, gauge ids); now it is kept as to_file
    # keeps it: when named, a MultiIndex, or not integers. A plain or filtered integer index is dropped.
    t = pd.date_range("2024-07-01", periods=3, freq="h", tz="UTC")
    store.write_table("hydro", pd.DataFrame({"depth": [0.1, 0.2, 0.3]}, index=t))
    got = store.read_table("hydro")
    assert list(got.columns) == ["index", "depth"] and list(pd.to_datetime(got["index"], utc=True)) == list(t)
    store.write_table("g", pd.DataFrame({"v": [1, 2]}, index=pd.Index(["RG01", "RG02"], name="gauge")))
    assert store.read_table("g").to_dict("list") == {"gauge": ["RG01", "RG02"], "v": [1, 2]}
    mi = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["zone", "hour"])
    store.write_table("m", pd.DataFrame({"v": [1.0, 2.0]}, index=mi))
    assert store.read_table("m").to_dict("list") == {"zone": ["a", "b"], "hour": [1, 2], "v": [1.0, 2.0]}
    gdf = gpd.GeoDataFrame({"v": [1, 2, 3]}, geometry=_points(3), crs="EPSG:4544").iloc[[2, 0]]
    store.write_layer("pois", gdf)  # a filtered integer index: dropped, as before
    assert [c for c in store.read_layer("pois").columns if c != "geometry"] == ["v"]
    store.write_layer("named", gdf.rename_axis("poi_id"))
    assert store.read_layer("named")["poi_id"].tolist() == [2, 0]
    with pytest.raises(SchemaError, match=r"index \['v'\] would be stored as column\(s\) \['v'\]"):
        store.write_table("bad", pd.DataFrame({"v": [1]}, index=pd.Index(["x"], name="v")))
