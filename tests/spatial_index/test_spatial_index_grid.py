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


def test_sample_nodata_in_the_data_type_and_masked_arrays():
    """nodata -3.4e38 (as gdalinfo prints it) on float32 data is float32(-3.4e38), as GDAL compares it (it
    was compared as float64 and never matched); a masked array's masked cells are nodata (the mask was
    dropped and the raw values returned)."""
    tr = (1, 0, 0, 0, -1, 1)
    data = np.array([[-3.4e38, 7.0]], np.float32)
    v = sample(data, tr, [[0.5, 0.5], [1.5, 0.5]], nodata=-3.4e38)
    assert np.isnan(v[0]) and v[1] == 7.0
    m = np.ma.masked_array([[1.0, 2.0]], mask=[[True, False]])
    v = sample(m, tr, [[0.5, 0.5], [1.5, 0.5]])
    assert np.isnan(v[0]) and v[1] == 2.0
    assert sample(np.array([[-9999, 3]], np.int16), tr, [[0.5, 0.5], [1.5, 0.5]], nodata=-9999)[1] == 3.0
    with pytest.raises(TypeError, match="nodata"):
        sample(data, tr, [[0.5, 0.5]], nodata="none")


def test_line_of_sight_step_checked():
    """An infinite step took no sample (always visible); a step far below the cell size would loop for
    hours: both are refused, naming the step. [] is no targets."""
    from spatial_index import line_of_sight

    dem = np.zeros((1, 10))
    dem[0, 5] = 10.0
    tr = (1, 0, 0, 0, -1, 1)
    with pytest.raises(ValueError, match="step"):
        line_of_sight(dem, tr, [0.5, 0.5, 2], [[9.5, 0.5, 0]], step=np.inf)
    with pytest.raises(ValueError, match="step 1e-300 would sample"):
        line_of_sight(dem, tr, [0.5, 0.5, 2], [[9.5, 0.5, 0]], step=1e-300)
    with pytest.raises(TypeError, match="step"):
        line_of_sight(dem, tr, [0.5, 0.5, 2], [[9.5, 0.5, 0]], step="1 m")
    assert line_of_sight(dem, tr, [0.5, 0.5, 2], [[9.5, 0.5, 0]], step=0.25).tolist() == [False]
    assert line_of_sight(dem, tr, [0.5, 0.5, 2], []).shape == (0,)


def test_rasterize_values_checked():
    g = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]
    with pytest.raises(ValueError, match=r"values must be a scalar or have shape \(2,\)"):
        rasterize(g, (2, 2), (1, 0, 0, 0, -1, 2), values=[1, 2, 3])
    with pytest.raises(TypeError, match="values must be numbers"):
        rasterize(g, (2, 2), (1, 0, 0, 0, -1, 2), values="high")
    assert rasterize(g, (2, 2), (1, 0, 0, 0, -1, 2), values=[4]).tolist() == [[0, 0], [4, 4]]
