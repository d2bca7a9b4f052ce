"""Viewshed over a DEM plus buildings, checked against hand geometry."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

gpd = pytest.importorskip("geopandas")

from cim.raster import Raster  # noqa: E402
from twin_core.adapters import analysis as A  # noqa: E402
from twin_core.errors import ParameterError, RasterError  # noqa: E402

X0, Y0 = 404000.0, 3393000.0


def _dem(data):
    return Raster(np.asarray(data, "float32"), Affine(1, 0, X0, 0, -1, Y0 + data.shape[0]), "EPSG:4544")


def test_building_hides_exactly_the_cells_behind_it():
    dem = _dem(np.zeros((80, 100)))
    foot = shapely.box(X0 + 60, Y0 + 30, X0 + 62, Y0 + 50)
    b = gpd.GeoDataFrame({"height_m": [10.0]}, geometry=[foot], crs="EPSG:4544")
    obs = (X0 + 20.2, Y0 + 40.3)
    vs = A.viewshed(dem, obs, b, observer_height=1.6)
    rr, cc = np.mgrid[0:80, 0:100]
    x, y = dem.xy(rr.ravel(), cc.ravel())
    segs = shapely.linestrings(np.stack([np.broadcast_to(obs, (x.size, 2)), np.column_stack([x, y])], axis=1))
    # by hand: the eye (1.6 m) and ground targets are below the 10 m roof, so a cell is hidden exactly when
    # the line of sight crosses the footprint; cells within 1 cm of the wedge edge are left out (ambiguous)
    hidden = shapely.intersects(segs, foot)
    clear = shapely.distance(segs, foot.boundary) > 0.01
    got = vs.data.ravel()
    assert hidden.sum() > 300
    np.testing.assert_array_equal(got[clear] == 0, hidden[clear])


def test_ridge_in_the_dem():
    dem = np.zeros((5, 100))
    dem[:, 30] = 5.0  # a 5 m wall across the strip, cells x in [30, 31)
    r = _dem(dem)
    low = A.viewshed(r, (X0 + 10.5, Y0 + 2.5), observer_height=1.6).data[2]
    assert low[:30].all() and not low[31:].any()
    high = A.viewshed(r, (X0 + 10.5, Y0 + 2.5), observer_height=100.0).data[2]
    # by hand: target at x hidden while the sight line at the ridge's far edge (x = 31) is below 5 m:
    # 100 * (x - 31) / (x - 10.5) < 5  <=>  x < 32.08; keep one cell away from the threshold
    xs = np.arange(100) + 0.5
    assert high[xs < 31.5].all()  # up to and including the ridge cell
    assert not high[(xs > 31) & (xs < 31.9)].any()
    assert high[xs > 33].all()


def test_radius_and_bad_input():
    r = _dem(np.zeros((20, 20)))
    vs = A.viewshed(r, (X0 + 10, Y0 + 10), radius=5)
    assert np.isnan(vs.data).sum() > 0 and np.nanmin(vs.data) == 1.0
    with pytest.raises(ParameterError, match="outside the DEM"):
        A.viewshed(r, (X0 - 100, Y0))
    with pytest.raises(RasterError, match="Raster"):
        A.viewshed(np.zeros((3, 3)), (0, 0))


@pytest.mark.parametrize("kwargs, msg", [
    ({"radius": float("inf")}, "radius"), ({"radius": float("nan")}, "radius"), ({"radius": -5.0}, "radius"),
    ({"observer_height": float("nan")}, "observer_height"), ({"target_height": float("nan")}, "target_height"),
    ({"observer": (float("nan"), Y0 + 10)}, "observer"),
])
def test_non_finite_parameters_are_parameter_errors(kwargs, msg):
    # radius inf/nan raised a raw ValueError in run_viewshed, NaN target heights returned an all-NaN raster
    kwargs = {"observer": (X0 + 10, Y0 + 10), **kwargs}
    with pytest.raises(ParameterError, match=msg):
        A.viewshed(_dem(np.zeros((20, 20))), **kwargs)


def test_twin_viewshed_radius_checked_before_the_window(tmp_path):
    from twin_core import Twin

    with Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544") as twin:
        twin.store.write_raster("dem", _dem(np.zeros((20, 20))))
        for radius in (float("inf"), float("nan"), 0.0):
            with pytest.raises(ParameterError, match="radius must be a finite distance"):
                A.run_viewshed(twin, (X0 + 10, Y0 + 10), radius=radius, save=False)


@pytest.mark.parametrize("which", ["viewshed", "sunlight"])
def test_bad_run_id_fails_before_the_analysis_runs(tmp_path, monkeypatch, which):
    # run_sunlight / run_viewshed computed the whole grid and only then failed in save_result
    from twin_core import Twin
    from twin_core.errors import SchemaError

    def never(*a, **k):
        raise AssertionError("the analysis ran with a run id that cannot be saved")

    monkeypatch.setattr(A, "viewshed", never)
    monkeypatch.setattr(A, "sunlight_grid", never)
    with Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544") as twin:
        twin.store.write_raster("dem", _dem(np.zeros((20, 20))))
        with pytest.raises(SchemaError, match="run id"):
            if which == "viewshed":
                A.run_viewshed(twin, (X0 + 10, Y0 + 10), run="bad id/1")
            else:
                A.run_sunlight(twin, bounds=(X0, Y0, X0 + 20, Y0 + 20), run="bad id/1")
