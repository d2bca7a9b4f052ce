"""PackedRTree equals shapely.STRtree on boxes (query, points, nearest)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial_index import PackedRTree


def _sorted(pairs):
    return pairs[:, np.lexsort((pairs[1], pairs[0]))]


boxes_st = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 5), st.integers(0, 5)),
                    max_size=60).map(lambda v: np.array([(x, y, x + w, y + h) for x, y, w, h in v], float)
                                     .reshape(-1, 4))


@settings(max_examples=60, deadline=None)
@given(boxes_st, boxes_st, st.sampled_from([2, 4, 16]))
def test_query_equals_strtree(items, queries, node_size):
    tree = PackedRTree(items, node_size=node_size)
    ref = shapely.STRtree(shapely.box(*items.T)).query(shapely.box(*queries.T)) if len(queries) \
        else np.zeros((2, 0), np.intp)
    np.testing.assert_array_equal(tree.query(queries), _sorted(ref))


@settings(max_examples=60, deadline=None)
@given(boxes_st, st.lists(st.tuples(st.integers(0, 26), st.integers(0, 26)), min_size=1, max_size=30))
def test_points_and_nearest_equal_strtree(items, pts):
    xy = np.array(pts, float)
    tree = PackedRTree(items, node_size=3)
    st_ = shapely.STRtree(shapely.box(*items.T))
    np.testing.assert_array_equal(tree.query_points(xy), _sorted(st_.query(shapely.points(xy))))
    pairs, dist = tree.nearest(xy)
    ref, rd = st_.query_nearest(shapely.points(xy), return_distance=True)
    o = np.lexsort((ref[1], ref[0]))
    np.testing.assert_array_equal(pairs, ref[:, o])
    np.testing.assert_allclose(dist, rd[o], rtol=1e-15, atol=0)


def test_knn_and_max_distance_against_brute_force():
    rng = np.random.default_rng(3)
    c = rng.uniform(0, 100, (2000, 2))
    b = np.hstack([c, c + rng.uniform(0, 2, (2000, 2))])
    xy = rng.uniform(0, 100, (300, 2))
    tree = PackedRTree(b, node_size=8)
    pairs, dist = tree.nearest(xy, k=5)
    dx = np.maximum(np.maximum(b[None, :, 0] - xy[:, None, 0], xy[:, None, 0] - b[None, :, 2]), 0)
    dy = np.maximum(np.maximum(b[None, :, 1] - xy[:, None, 1], xy[:, None, 1] - b[None, :, 3]), 0)
    d = np.hypot(dx, dy)
    order = np.lexsort((np.broadcast_to(np.arange(2000), d.shape), d), axis=1)[:, :5]
    np.testing.assert_array_equal(pairs[1].reshape(300, 5), order)
    np.testing.assert_allclose(dist.reshape(300, 5), np.take_along_axis(d, order, 1), rtol=1e-12)
    pairs, dist = tree.nearest(xy, k=3, max_distance=1.0)
    assert (dist <= 1.0).all()
    assert len(dist) == int(np.minimum((d <= 1.0).sum(1), 3).sum())


def test_large_random_and_pickle():
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 1000, (20000, 2))
    b = np.hstack([c, c + rng.uniform(0, 10, (20000, 2))])
    tree = pickle.loads(pickle.dumps(PackedRTree(b)))
    q = rng.uniform(0, 1000, (3000, 2))
    qb = np.hstack([q, q + 15])
    ref = shapely.STRtree(shapely.box(*b.T)).query(shapely.box(*qb.T))
    np.testing.assert_array_equal(tree.query(qb), _sorted(ref))
    assert tree.bounds == pytest.approx((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))


def test_empty_tree_and_empty_queries():
    tree = PackedRTree(np.zeros((0, 4)))
    assert len(tree) == 0 and tree.query([[0, 0, 1, 1]]).shape == (2, 0)
    p, d = tree.nearest([[0.0, 0.0]])
    assert p.shape == (2, 0) and d.shape == (0,)
    tree = PackedRTree([[0, 0, 1, 1]])
    assert tree.query(np.zeros((0, 4))).shape == (2, 0)
    assert tree.query_points(np.zeros((0, 2))).shape == (2, 0)


@pytest.mark.parametrize("boxes, exc, match", [
    (np.array([[0, 0, np.nan, 1]]), ValueError, "NaN"),
    (np.array([[0, 0, 1]]), ValueError, r"shape \(n, 4\)"),
    (np.array([[2, 0, 1, 1]]), ValueError, "xmin > xmax"),
    ([["a", "b", "c", "d"]], TypeError, "numeric"),
])
def test_bad_boxes(boxes, exc, match):
    with pytest.raises(exc, match=match):
        PackedRTree(boxes)


def test_bad_arguments():
    tree = PackedRTree([[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="node_size"):
        PackedRTree([[0, 0, 1, 1]], node_size=1)
    with pytest.raises(TypeError, match="node_size"):
        PackedRTree([[0, 0, 1, 1]], node_size=2.5)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        tree.query_points([[1, 2, 3]])
    with pytest.raises(ValueError, match="NaN"):
        tree.nearest([[np.nan, 0]])
    with pytest.raises(ValueError, match="k must"):
        tree.nearest([[0, 0]], k=0)
    with pytest.raises(ValueError, match="max_distance"):
        tree.nearest([[0, 0]], max_distance=-1)


def test_query_box_beyond_the_int64_range_of_grid_cells():
    """A query box out to 1e308 over a grid of small cells: its cell number overflowed int64 and the query
    found only the items of one cell (the tree found them all)."""
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 100, (400, 2))
    b = np.hstack([c, c + 0.4])
    tree = PackedRTree(b).build_grid()
    assert tree.grid_shape[0] > 1
    for q in ([0, 0, 1e308, 1e308], [-1e308, -1e308, 1e308, 1e308], [-1e308, 0, 50, 1e308]):
        ref = PackedRTree(b).query([q])
        np.testing.assert_array_equal(tree.query([q]), ref)
    assert tree.query([[0, 0, 1e308, 1e308]]).shape == (2, 400)


def test_nearest_k_larger_than_the_items():
    """k > n returns every item (k = 10**12 tried to allocate k slots per query: MemoryError)."""
    b = np.array([[0, 0, 1, 1], [5, 0, 6, 1], [2, 0, 3, 1]], float)
    tree = PackedRTree(b)
    pairs, dist = tree.nearest([[0.5, 0.5], [10, 0.5]], k=10**12)
    assert pairs.tolist() == [[0, 0, 0, 1, 1, 1], [0, 2, 1, 1, 2, 0]]
    np.testing.assert_allclose(dist, [0, 1.5, 4.5, 4, 7, 9])
    p, d = PackedRTree(np.zeros((0, 4))).nearest([[0, 0]], k=10**12)
    assert p.shape == (2, 0) and d.shape == (0,)


def test_empty_lists_and_bad_max_distance():
    """[] is no boxes / no points (it was refused as shape (0,)); a max_distance that is not a number is a
    TypeError naming it."""
    assert len(PackedRTree([])) == 0
    tree = PackedRTree([[0, 0, 1, 1]])
    assert tree.query([]).shape == (2, 0)
    assert tree.query_points([]).shape == (2, 0)
    p, d = tree.nearest([])
    assert p.shape == (2, 0) and d.shape == (0,)
    with pytest.raises(TypeError, match="max_distance"):
        tree.nearest([[0, 0]], max_distance="far")
