"""The grid accelerator and the query ordering change nothing; kernels also run without the JIT; doctests."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import numpy as np
import pytest
import shapely

from spatial_index import PackedRTree, PolygonIndex


def _sorted(p):
    return p[:, np.lexsort((p[1], p[0]))]


def test_grid_and_tree_give_the_same_pairs():
    rng = np.random.default_rng(7)
    c = rng.uniform(0, 2000, (3000, 2))
    polys = shapely.buffer(shapely.points(c), rng.uniform(1, 30, 3000), quad_segs=2)
    polys[::50] = shapely.buffer(shapely.points(c[::50]), 400, quad_segs=2)  # a few big ones span many cells
    with_grid = PolygonIndex.from_shapely(polys)
    assert with_grid.tree.grid_shape == (0, 0)  # built lazily, at the first batch worth it
    few = rng.uniform(0, 2000, (100, 2))
    ref_few = with_grid.query_points(few, "intersects")  # 100 points < 3000 / 4: through the tree
    assert with_grid.tree.grid_shape == (0, 0)
    no_grid = PolygonIndex(with_grid.x, with_grid.y, with_grid.ring_off, with_grid.part_off, with_grid.geom_off,
                           grid=False)
    xy = np.vstack([rng.uniform(-100, 2100, (5000, 2)), shapely.get_coordinates(polys)[:2000]])  # > 2048: ordered
    ref = shapely.STRtree(polys)
    for pred in ("within", "intersects"):
        a = with_grid.query_points(xy, pred)
        assert with_grid.tree.grid_shape[0] > 1
        np.testing.assert_array_equal(a, no_grid.query_points(xy, pred))
        np.testing.assert_array_equal(a, _sorted(ref.query(shapely.points(xy), predicate=pred)))
    q = rng.uniform(-100, 2100, (3000, 2))
    boxes = np.hstack([q, q + rng.uniform(0, 300, (3000, 2))])
    a = with_grid.query(boxes)
    np.testing.assert_array_equal(a, no_grid.query(boxes))
    np.testing.assert_array_equal(a, _sorted(ref.query(shapely.box(*boxes.T), predicate="intersects")))
    np.testing.assert_array_equal(with_grid.query(boxes, predicate=None), _sorted(ref.query(shapely.box(*boxes.T))))
    np.testing.assert_array_equal(with_grid.query_points(few, "intersects"), ref_few)  # same pairs with the grid
    np.testing.assert_array_equal(ref_few, _sorted(ref.query(shapely.points(few), predicate="intersects")))
    tree = PackedRTree(shapely.bounds(polys)).build_grid()
    np.testing.assert_array_equal(tree.query(boxes), _sorted(ref.query(shapely.box(*boxes.T))))
    np.testing.assert_array_equal(tree.query_points(xy), _sorted(ref.query(shapely.points(xy))))


def test_kernels_run_without_jit(python_run):
    code = (
        "import numpy as np, shapely\n"
        "from spatial_index import PolygonIndex, TriangleBVH, rasterize\n"
        "g = [shapely.box(0, 0, 2, 2).difference(shapely.box(0.5, 0.5, 1, 1)), shapely.box(2, 0, 3, 1)]\n"
        "idx = PolygonIndex.from_shapely(g)\n"
        "assert idx.query_points([[0.7, 0.7], [2, 0.5], [1.5, 1.5]], 'intersects').tolist() == [[1, 1, 2], [0, 1, 0]]\n"
        "assert idx.nearest([[5, 0.5]])[1].tolist() == [2.0]\n"
        "b = TriangleBVH(np.eye(3), np.array([[0, 1, 2]]))\n"
        "assert b.intersect([[0, 0, 0]], [[1, 1, 1]])[1].tolist() == [0]\n"
        "assert rasterize(g, (3, 3), (1, 0, 0, 0, -1, 3)).sum() == 4\n"
        "print('ok')\n"
    )
    r = python_run(code, jit=False, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize("name", ["spatial_index.rtree", "spatial_index.polygons", "spatial_index.lines", "spatial_index.bvh",
                                  "spatial_index.grid"])
def test_docstring_examples_run(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0


def test_spatial_index_imports_only_numpy_and_numba():
    code = ("import sys, spatial_index\n"
            "bad = [m for m in ('shapely', 'twin_core', 'cim', 'geopandas', 'pandas') if m in sys.modules]\n"
            "print(','.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "", (r.stdout, r.stderr)
