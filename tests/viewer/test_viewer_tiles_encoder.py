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
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    a, b = vector_tile_pb2.tile(), vector_tile_pb2.tile()
    a.ParseFromString(tile)
    b.ParseFromString(_encode_frame_tile_reference(fr, Z, X, Y))
    assert list(a.layers[0].keys) == list(b.layers[0].keys)
    assert list(a.layers[0].values) == list(b.layers[0].values)
    assert [list(f.tags) for f in a.layers[0].features] == [list(f.tags) for f in b.layers[0].features]


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
