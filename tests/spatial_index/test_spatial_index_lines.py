"""LineIndex against shapely: each point's nearest line, the lines within a distance of it (distance and
normalized position along each, as ``shapely.distance`` / ``line_locate_point``), edge cases and bad input."""

from __future__ import annotations


import numpy as np
import pytest
import shapely

from spatial_index import LineIndex


def _random_lines(rng, n, span=1000.0, rounded=True):
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 7))
        pts = rng.uniform(0, span, 2) + np.cumsum(rng.normal(0, 25, (k, 2)), axis=0)
        out.append(shapely.LineString(np.round(pts) if rounded else pts))  # rounded: ties, repeated vertices
    return np.array(out, dtype=object)


def _shapely_within(lines, xy, radius):
    """(pairs sorted by point then line, distances, fractions), by shapely STRtree dwithin + line_locate_point."""
    pts = shapely.points(xy)
    p, k = shapely.STRtree(lines).query(pts, predicate="dwithin", distance=radius)
    o = np.lexsort((k, p))
    p, k = p[o], k[o]
    return (np.vstack([p, k]), shapely.distance(lines[k], pts[p]),
            shapely.line_locate_point(lines[k], pts[p], normalized=True))


def _shapely_nearest(lines, xy):
    pts = shapely.points(xy)
    (p, k), d = shapely.STRtree(lines).query_nearest(pts, return_distance=True, all_matches=True)
    dist = np.full(len(xy), np.inf)
    dist[p] = d
    first = np.full(len(xy), -1)
    for i, j in zip(p[::-1], k[::-1]):  # the lowest index of the equally near
        first[i] = j if first[i] < 0 else min(first[i], j)
    return dist, first


def _check_within(lines, xy, radius):
    pairs, d, f = LineIndex.from_shapely(lines).query_within(xy, radius)
    sp, sd, sf = _shapely_within(lines, xy, radius)
    assert np.array_equal(pairs, sp)
    np.testing.assert_allclose(d, sd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(f, sf, rtol=0, atol=1e-12)
    return pairs, d, f


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rounded", [True, False])
def test_random_against_shapely(seed, rounded):
    rng = np.random.default_rng(seed)
    lines = _random_lines(rng, 800, rounded=rounded)
    xy = rng.uniform(-150, 1150, (3000, 2))
    if rounded:
        xy = np.round(xy)
    idx = LineIndex.from_shapely(lines)
    d, i = idx.nearest_distance(xy, return_index=True)
    sd, si = _shapely_nearest(lines, xy)
    np.testing.assert_array_equal(d, sd)
    np.testing.assert_array_equal(i, si)
    radius = d + rng.uniform(0, 40, len(xy))  # per point, as the access analysis asks
    _check_within(lines, xy, radius)
    _check_within(lines, xy, 25.0)  # one for all


def test_many_lines_per_point_reruns_chunks():
    """More lines within the distance than the first run keeps room for: the same pairs."""
    rng = np.random.default_rng(5)
    lines = _random_lines(rng, 300, span=100.0, rounded=False)
    xy = rng.uniform(0, 100, (2000, 2))
    pairs, _, _ = _check_within(lines, xy, 80.0)
    assert pairs.shape[1] > 2000 * 50
    # some chunks of points run again, the others not
    _check_within(lines, xy, np.where(np.arange(2000) % 400 < 100, 80.0, 1.0))


def test_edge_cases():
    a = shapely.LineString([(0, 0), (10, 0), (10, 10)])  # multi-vertex
    b = shapely.LineString([(20, 0), (20, 0), (30, 0)])  # a zero-length segment first
    c = shapely.LineString([(5, 5), (5, 5)])  # zero length
    d = shapely.LineString([(0, 0), (10, 0)])  # a copy of a's first segment: ties with a
    e = shapely.LineString([(10, 10), (10, 0), (0, 0)])  # a reversed: ties, measured from its own start
    lines = np.array([a, b, c, d, e, None, shapely.LineString()], dtype=object)
    xy = np.array([[5, 0],  # on a segment
                   [10, 0],  # on a vertex
                   [20, 0],  # on the zero-length segment
                   [5, 5],  # on the zero-length line; tie between a and e
                   [25, 3], [-3, -4], [10, 20], [15, 0]], float)
    for radius in (0.0, 1e-9, 5.0, 7.5, 100.0):
        pairs, dist, frac = _check_within(lines, xy, radius)
        assert not np.isin(pairs[1], [5, 6]).any()  # missing and empty lines match nothing
    pairs, dist, frac = LineIndex.from_shapely(lines).query_within(xy, 0.0)
    got = {(int(p), int(k)): (float(dd), float(ff)) for p, k, dd, ff in zip(*pairs, dist, frac)}
    assert got[(0, 0)] == (0.0, 0.25) and got[(0, 3)] == (0.0, 0.5) and got[(0, 4)] == (0.0, 0.75)
    assert got[(1, 0)] == (0.0, 0.5) and got[(1, 3)] == (0.0, 1.0) and got[(1, 4)] == (0.0, 0.5)
    assert got[(2, 1)] == (0.0, 0.0) and got[(3, 2)] == (0.0, 0.0)  # a zero-length line: 0, as GEOS
    assert (3, 0) not in got
    d, i = LineIndex.from_shapely(lines).nearest_distance(xy, return_index=True)
    sd, si = _shapely_nearest(lines, xy)
    np.testing.assert_array_equal(d, sd)
    np.testing.assert_array_equal(i, si)
    assert i[0] == 0 and i[3] == 2  # ties: the lowest index


def test_empty_inputs():
    idx = LineIndex.from_shapely([shapely.LineString([(0, 0), (1, 0)])])
    pairs, d, f = idx.query_within(np.zeros((0, 2)), 1.0)
    assert pairs.shape == (2, 0) and d.shape == f.shape == (0,) and pairs.dtype == np.intp
    assert idx.nearest_distance([]).shape == (0,)
    none = LineIndex.from_shapely([])
    assert len(none) == 0
    pairs, d, f = none.query_within([[0, 0], [1, 1]], 5.0)
    assert pairs.shape == (2, 0)
    dist, i = none.nearest_distance([[0, 0]], return_index=True)
    assert dist.tolist() == [np.inf] and i.tolist() == [-1]
    empties = LineIndex.from_shapely([None, shapely.LineString()])
    assert empties.query_within([[0, 0]], np.inf)[0].shape == (2, 0)


def test_infinite_distance_is_every_line():
    rng = np.random.default_rng(3)
    lines = _random_lines(rng, 50)
    pairs, _, _ = LineIndex.from_shapely(lines).query_within([[0, 0], [500, 500]], np.inf)
    assert pairs.tolist() == [[0] * 50 + [1] * 50, list(range(50)) * 2]


def test_far_outside_points():
    lines = _random_lines(np.random.default_rng(4), 200)
    xy = np.array([[-1e6, 3.0], [5e5, 7e5], [500, -2e4], [1e7, 1e7]])
    d, i = LineIndex.from_shapely(lines).nearest_distance(xy, return_index=True)
    sd, si = _shapely_nearest(lines, xy)
    np.testing.assert_array_equal(d, sd)
    np.testing.assert_array_equal(i, si)


def test_from_arrays_and_pickle():
    import pickle

    idx = LineIndex([0, 10, 10, 20, 30], [0, 0, 10, 0, 0], [0, 3, 5])
    assert len(idx) == 2
    again = pickle.loads(pickle.dumps(idx))
    pairs, d, f = again.query_within([[10, 5], [25, 1]], [0.0, 1.0])
    assert pairs.tolist() == [[0, 1], [0, 1]] and d.tolist() == [0.0, 1.0] and f.tolist() == [0.75, 0.5]


@pytest.mark.parametrize("make, err, match", [
    (lambda: LineIndex.from_shapely([shapely.Point(0, 0)]), TypeError, "geometry 0 is a Point"),
    (lambda: LineIndex.from_shapely([shapely.LineString([(0, 0), (1, 1)]),
                                     shapely.MultiLineString([[(0, 0), (1, 1)]])]), TypeError,
     "geometry 1 is a MultiLineString.*get_parts"),
    (lambda: LineIndex.from_shapely([shapely.box(0, 0, 1, 1)]), TypeError, "boundary"),
    (lambda: LineIndex.from_shapely(["LINESTRING (0 0, 1 1)"]), TypeError, "shapely geometries"),
    (lambda: LineIndex.from_shapely([shapely.LineString([(0, 0), (1, 1)]),
                                     shapely.LineString([(0, 0), (np.nan, 1)])]), ValueError, "line 1 has a NaN"),
    (lambda: LineIndex([0, 1], [0, 1, 2], [0, 2]), ValueError, "same length"),
    (lambda: LineIndex([0, 1], [0, 1], [0, 3]), ValueError, "from 0 to 2"),
    (lambda: LineIndex([0, 1, 2], [0, 1, 2], [0, 1, 3]), ValueError, "line 0 has a single coordinate"),
])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # shapely, making the NaN line
def test_bad_build(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_bad_queries():
    idx = LineIndex.from_shapely([shapely.LineString([(0, 0), (1, 1)])])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        idx.query_within([[0, 0, 0]], 1.0)
    with pytest.raises(ValueError, match="row 1 has a NaN"):
        idx.nearest_distance([[0, 0], [np.nan, 0]])
    with pytest.raises(ValueError, match="point 1 has -1.0"):
        idx.query_within([[0, 0], [1, 1]], [1.0, -1.0])
    with pytest.raises(ValueError, match=">= 0"):
        idx.query_within([[0, 0]], np.nan)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        idx.query_within([[0, 0], [1, 1]], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="distance must be a number"):
        idx.query_within([[0, 0]], "far")


def test_runs_without_jit(python_run):
    code = ("import numpy as np, shapely\n"
            "from spatial_index import LineIndex\n"
            "idx = LineIndex.from_shapely([shapely.LineString([(0, 0), (10, 0), (10, 10)])])\n"
            "p, d, f = idx.query_within([[5, 1], [12, 5]], 3.0)\n"
            "assert p.tolist() == [[0, 1], [0, 0]] and d.tolist() == [1.0, 2.0] and f.tolist() == [0.25, 0.75]\n"
            "assert idx.nearest_distance([[5, 1]]).tolist() == [1.0]\n"
            "print('ok')\n")
    r = python_run(code, jit=False, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
