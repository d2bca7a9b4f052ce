"""Grid helpers agree with rasterio.features.rasterize (both rules) and with point sampling."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from spatial_index import cells_in_polygon, rasterize, sample


@pytest.fixture(scope="module")
def polys():
    rng = np.random.default_rng(5)
    c = rng.uniform(10, 190, (40, 2))
    g = shapely.buffer(shapely.points(c), rng.uniform(2, 15, 40), quad_segs=3)
    g[::4] = shapely.difference(g[::4], shapely.buffer(shapely.points(c[::4]), 1.7))
    return g


@pytest.mark.parametrize("all_touched", [False, True])
def test_rasterize_equals_rasterio(polys, all_touched):
    from rasterio.features import rasterize as rio_rasterize

    tr = Affine(1.37, 0, 0.123, 0, -1.37, 200.456)
    shape = (150, 150)
    vals = np.arange(1, len(polys) + 1, dtype=float)
    ours = rasterize(polys, shape, tr, vals, all_touched=all_touched)
    ref = rio_rasterize(zip(polys, vals), out_shape=shape, transform=tr, all_touched=all_touched, dtype="float64")
    assert (ref > 0).sum() > 1000
    mismatch = (ours != ref).sum()
    # random float coordinates: no cell centre or grid line lies exactly on an edge, so they agree
    assert mismatch == 0, f"{mismatch} cells differ"


def test_cells_in_polygon_and_sample():
    tr = (0.5, 0, 10.0, 0, -0.5, 20.0)
    tri = shapely.Polygon([(10.2, 10.3), (14.9, 10.1), (10.4, 19.7)])
    r, c = cells_in_polygon(tri, (20, 12), tr)
    xc, yc = 10.0 + (c + 0.5) * 0.5, 20.0 - (r + 0.5) * 0.5
    assert shapely.contains_xy(tri, xc, yc).all()
    rr, cc = np.mgrid[0:20, 0:12]
    inside = shapely.contains_xy(tri, 10.0 + (cc + 0.5) * 0.5, 20.0 - (rr + 0.5) * 0.5)
    assert inside.sum() == len(r)
    data = np.arange(240.0).reshape(20, 12)
    data[0, 0] = -9999
    v = sample(data, tr, [[10.1, 19.9], [15.9, 10.1], [10.75, 19.25], [9.9, 15], [12, 20.1]], nodata=-9999)
    np.testing.assert_array_equal(v[1:3], [239.0, 13.0])
    assert np.isnan(v[0]) and np.isnan(v[3]) and np.isnan(v[4])


def test_bad_grid_input():
    with pytest.raises(ValueError, match="north-up"):
        rasterize([shapely.box(0, 0, 1, 1)], (2, 2), (1, 0, 0, 0, 1, 0))
    with pytest.raises(TypeError, match="transform"):
        rasterize([shapely.box(0, 0, 1, 1)], (2, 2), "nope")
    with pytest.raises(TypeError, match="shape"):
        rasterize([shapely.box(0, 0, 1, 1)], 5, (1, 0, 0, 0, -1, 0))
    with pytest.raises(TypeError, match="polygons"):
        rasterize([shapely.Point(0, 0)], (2, 2), (1, 0, 0, 0, -1, 0))
    with pytest.raises(ValueError, match="2-D"):
        sample(np.zeros(3), (1, 0, 0, 0, -1, 0), [[0, 0]])
    with pytest.raises(ValueError, match="NaN"):
        sample(np.zeros((2, 2)), (1, 0, 0, 0, -1, 0), [[np.nan, 0]])
