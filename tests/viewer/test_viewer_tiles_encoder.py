"""The vectorised MVT encoder against the former one (``mapbox_vector_tile.encode`` feature by feature).

Both encoders' tiles are decoded and compared feature by feature: the same ids in
the same order, the same properties, the same geometry (ring start points may
differ, so geometries are compared as point sets). The raw commands are also
checked against the MVT 2.1 rules (exterior rings positive area in tile
coordinates, interior rings negative, no repeated points).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")
mapbox_vector_tile = pytest.importorskip("mapbox_vector_tile")

from shapely import LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon, box  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from viewer import _mvt  # noqa: E402
from viewer.geo import tile_bounds_3857  # noqa: E402
from viewer.tiles import (  # noqa: E402
    EXTENT,
    ProjectedFrame,
    _encode_frame_tile_reference,
    encode_frame_tile,
    project_frame,
    tile_fields,
)

Z, X, Y = 15, 25855, 13451


def _decode(tile: bytes) -> list[tuple]:
    if not tile:
        return []
    layers = mapbox_vector_tile.decode(tile, default_options={"y_coord_down": True})
    assert len(layers) == 1
    (layer,) = layers.values()
    assert layer["extent"] == EXTENT
    return [(f["id"], f["properties"], f["geometry"]["type"], shape(f["geometry"])) for f in layer["features"]]


def _same_geometry(a, b) -> bool:
    if a.equals(b):
        return True
    return a.geom_type == b.geom_type and a.area > 0 and a.symmetric_difference(b).area == 0


def assert_tiles_equivalent(new: bytes, old: bytes, where="") -> int:
    a, b = _decode(new), _decode(old)
    assert [f[0] for f in a] == [f[0] for f in b], where
    for fa, fb in zip(a, b):
        assert fa[1] == fb[1], (where, fa[0])
        assert type(fa[1]) is type(fb[1])
        assert {k: type(v) for k, v in fa[1].items()} == {k: type(v) for k, v in fb[1].items()}, (where, fa[0])
        assert fa[2] == fb[2], (where, fa[0], fa[2], fb[2])
        assert _same_geometry(fa[3], fb[3]), (where, fa[0], fa[3].wkt, fb[3].wkt)
    if new:
        _check_commands(new)
    return len(a)


def _zz(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _check_commands(tile: bytes) -> None:
    """Walk the raw geometry commands: MVT 2.1 ring orientation, no zero-length steps, tables deduplicated."""
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    t = vector_tile_pb2.tile()
    t.ParseFromString(tile)
    (layer,) = t.layers
    assert layer.version == 2 and layer.extent == EXTENT
    assert len(set(layer.keys)) == len(layer.keys)
    vals = [v.SerializeToString() for v in layer.values]
    assert len(set(vals)) == len(vals)
    for f in layer.features:
        g = list(f.geometry)
        i, cx, cy = 0, 0, 0
        rings = []
        while i < len(g):
            cmd, count = g[i] & 7, g[i] >> 3
            i += 1
            if cmd == 7:
                assert f.type == 3 and count == 1
                continue
            pts = []
            for _ in range(count):
                dx, dy = _zz(g[i]), _zz(g[i + 1])
                i += 2
                if cmd == 2:
                    assert (dx, dy) != (0, 0), "a LineTo that goes nowhere"
                cx, cy = cx + dx, cy + dy
                pts.append((cx, cy))
            if cmd == 1 and f.type != 1:
                assert count == 1
                rings.append(pts)
            elif cmd == 2:
                rings[-1].extend(pts)
        if f.type == 3:
            areas = [sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(r, r[1:] + r[:1])) for r in rings]
            assert areas and areas[0] > 0, "a polygon starts with an exterior ring, positive area (y down)"
            assert all(a != 0 for a in areas)
            assert all(len(set(r)) >= 3 for r in rings)


def _to_3857(z, x, y):
    xmin, ymin, xmax, ymax = tile_bounds_3857(z, x, y)
    k = (xmax - xmin) / EXTENT

    def f(xy):
        return np.column_stack([xmin + xy[:, 0] * k, ymax - xy[:, 1] * k])

    return f


def _tricky_geometries() -> list:
    """Geometries in tile units (y down) that exercise the encoder's corners."""
    ring = [(1000.2, 1000.7), (1400.4, 1000.1), (1400.9, 1300.3), (1000.6, 1300.5)]
    hole = [(1100.3, 1100.2), (1200.6, 1100.4), (1200.2, 1200.9), (1100.1, 1200.3)]
    g = [
        box(10.2, 10.7, 100.4, 80.1),                                   # plain box
        Polygon(ring, [hole]),                                          # a hole
        Polygon(ring[::-1], [hole[::-1], [(1300.2, 1100.1), (1350.3, 1100.2), (1350.2, 1150.4)]]),  # wrong winding, 2 holes
        MultiPolygon([box(2000, 2000, 2100, 2100), Polygon(ring, [hole])]).buffer(0),  # multipolygon, one with a hole
        MultiPolygon([box(2000.3, 2500.2, 2100.7, 2600.1), box(2100.9, 2500.2, 2200, 2600)]),  # parts 0.2 apart: merge
        box(-300.3, 100.2, 300.6, 200.4),                               # across the left edge and the buffer
        box(4000.5, 4000.5, 4500.5, 4500.5),                            # across the corner, halves round up
        box(500.1, 500.1, 500.3, 500.3),                                # collapses to nothing
        box(600.1, 600.1, 900.3, 600.4),                                # sliver that collapses to a line
        Polygon([(700, 700), (800, 700), (800, 800), (700, 800)], [[(700.6, 720), (750, 720), (750, 780), (700.6, 780)]]),  # hole 0.6 from the edge
        Polygon([(3000, 3000), (3100, 3000), (3050.4, 3099.2), (3050.6, 3000.4)]).buffer(0),  # spike near an edge
        Polygon([(3200, 3200), (3200.4, 3200.3), (3300, 3200), (3300, 3300)]),  # nearly repeated points
        MultiPolygon([box(3500, 500, 3501.2, 501.4), box(3600, 500, 3700, 600)]),  # one part tiny
        box(1500.5, 200.5, 1502.5, 202.5),                              # 2x2 pixels
        Polygon([(1800, 200), (1801, 200), (1800.2, 201.2)]),           # a triangle the size of a pixel
        LineString([(10.3, 3000.2), (500.7, 3000.2), (500.7, 3000.4), (900.1, 3500.6)]),  # repeated point after rounding
        LineString([(-500, 3800), (5000, 3900)]),                       # across the tile
        LineString([(1000.1, 3600.1), (1000.3, 3600.2)]),               # collapses to a point
        MultiLineString([[(100, 3700), (200, 3750)], [(300.2, 3700.2), (300.3, 3700.3)], [(400, 3700), (450, 3800)]]),
        LineString([(2000, 3000), (2100, 3100), (2000, 3100), (2100, 3000)]),  # self-crossing line
        Point(1234.4, 2345.6),
        Point(-30.5, 4100.5),
        MultiPoint([(100, 100), (100.2, 100.1), (300, 50)]),            # two points on one pixel
        Polygon([(2500, 1000), (2600, 1100), (2600, 1000), (2500, 1100)]),  # invalid input (bow-tie)
        Polygon([(2700, 1000), (2800, 1000), (2800, 1100), (2750, 1000.3), (2700, 1100)]),  # touches itself on rounding
    ]
    return g


def _frame(geoms_tile, props, layer="things"):
    geoms = shapely.transform(np.array(geoms_tile, dtype=object), _to_3857(Z, X, Y))
    return ProjectedFrame(geoms, props, shapely.STRtree(geoms), layer)


def _reference_or_none(frame, z, x, y):
    try:
        return _encode_frame_tile_reference(frame, z, x, y)
    except shapely.errors.GEOSException:
        return None



def _assert_same_tables(tile: bytes, reference: bytes) -> None:
    """The two tiles' first layers have the same key table, value table and feature tags, entry for entry."""
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    a, b = vector_tile_pb2.tile(), vector_tile_pb2.tile()
    a.ParseFromString(tile)
    b.ParseFromString(reference)
    assert list(a.layers[0].keys) == list(b.layers[0].keys)
    assert list(a.layers[0].values) == list(b.layers[0].values)
    assert [list(f.tags) for f in a.layers[0].features] == [list(f.tags) for f in b.layers[0].features]

def test_tricky_geometries_encode_like_the_former_encoder():
    geoms = _tricky_geometries()
    props = [{"n": i, "name": f"第{i}号 café ✓"} for i in range(len(geoms))]
    valid = [i for i, g in enumerate(geoms) if g.is_valid]
    fr = _frame([geoms[i] for i in valid], [props[i] for i in valid])
    tile = encode_frame_tile(fr, Z, X, Y)
    n = assert_tiles_equivalent(tile, _encode_frame_tile_reference(fr, Z, X, Y))
    assert 15 <= n < len(valid)  # the collapsing ones are gone


def test_invalid_input_is_repaired_where_the_former_encoder_failed():
    geoms = _tricky_geometries()
    bowtie = geoms[-2]
    assert not bowtie.is_valid
    fr = _frame([box(10, 10, 20, 20), bowtie], [{}, {}])
    assert _reference_or_none(fr, Z, X, Y) is None  # GEOS's precision reducer raised: the tile was a 500
    feats = _decode(encode_frame_tile(fr, Z, X, Y))
    assert [f[0] for f in feats] == [1, 2]
    assert feats[1][3].is_valid and feats[1][3].area == pytest.approx(100 * 100 / 2, rel=0.05)


@pytest.mark.parametrize("z,x,y", [(Z, X, Y), (Z, X + 1, Y), (Z, X, Y - 1), (Z - 1, X // 2, Y // 2), (Z + 1, 2 * X, 2 * Y)])
def test_neighbour_and_parent_tiles_too(z, x, y):
    """The same features seen from the tiles around: clipped at other edges, other scales."""
    geoms = [g for g in _tricky_geometries() if g.is_valid]
    fr = _frame(geoms, [{"i": i} for i in range(len(geoms))])
    assert_tiles_equivalent(encode_frame_tile(fr, z, x, y), _encode_frame_tile_reference(fr, z, x, y), (z, x, y))


def test_property_types_nulls_and_shared_values():
    import geopandas as gpd

    n = 8
    geoms = shapely.transform(np.array([box(100 + 300 * i, 100, 300 + 300 * i, 300) for i in range(n)]), _to_3857(Z, X, Y))
    df = gpd.GeoDataFrame({
        "name": ["成都", "café", None, "", "✓ ok", "成都", "x" * 300, "a\x00b"],
        "height_m": [10.4, 10.6, float("nan"), 0.0, -3.5, 1e15, 2.0, 1.0],
        "ratio": [0.15, 0.25, 1.0, float("nan"), -0.05, 1.0, 2.04, 3.0],
        "lanes": [1, 2, 3, 1, -2, 2 ** 40, 0, 1],
        "closed": [True, False, True, False, True, True, False, True],
    }, geometry=list(geoms), crs="EPSG:3857")
    df["lanes"] = df["lanes"].astype("int64")
    fields = list(df.columns.drop("geometry"))
    fr = project_frame(df, "EPSG:3857", "things", fields)
    tile = encode_frame_tile(fr, Z, X, Y)
    assert assert_tiles_equivalent(tile, _encode_frame_tile_reference(fr, Z, X, Y)) == n
    feats = _decode(tile)
    assert feats[2][1] == {"ratio": 1.0, "lanes": 3, "closed": True}  # nulls and NaN left out
    assert feats[0][1]["height_m"] == 10 and isinstance(feats[0][1]["height_m"], int)
    assert feats[1][1]["ratio"] == 0.3  # PostGIS rounding
    # and the raw tables: equal values share an entry, bools apart from ints
    _assert_same_tables(tile, _encode_frame_tile_reference(fr, Z, X, Y))


def test_empty_and_far_away_tiles():
    fr = _frame([box(10, 10, 20, 20)], [{}])
    assert encode_frame_tile(fr, Z, X + 5, Y) == b"" == _encode_frame_tile_reference(fr, Z, X + 5, Y)
    fr = _frame([box(500.1, 500.1, 500.3, 500.3)], [{}])  # only a collapsing polygon
    assert encode_frame_tile(fr, Z, X, Y) == b"" == _encode_frame_tile_reference(fr, Z, X, Y)
    assert _mvt.encode_layer("x", [], [], []) == b""
    with pytest.raises(ValueError, match="one entry per feature"):
        _mvt.encode_layer("x", [box(0, 0, 1, 1)], [1, 2], [{}])


def test_varints_match_protobuf():
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    vals = np.array([0, 1, 127, 128, 300, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 32 - 1, 2 ** 35, 2 ** 63, 2 ** 64 - 1],
                    dtype=np.uint64)
    buf, ends = _mvt._varints(vals)
    f = vector_tile_pb2.tile.feature()
    f.geometry.extend([int(v) for v in vals[vals < 2 ** 32]])
    packed = f.SerializeToString()
    m = int((vals < 2 ** 32).sum())
    assert packed.endswith(buf[:ends[m - 1]].tobytes())
    assert list(_mvt._varint_len(vals)) == list(np.diff(np.concatenate(([0], ends))))
    assert [_mvt._varint(int(v)) for v in vals] == [buf[a:b].tobytes() for a, b in zip(np.r_[0, ends[:-1]], ends)]


def test_docstring_examples_run():
    assert doctest.testmod(_mvt, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.fixture(scope="module")
def small_city_frames(city_template):
    from cim.store import open_store

    frames = {}
    with open_store(city_template["path"]) as st:
        crs = st.crs
        for layer in ("buildings", "road_links", "parcels", "water", "areas", "road_nodes", "pois", "sensors"):
            info = st.layer_info(layer)
            if info is None or not info.get("count"):
                continue
            fields = tile_fields(layer, list(info["columns"]))
            gdf = st.read_layer(layer, columns=fields)
            frames[layer] = (project_frame(gdf, crs, layer, fields), info["bounds"])
    return frames, crs


def _city_tiles(bounds, crs, z):
    from viewer.geo import to_wgs84
    from viewer.tiles import city_tiles

    return city_tiles(to_wgs84(bounds, crs), z)


@pytest.mark.parametrize("z", [12, 14, 15, 16])
def test_sample_city_tiles_encode_like_the_former_encoder(small_city_frames, z):
    frames, crs = small_city_frames
    assert "buildings" in frames
    n = 0
    for layer, (fr, bounds) in frames.items():
        tiles = _city_tiles(bounds, crs, z)
        step = max(1, math.ceil(len(tiles) / 12))  # at most a dozen tiles of a layer per zoom
        for t in tiles[::step]:
            n += assert_tiles_equivalent(encode_frame_tile(fr, *t), _encode_frame_tile_reference(fr, *t), (layer, t))
    assert n > 100


def test_geometry_collections_keep_their_highest_dimension():
    """The former encoder refused collections; a tile now carries their polygons, else lines, else points."""
    from shapely import GeometryCollection

    gc = GeometryCollection([box(0, 0, 10, 10), MultiPolygon([box(5, 5, 20, 20), box(30, 30, 40, 40)]),
                             LineString([(0, 0), (50, 50)]), Point(3, 3)])
    lines = GeometryCollection([LineString([(0, 0), (50, 50)]),
                                GeometryCollection([Point(3, 3), LineString([(60, 0), (60, 50)])])])
    points = GeometryCollection([Point(3, 3), Point(4, 4)])
    tile = _mvt.encode_layer("x", [gc, lines, points, GeometryCollection(), None], [1, 2, 3, 4, 5], [{}] * 5)
    feats = _decode(tile)
    assert [(f[0], f[2]) for f in feats] == [(1, "MultiPolygon"), (2, "MultiLineString"), (3, "MultiPoint")]
    assert feats[0][3].equals(shapely.union_all([box(0, 0, 10, 10), box(5, 5, 20, 20), box(30, 30, 40, 40)]))
    assert feats[1][3].equals(MultiLineString([[(0, 0), (50, 50)], [(60, 0), (60, 50)]]))
    _check_commands(tile)


def test_feature_ids_and_negative_ids():
    tile = _mvt.encode_layer("x", [Point(1, 2), Point(3, 4)], [2 ** 40, -1], [{"a": 1}, {"a": 1.0}])
    feats = _decode(tile)
    assert [f[0] for f in feats] == [2 ** 40, 0]  # no id field for a negative id (decoded as the default 0), as before
    assert feats[1][1] == {"a": 1}  # 1.0 shares the table entry of 1, as before
    old = mapbox_vector_tile.encode({"name": "x", "features": [
        {"geometry": Point(1, 2), "properties": {"a": 1}, "id": 2 ** 40},
        {"geometry": Point(3, 4), "properties": {"a": 1.0}, "id": -1}]},
        default_options={"y_coord_down": True})
    assert tile == old


# --- attributes: the table of value codes (viewer._mvt.Properties) against the former per-feature loop ---

def _reference_points(records, ids=None) -> bytes:
    """``mapbox_vector_tile.encode`` of one point per record (points encode alike in both encoders)."""
    ids = list(range(1, len(records) + 1)) if ids is None else ids
    feats = [{"geometry": Point(10 + i % 4000, 10 + i // 4000), "properties": r, "id": fid}
             for i, (r, fid) in enumerate(zip(records, ids))]
    return mapbox_vector_tile.encode({"name": "x", "features": feats}, default_options={"y_coord_down": True})


def _ours_points(props, ids=None) -> bytes:
    n = len(props)
    ids = list(range(1, n + 1)) if ids is None else ids
    return _mvt.encode_layer("x", [Point(10 + i % 4000, 10 + i // 4000) for i in range(n)], ids, props)


def _typed(records) -> list[dict]:
    """Records with each value's type and repr (1 and 1.0, 0.0 and -0.0, nan told apart)."""
    return [{k: (type(v).__name__, repr(v)) for k, v in r.items()} for r in records]


def _decoded_props(tile: bytes) -> list[dict]:
    return [f[1] for f in _decode(tile)]


_POOL = ["成都 ✓", "café\x00x", "", "3", "x" * 200, 3, 3.0, 1, 1.0, True, False, 0, 0.0, -0.0, -7, 1.25,
         2 ** 40, -(2 ** 62), 2 ** 63 - 1, -(2 ** 63), 1e300, float("inf"), -float("inf"), None, [1], b"raw"]


@pytest.mark.parametrize("n", [1, 2, 37, 3000])
def test_attributes_write_the_former_encoders_bytes(n):
    """Mixed types per column, nulls, unicode, shared and equal values (1 and 1.0 and True): the same key and
    value tables and tags as ``mapbox_vector_tile``, byte for byte (records with their keys in one order)."""
    rng = np.random.default_rng(n)
    keys = ["kind", "名前", "n", "flag", "x"]
    nan = float("nan")  # one NaN object shares a table entry, as a dict key, in both encoders
    records = []
    for i in range(n):
        take = rng.random(len(keys)) < 0.8
        if i == 0:
            take[:] = True
        pool = _POOL + [nan, float("nan")]
        records.append({k: pool[int(rng.integers(len(pool)))] for k, t in zip(keys, take) if t})
    tile = _ours_points(records)
    assert tile == _reference_points(records)
    assert tile == _ours_points(_mvt.Properties.from_records(records))
    if n > 1:  # a tile's tables are its own: the features of a subset, first met first
        rows = np.arange(n)[::-2]
        sub = [records[i] for i in rows]
        assert _ours_points(_mvt.Properties.from_records(records).take(rows)) == _reference_points(sub)


def test_attributes_in_any_key_order_decode_alike():
    """Keys in another order per feature: tags are written in column order, the decoded features are the same."""
    records = [{"c": 1}, {"a": "x", "b": 2.5, "c": True}, {"b": 2.5, "a": 1.0}, {}, {"c": None, "a": "x"}]
    tile = _ours_points(records)
    ref = _reference_points(records)
    assert _typed(_decoded_props(tile)) == _typed(_decoded_props(ref)) == _typed(
        [{"c": 1}, {"a": "x", "b": 2.5, "c": True}, {"b": 2.5, "a": 1}, {}, {"a": "x"}])


def test_first_value_met_keeps_its_type_per_tile():
    """Equal values share a table entry, the first one a tile meets (``1`` before ``1.0`` across columns)."""
    records = [{"a": 1.0, "b": 1}, {"a": 1, "b": True}, {"a": 1, "b": 1.0}]
    p = _mvt.Properties.from_records(records)
    assert _typed(_decoded_props(_ours_points(p))) == [
        {"a": ("float", "1.0"), "b": ("float", "1.0")}, {"a": ("float", "1.0"), "b": ("bool", "True")},
        {"a": ("float", "1.0"), "b": ("float", "1.0")}]
    assert _typed(_decoded_props(_ours_points(p.take([2, 1])))) == [
        {"a": ("int", "1"), "b": ("int", "1")}, {"a": ("int", "1"), "b": ("bool", "True")}]
    assert _ours_points(p.take([2, 1])) == _reference_points([records[2], records[1]])


def test_huge_ints_and_the_value_fields():
    """int64 values as int_value, up to 2**64 - 1 as uint_value, beyond that as text (the former encoder
    refused them); doubles stay doubles, bools bools."""
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    vals = [2 ** 63 - 1, -(2 ** 63), 2 ** 63, 2 ** 64 - 1, 2 ** 64, -(2 ** 63) - 1, 2.5, True, "s"]
    records = [{"v": v} for v in vals]
    tile = _ours_points(records)
    assert tile == _ours_points(_mvt.Properties.from_records(records))
    assert [p["v"] for p in _decoded_props(tile)] == [2 ** 63 - 1, -(2 ** 63), 2 ** 63, 2 ** 64 - 1,
                                                      str(2 ** 64), str(-(2 ** 63) - 1), 2.5, True, "s"]
    t = vector_tile_pb2.tile()
    t.ParseFromString(tile)
    fields = [[f.name for f, _ in v.ListFields()] for v in t.layers[0].values]
    assert fields == [["int_value"], ["int_value"], ["uint_value"], ["uint_value"], ["string_value"],
                      ["string_value"], ["double_value"], ["bool_value"], ["string_value"]]


def test_empty_one_and_attribute_less_features():
    assert _ours_points(_mvt.Properties.from_records([])) == b""
    assert _ours_points([{"a": None, 1: "not a str key", "b": object()}]) == _reference_points([{}])
    one = [{"name": "成都", "h": 12}]
    assert _ours_points(_mvt.Properties.from_records(one)) == _reference_points(one)
    none = _mvt.Properties([], np.empty((3, 0), dtype=np.int32), [])
    assert _ours_points(none) == _reference_points([{}, {}, {}])
    with pytest.raises(ValueError, match=r"codes must have shape \(n_features, 2\)"):
        _mvt.Properties(["a", "b"], np.zeros((3, 1), dtype=np.int32), [1])
    with pytest.raises(ValueError, match=r"codes must lie in -1 \.\. 0"):
        _mvt.Properties(["a"], np.array([[0], [1]]), [1])
    with pytest.raises(TypeError, match=r"got None \(NoneType\) at values\[1\]"):
        _mvt.Properties(["a"], np.array([[0], [1]]), [1, None])


def test_value_messages_are_written_once_not_per_tile(monkeypatch):
    """The table is built once per frame; a tile only gathers: no per-feature, per-value Python work."""
    records = [{"id": f"b{i}", "h": i % 7, "use": ["home", "shop"][i % 2]} for i in range(500)]
    p = _mvt.Properties.from_records(records)
    expect = _reference_points(records[:300])

    def no_more(*a, **k):
        raise AssertionError("a value message written while encoding a tile")

    monkeypatch.setattr(_mvt, "_value", no_more)
    assert _ours_points(p.take(np.arange(300))) == expect


def _former_props(df, fields) -> list[dict]:
    """What ``project_frame`` put in a frame, feature by feature, before the table (the oracle)."""
    from viewer.tiles import _mvt_value

    out = []
    for rec in df[fields].to_dict("records"):
        p = {k: _mvt_value(k, v) for k, v in rec.items()}
        out.append({k: v for k, v in p.items() if v is not None})
    return out


def test_project_frame_attributes_as_before_for_every_column_type():
    import geopandas as gpd
    import pandas as pd

    n = 12
    nan = float("nan")
    geoms = shapely.transform(np.array([box(100 + 300 * (i % 12), 100 + 300 * (i // 12), 300 + 300 * (i % 12),
                                            300 + 300 * (i // 12)) for i in range(n)]), _to_3857(Z, X, Y))
    cols = {
        "mixed": ["成都", 3, 3.0, True, None, nan, 2 ** 63, -0.0, 0.15, "3", 1, pd.NA],
        "label": ["a", None, nan, "b", "a", "", "ü", "a", None, "x" * 300, "b", "a"],
        "name": pd.array(["a", None, "c", "d", "a", None, "b", "c", "a", "é", "b", "a"], dtype="str"),
        "text_na": pd.array(["a", None, "c", "d", "a", None, "b", "c", "a", "é", "b", "a"], dtype="string"),
        "lanes": np.array([1, 2, 3, 1, -2, 2 ** 40, 0, 1, 5, 6, 7, 8], dtype=np.int64),
        "small": np.array([1, 2, 3, 1, 2, 2, 0, 1, 5, 6, 7, 255], dtype=np.uint8),
        "big": np.array([2 ** 64 - 1, 0, 1, 2 ** 63, 5, 5, 5, 5, 5, 5, 5, 5], dtype=np.uint64),
        "height_m": [10.4, 10.6, nan, 0.0, -3.5, 1e15, 2.0, 1.0, -0.4, 9.5, 10.5, 11.0],
        "ratio": [0.15, 0.25, 1.0, nan, -0.05, 1.0, 2.04, 3.0, -0.0, 0.0, float("inf"), 1e300],
        "f32": np.array([0.1, 0.25, nan, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=np.float32),
        "closed": [True, False, True, False, True, True, False, True, True, False, False, True],
        "maybe": pd.array([1, None, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], dtype="Int64"),
        "when": pd.to_datetime(["2024-01-01"] * 6 + [None] * 6),
        "cat": pd.Categorical(["x", "y", "x", None, "y", "x", "x", "y", "x", "x", "y", "x"]),
        "empty": [None] * n,
        "all_nan": [nan] * n,
    }
    df = gpd.GeoDataFrame(cols, geometry=list(geoms), crs="EPSG:3857")
    fields = list(cols)
    fr = project_frame(df, "EPSG:3857", "things", fields)
    assert fr.props.columns == fields
    assert _typed(fr.props.records()) == _typed(_former_props(df, fields))
    rec = fr.props.records()
    assert rec[0]["text_na"] == "a" and not {"label", "name", "text_na", "maybe", "empty", "all_nan"} & set(rec[1])
    assert rec[1]["mixed"] == 3 and "mixed" not in rec[11]  # pd.NA left out, as None and NaN
    assert repr(rec[8]["ratio"]) == "-0.0" and repr(rec[9]["ratio"]) == "0.0"
    # a missing datetime is left out as PostGIS leaves out a NULL (it was written as the text "NaT")
    assert rec[0]["when"] == "2024-01-01 00:00:00" and "when" not in rec[6]
    obj = gpd.GeoDataFrame({"t": pd.Series([pd.Timestamp("2024-01-01"), pd.NaT, None, np.datetime64("NaT")],
                                           dtype=object)}, geometry=list(geoms[:4]), crs="EPSG:3857")
    assert [r.get("t") for r in project_frame(obj, "EPSG:3857", "t", ["t"]).props.records()] == [
        "2024-01-01 00:00:00", None, None, None]
    ok = [f for f in fields if f not in ("big", "mixed")]  # the former encoder refused ints >= 2**63
    fr_ok = project_frame(df, "EPSG:3857", "things", ok)
    tile = encode_frame_tile(fr_ok, Z, X, Y)
    assert assert_tiles_equivalent(tile, _encode_frame_tile_reference(fr_ok, Z, X, Y)) == n
    _assert_same_tables(tile, _encode_frame_tile_reference(fr_ok, Z, X, Y))
    # the whole table, huge ints too, against the per-feature encoding of the former frame's dicts
    assert encode_frame_tile(fr, Z, X, Y) == encode_frame_tile(
        ProjectedFrame(fr.geoms, _former_props(df, fields), fr.tree, "things"), Z, X, Y)


def test_frame_of_dicts_and_no_fields():
    fr = _frame([box(10, 10, 20, 20), box(30, 30, 40, 40)], [{"a": 1}, {}])
    assert isinstance(fr.props, _mvt.Properties) and fr.props.records() == [{"a": 1}, {}]
    import geopandas as gpd

    df = gpd.GeoDataFrame({"a": [1, 2]}, geometry=list(fr.geoms), crs="EPSG:3857")
    bare = project_frame(df, "EPSG:3857", "things", [])
    assert bare.props.records() == [{}, {}]
    assert _decoded_props(encode_frame_tile(bare, Z, X, Y)) == [{}, {}]
