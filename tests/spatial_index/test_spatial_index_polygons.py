"""PolygonIndex equals shapely.STRtree pair for pair, boundaries included.

Coordinates live on a coarse grid (integers and halves) so that query points
fall exactly on edges and vertices, and polygons share edges, much more often
than with random floats.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial_index import PolygonIndex

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coord = st.integers(0, 12).map(float)
half = st.integers(0, 24).map(lambda v: v / 2.0)


@st.composite
def polygon(draw):
    pts = draw(st.lists(st.tuples(coord, coord), min_size=3, max_size=7))
    g = shapely.convex_hull(shapely.multipoints(pts))
    if g.geom_type != "Polygon":
        g = shapely.box(pts[0][0], pts[0][1], pts[0][0] + 2, pts[0][1] + 3)
    kind = draw(st.sampled_from(["plain", "hole", "multi"]))
    if kind == "hole":
        x, y = draw(coord), draw(coord)
        g = g.difference(shapely.box(x, y, x + draw(st.integers(1, 3)), y + draw(st.integers(1, 3))))
    elif kind == "multi":
        x, y = draw(coord), draw(coord)
        g = g.symmetric_difference(shapely.box(x, y, x + 2, y + 2))
    if g.is_empty:
        return g
    g = shapely.make_valid(g)
    if g.geom_type == "GeometryCollection":
        polys = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
        g = shapely.union_all(polys) if polys else shapely.Polygon()
    if g.geom_type not in ("Polygon", "MultiPolygon"):
        g = shapely.Polygon()
    return g


polygons = st.lists(polygon(), min_size=0, max_size=8).map(lambda v: np.array(v, dtype=object))
points_xy = st.lists(st.tuples(half, half), min_size=0, max_size=40)


def _sorted(pairs):
    pairs = np.asarray(pairs)
    return pairs[:, np.lexsort((pairs[1], pairs[0]))] if pairs.size else pairs.reshape(2, 0)


def _tree(geoms):
    return shapely.STRtree(geoms)


@SETTINGS
@given(polygons, points_xy, st.sampled_from(["within", "intersects"]))
def test_query_points_equals_shapely(geoms, xy, predicate):
    xy = np.array(xy, dtype=float).reshape(-1, 2)
    ours = PolygonIndex.from_shapely(geoms).query_points(xy, predicate=predicate)
    ref = _sorted(_tree(geoms).query(shapely.points(xy), predicate=predicate))
    np.testing.assert_array_equal(ours, ref)


@SETTINGS
@given(polygons, polygons)
def test_query_polygons_equals_shapely(geoms, queries):
    ours = PolygonIndex.from_shapely(geoms).query(queries, predicate="intersects")
    ref = _sorted(_tree(geoms).query(queries, predicate="intersects"))
    np.testing.assert_array_equal(ours, ref)


@SETTINGS
@given(polygons, st.lists(st.tuples(half, half, st.integers(0, 4), st.integers(0, 4)), max_size=10))
def test_query_boxes_equals_shapely(geoms, boxes):
    b = np.array([(x, y, x + w, y + h) for x, y, w, h in boxes], dtype=float).reshape(-1, 4)
    idx = PolygonIndex.from_shapely(geoms)
    ref = _sorted(_tree(geoms).query(shapely.box(*b.T), predicate="intersects")) if len(b) else np.zeros((2, 0))
    np.testing.assert_array_equal(idx.query(b), ref)
    # the same boxes as shapely polygons (zero-width boxes become lines/points there: skip those)
    nondeg = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    q = shapely.box(*b[nondeg].T) if nondeg.any() else np.array([], dtype=object)
    np.testing.assert_array_equal(idx.query(q), _sorted(_tree(geoms).query(q, predicate="intersects")))


@SETTINGS
@given(polygons, st.lists(st.lists(st.tuples(half, half), min_size=2, max_size=4), max_size=6))
def test_query_lines_and_multipoints_equals_shapely(geoms, lines):
    q = [shapely.LineString(c) for c in lines] + [shapely.MultiPoint(c) for c in lines]
    q = np.array(q + [shapely.Point(), shapely.LineString(), None], dtype=object)
    ours = PolygonIndex.from_shapely(geoms).query(q)
    ref = _sorted(_tree(geoms).query(q, predicate="intersects"))
    np.testing.assert_array_equal(ours, ref)


@SETTINGS
@given(polygons, st.lists(st.tuples(half, half), min_size=1, max_size=30))
def test_nearest_equals_query_nearest(geoms, xy):
    xy = np.array(xy, dtype=float)
    idx = PolygonIndex.from_shapely(geoms)
    pairs, dist = idx.nearest(xy)
    ref, rdist = _tree(geoms).query_nearest(shapely.points(xy), return_distance=True, all_matches=True)
    order = np.lexsort((ref[1], ref[0]))
    np.testing.assert_array_equal(pairs, ref[:, order])
    np.testing.assert_array_equal(dist, rdist[order])


def test_boundary_semantics_documented():
    sq = shapely.box(0, 0, 10, 10).difference(shapely.box(4, 4, 6, 6))
    idx = PolygonIndex.from_shapely([sq])
    pts = [[0, 0], [5, 0], [4, 5], [5, 5], [1, 1], [11, 11]]  # vertex, edge, hole edge, hole, inside, outside
    assert idx.query_points(pts, "within")[0].tolist() == [4]
    assert idx.query_points(pts, "intersects")[0].tolist() == [0, 1, 2, 4]


def test_robust_orientation_on_nearly_collinear_points():
    # a point on a long diagonal edge whose coordinates are not exactly representable sums
    a, b = (0.1, 0.1), (1e6 + 0.3, 1e6 + 0.3)
    tri = shapely.Polygon([a, b, (0.1, 1e6 + 0.3)])
    t = 0.3
    p = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))  # float rounding leaves it just off or on
    xy = np.array([p, (p[0] + 1e-10, p[1]), (p[0] - 1e-10, p[1])])
    for pred in ("within", "intersects"):
        ref = _sorted(shapely.STRtree([tri]).query(shapely.points(xy), predicate=pred))
        np.testing.assert_array_equal(PolygonIndex.from_shapely([tri]).query_points(xy, pred), ref)


def test_geoseries_and_empty_inputs():
    gpd = pytest.importorskip("geopandas")
    s = gpd.GeoSeries([shapely.box(0, 0, 1, 1), None, shapely.Polygon(), shapely.box(2, 0, 3, 1)])
    idx = PolygonIndex.from_shapely(s)
    assert len(idx) == 4
    assert idx.query_points([[0.5, 0.5], [2.5, 0.5]]).tolist() == [[0, 1], [0, 3]]
    assert idx.query_points(np.zeros((0, 2))).shape == (2, 0)
    assert idx.query([]).shape == (2, 0)
    empty = PolygonIndex.from_shapely([])
    assert empty.query_points([[0, 0]]).shape == (2, 0)
    p, d = empty.nearest([[0, 0]])
    assert p.shape == (2, 0) and d.shape == (0,)


def test_random_float_polygons_and_pickle():
    import pickle

    rng = np.random.default_rng(1)
    c = rng.uniform(0, 500, (400, 2))
    polys = shapely.buffer(shapely.points(c), rng.uniform(1, 20, 400), quad_segs=4)
    polys[::5] = shapely.difference(polys[::5], shapely.buffer(shapely.points(c[::5]), 0.5))
    idx = pickle.loads(pickle.dumps(PolygonIndex.from_shapely(polys, node_size=4)))
    xy = np.vstack([rng.uniform(0, 500, (3000, 2)), shapely.get_coordinates(polys)[:500]])
    for pred in ("within", "intersects"):
        ref = _sorted(shapely.STRtree(polys).query(shapely.points(xy), predicate=pred))
        np.testing.assert_array_equal(idx.query_points(xy, pred), ref)
    ref = _sorted(shapely.STRtree(polys).query(polys, predicate="intersects"))
    np.testing.assert_array_equal(idx.query(polys), ref)


def test_sample_city_buildings_in_parcels(small_city):
    b = small_city["buildings"].geometry.values
    p = small_city["parcels"].geometry.values
    idx = PolygonIndex.from_shapely(p)
    ref = _sorted(shapely.STRtree(p).query(b, predicate="intersects"))
    np.testing.assert_array_equal(idx.query(b), ref)
    cen = shapely.get_coordinates(shapely.centroid(b))
    for pred in ("within", "intersects"):
        np.testing.assert_array_equal(idx.query_points(cen, pred),
                                      _sorted(shapely.STRtree(p).query(shapely.points(cen), predicate=pred)))
    pairs, dist = idx.nearest(cen)
    ref, rd = shapely.STRtree(p).query_nearest(shapely.points(cen), return_distance=True)
    o = np.lexsort((ref[1], ref[0]))
    np.testing.assert_array_equal(pairs, ref[:, o])
    np.testing.assert_array_equal(dist, rd[o])


@SETTINGS
@given(polygons, points_xy)
def test_lazy_and_eager_builds_agree(geoms, xy):
    """from_shapely reads coordinates at the first exact query (lazy, the default); the arrays it then
    exposes in input order, and every answer, equal the eager build and a from_arrays round trip."""
    xy = np.array(xy, dtype=float).reshape(-1, 2)
    lazy = PolygonIndex.from_shapely(geoms)
    eager = PolygonIndex.from_shapely(geoms, lazy=False)
    assert "not read yet" in repr(lazy)
    boxes = np.hstack([xy, xy + 1.5])
    # bounding-box queries never read the coordinates
    np.testing.assert_array_equal(lazy.query(boxes, predicate=None), eager.query(boxes, predicate=None))
    assert lazy._slot_polys is None
    for pred in ("within", "intersects"):
        np.testing.assert_array_equal(lazy.query_points(xy, pred), eager.query_points(xy, pred))
    for name in ("x", "y", "ring_off", "part_off", "geom_off"):
        np.testing.assert_array_equal(getattr(lazy, name), getattr(eager, name))
    ref = shapely.get_coordinates(geoms) if len(geoms) else np.zeros((0, 2))
    np.testing.assert_array_equal(np.column_stack([lazy.x, lazy.y]), ref)
    assert lazy.geom_off.shape == (len(geoms) + 1,)
    again = PolygonIndex.from_arrays(np.column_stack([lazy.x, lazy.y]), lazy.ring_off, lazy.part_off, lazy.geom_off) \
        if len(ref) else None
    if again is not None:
        np.testing.assert_array_equal(again.query(boxes), eager.query(boxes))


def test_lazy_index_pickles_before_and_after_reading():
    import pickle

    geoms = [shapely.box(0, 0, 2, 2).difference(shapely.box(0.5, 0.5, 1, 1)), None, shapely.box(2, 0, 3, 1)]
    xy = [[0.7, 0.7], [2, 0.5], [1.5, 1.5]]
    idx = PolygonIndex.from_shapely(geoms)
    before = pickle.loads(pickle.dumps(idx))
    assert before.query_points(xy, "intersects").tolist() == [[1, 1, 2], [0, 2, 0]]
    idx.query_points(xy)
    after = pickle.loads(pickle.dumps(idx))
    assert after.query_points(xy, "intersects").tolist() == [[1, 1, 2], [0, 2, 0]]


def test_rings_that_return_to_their_first_vertex():
    """Rings are found in the coordinates by their closing vertex; a ring that passes its first vertex
    again (invalid, but shapely builds it) falls back to shapely's ring counts: offsets equal
    shapely.to_ragged_array's and answers equal STRtree's."""
    shell = [(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]
    bowtie_hole = [(2, 2), (4, 2), (4, 4), (2, 2), (1, 4), (1, 3), (2, 2)]
    bowtie_shell = [(0, 0), (5, 0), (5, 5), (0, 0), (-5, 5), (-5, 0), (0, 0)]
    geoms = np.array([shapely.Polygon(shell, [bowtie_hole, [(6, 6), (7, 6), (7, 7), (6, 6)]]),
                      shapely.Polygon(bowtie_shell),
                      shapely.MultiPolygon([shapely.Polygon(shell, [bowtie_hole]), shapely.box(20, 0, 21, 1)]),
                      shapely.box(0, 0, 1, 1).difference(shapely.box(0.2, 0.2, 0.4, 0.4))], dtype=object)
    idx = PolygonIndex.from_shapely(geoms, lazy=False)
    _, coords, (ring_off, part_off, geom_off) = shapely.to_ragged_array(geoms)
    np.testing.assert_array_equal(np.column_stack([idx.x, idx.y]), coords)
    np.testing.assert_array_equal(idx.ring_off, ring_off)
    np.testing.assert_array_equal(idx.part_off, part_off)
    np.testing.assert_array_equal(idx.geom_off, geom_off)
    xy = np.array([[3.5, 2.5], [1.5, 3.2], [6.5, 6.2], [8, 8], [-1, 1], [2, 1], [20.5, 0.5], [0.3, 0.3]])
    for pred in ("within", "intersects"):
        np.testing.assert_array_equal(idx.query_points(xy, pred),
                                      _sorted(shapely.STRtree(geoms).query(shapely.points(xy), predicate=pred)))


def test_lazy_index_reads_only_the_candidates_of_a_few_points():
    """A lazy index answers a small point query from its candidates' coordinates alone (the others stay
    unread, as STRtree prepares only what it tests), with shapely's pairs; once such reads add up to
    every polygon, the next query reads them all."""
    rng = np.random.default_rng(7)
    c = rng.uniform(0, 100, (400, 2))
    geoms = shapely.buffer(shapely.points(c), rng.uniform(0.5, 4, 400), quad_segs=2)
    geoms[::7] = shapely.difference(geoms[::7], shapely.buffer(shapely.points(c[::7]), 0.3))  # holes
    # centres (some in holes), vertices (boundary), random points
    xy = np.vstack([c[:10], shapely.get_coordinates(geoms[:3])[:6], rng.uniform(0, 100, (10, 2))])
    idx = PolygonIndex.from_shapely(geoms)
    tree = shapely.STRtree(geoms)
    for pred in ("within", "intersects"):
        got = idx.query_points(xy, pred)
        assert idx._slot_polys is None
        np.testing.assert_array_equal(got, _sorted(tree.query(shapely.points(xy), predicate=pred)))
    for i in range(400):
        got = idx.query_points(c[i:i + 1], "intersects")
        np.testing.assert_array_equal(got, _sorted(tree.query(shapely.points(c[i:i + 1]), predicate="intersects")))
    assert idx._slot_polys is not None
