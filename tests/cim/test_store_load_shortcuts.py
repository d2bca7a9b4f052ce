"""The bulk-load checks look at a column's first rows before scanning it all (value kind, text
inference, 2D/3D) and text goes to COPY with its nulls taken from Arrow: the answers must be those of
the whole column, also when the first rows are all null, in both stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

import geopandas as gpd
from cim.store._pgcopy import encode_series
from cim.store.base import frame_has_z, geometry_type_of, normalise_columns, prepare_frame, value_kind
from twin_core.errors import SchemaError

X0, Y0 = 410_000.0, 3_395_000.0
LEAD = 100  # nulls before the first value: more than the rows the shortcuts look at


def _points(n: int, z: bool = False):
    return [shapely.Point(X0 + i, Y0 + i, 5.0) if z else shapely.Point(X0 + i, Y0 + i) for i in range(n)]


def test_value_kind_finds_bytes_after_many_nulls():
    assert value_kind(pd.Series([None] * LEAD + [b"\x00\x01"], dtype=object)) == "bytes"
    assert value_kind(pd.Series([None] * LEAD + ["a"], dtype=object)) == "str"
    assert value_kind(pd.Series([None] * LEAD, dtype=object)) == "str"
    assert value_kind(pd.Series(["a", None], dtype="string")) == "str"


def test_object_columns_of_booleans_or_durations_after_many_nulls_are_still_seen():
    out = normalise_columns(pd.DataFrame({"flag": [None] * LEAD + [True, False]}))
    assert out["flag"].dtype == "boolean"
    with pytest.raises(SchemaError, match="durations"):
        normalise_columns(pd.DataFrame({"wait": [None] * LEAD + [pd.Timedelta(seconds=1)]}))
    # text first: left as it is, even with other values further down (stored as their text)
    mixed = pd.DataFrame({"v": ["a"] + [True] * LEAD})
    assert normalise_columns(mixed)["v"].dtype == object


@pytest.mark.parametrize("tail, want", [(shapely.Point(1, 2), False), (shapely.Point(1, 2, 3), True),
                                        (shapely.from_wkt("POINT EMPTY"), None), (None, None)])
def test_has_z_looks_past_leading_missing_geometries(tail, want):
    frame = gpd.GeoDataFrame(geometry=[None] * LEAD + [tail])
    assert frame_has_z(frame) is want


def test_a_3d_row_after_many_2d_ones_is_still_refused():
    frame = gpd.GeoDataFrame(geometry=_points(LEAD) + _points(1, z=True))
    with pytest.raises(SchemaError, match="mix 2D and 3D"):
        frame_has_z(frame)


@pytest.mark.parametrize("geoms, want", [
    ([None, shapely.Point(0, 0)], "POINT"),
    ([None, shapely.box(0, 0, 1, 1), shapely.MultiPolygon([shapely.box(0, 0, 1, 1)])], "MULTIPOLYGON"),
    ([shapely.Point(0, 0), shapely.LineString([(0, 0), (1, 1)])], "GEOMETRY"),
    ([None, None], "GEOMETRY"),
    ([shapely.GeometryCollection([shapely.Point(0, 0)])], "GEOMETRYCOLLECTION"),
])
def test_geometry_type_of(geoms, want):
    assert geometry_type_of(gpd.GeoDataFrame(geometry=gpd.GeoSeries(geoms))) == want


@pytest.mark.parametrize("dtype", [object, "string"])
def test_text_nulls_in_copy_are_those_pandas_sees(dtype):
    values = ["a", None, "bé", np.nan, pd.NA, pd.NaT, ""]
    col = encode_series(pd.Series(values, dtype=dtype), "text")
    assert col.lengths.tolist() == [1, -1, 3, -1, -1, -1, 0]
    assert col.data.tobytes() == "abé".encode()


def test_text_of_other_values_is_their_text():
    col = encode_series(pd.Series(["x", {"a": 1}, 3, None], dtype=object), "text")
    assert col.lengths.tolist() == [1, 8, 1, -1]
    assert col.data.tobytes() == b'x{"a": 1}3'


def test_prepare_frame_leaves_the_callers_frame_alone():
    gdf = gpd.GeoDataFrame({"a": [1, 2], "flag": [True, None]},
                           geometry=[shapely.box(0, 0, 1, 1), shapely.MultiPolygon([shapely.box(0, 0, 1, 1)])],
                           crs="EPSG:4544")
    out = prepare_frame(gdf)
    out.loc[0, "a"] = 99
    assert gdf["a"].tolist() == [1, 2] and gdf["flag"].dtype == object and "has_z" not in gdf.attrs
    assert gdf.geom_type.tolist() == ["Polygon", "MultiPolygon"]
    assert out.geom_type.tolist() == ["MultiPolygon", "MultiPolygon"]


def test_late_values_round_trip(store):
    n = LEAD + 2
    frame = gpd.GeoDataFrame({
        "name": [None] * LEAD + ["x", None],
        "tag": pd.Series([None] * LEAD + ["y", pd.NA], dtype="string"),
        "blob": [None] * LEAD + [b"\x01\x02", None],
        "flag": [None] * LEAD + [True, False],
    }, geometry=[None] * LEAD + _points(2, z=True), crs="EPSG:4544")
    store.write_layer("late", frame)
    back = store.read_layer("late")
    assert len(back) == n
    assert store.layer_info("late")["columns"] == {"name": "str", "tag": "str", "blob": "bytes", "flag": "bool"}
    assert back["name"].tolist()[LEAD:] == ["x", None] and back["name"].isna().sum() == LEAD + 1
    assert back["tag"].isna().sum() == LEAD + 1
    assert bytes(back["blob"].iloc[LEAD]) == b"\x01\x02"
    assert [None if v is pd.NA else v for v in back["flag"].tolist()[LEAD:]] == [True, False]
    assert shapely.has_z(back.geometry.values[LEAD:]).all()


def test_object_columns_sent_chunk_by_chunk_keep_every_row(store):
    # object columns go to COPY bytes chunk by chunk (4096 rows), Arrow-held text is encoded whole and cut
    # per chunk: rows on both sides of a cut, nulls at the cut, text that Arrow takes in one chunk and not
    # in the next (a dict: JSON) all come back as written
    n = 4096 * 2 + 5
    names = [None if i % 4096 in (0, 4095) else f"n{i}-é" for i in range(n)]
    blobs = [None if i % 7 == 0 else bytes([i % 256, 0]) for i in range(n)]
    tags = [None if i % 5 == 0 else f"x{i}" for i in range(n)]  # a value on each side of a cut
    notes = [f"t{i}" for i in range(n)]
    notes[4096 + 3] = {"k": 1}
    frame = gpd.GeoDataFrame({"name": names, "tag": pd.Series(tags, dtype="string[pyarrow]"), "blob": blobs,
                              "note": notes, "v": np.arange(n, dtype=float)}, geometry=_points(n), crs="EPSG:4544")
    store.write_layer("many", frame)
    store.write_table("many_t", pd.DataFrame(frame.drop(columns="geometry")))
    for back in (store.read_layer("many"), store.read_table("many_t")):
        assert [None if pd.isna(v) else v for v in back["name"].tolist()] == names
        assert [None if pd.isna(v) else v for v in back["tag"].tolist()] == tags
        assert [None if v is None or v is pd.NA else bytes(v) for v in back["blob"].tolist()] == blobs
        want = [str(v) if not isinstance(v, dict) else None for v in notes]
        got = back["note"].tolist()
        assert [g for g, w in zip(got, want) if w is not None] == [w for w in want if w is not None]
        assert back["v"].tolist() == list(np.arange(n, dtype=float))
