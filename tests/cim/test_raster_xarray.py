"""Raster.to_xarray() and RasterStack: a raster (or a stack of them over time) as a labelled xarray DataArray."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from affine import Affine

from cim.raster import Raster, RasterStack
from twin_core.errors import RasterError

T = Affine(5.0, 0.0, 1000.0, 0.0, -5.0, 2000.0)


def _raster(**kw):
    data = np.array([[1.0, -9999.0, 3.0], [4.0, 5.0, np.nan]], dtype="float32")
    return Raster(data, T, "EPSG:4544", nodata=-9999.0, unit="m", **kw)


def test_coords_are_cell_centres():
    x, y = _raster().coords()
    np.testing.assert_allclose(x, [1002.5, 1007.5, 1012.5])
    np.testing.assert_allclose(y, [1997.5, 1992.5])  # north to south, as the rows


def test_to_xarray_coords_nodata_and_attrs():
    xr = pytest.importorskip("xarray")
    r = _raster(meta={"engine": "simulation.flood", "nested": {"not": "kept"}})
    da = r.to_xarray("max_depth")
    assert isinstance(da, xr.DataArray)
    assert da.dims == ("y", "x") and da.shape == (2, 3) and da.name == "max_depth"
    np.testing.assert_allclose(da["x"], [1002.5, 1007.5, 1012.5])
    np.testing.assert_allclose(da["y"], [1997.5, 1992.5])
    assert da.dtype == np.float32  # float32 stays float32 (a city's grids are large)
    assert np.isnan(da.sel(x=1007.5, y=1997.5).item())  # nodata -> NaN
    assert np.isnan(da.sel(x=1012.5, y=1992.5).item())  # NaN stays NaN
    assert da.sel(x=1012.5, y=1997.5).item() == 3.0
    assert da.attrs["crs"] == "EPSG:4544"
    assert da.attrs["units"] == da.attrs["unit"] == "m"
    assert da.attrs["transform"] == [5.0, 0.0, 1000.0, 0.0, -5.0, 2000.0]
    assert da.attrs["nodata"] == -9999.0
    assert da.attrs["engine"] == "simulation.flood" and "nested" not in da.attrs
    assert r.data[0, 1] == -9999.0  # the raster itself is untouched
    # every attr is one netCDF can hold (no None)
    assert all(v is not None for v in da.attrs.values())


def test_to_xarray_integer_data_becomes_float_and_no_unit_no_attr():
    pytest.importorskip("xarray")
    r = Raster(np.array([[1, 0], [2, 3]], dtype="int16"), T, "EPSG:4544", nodata=0)
    da = r.to_xarray()
    assert da.dtype.kind == "f" and np.isnan(da.values[0, 1]) and da.values[1, 1] == 3
    assert "units" not in da.attrs and "unit" not in da.attrs
    assert da.name is None


def test_to_xarray_without_xarray_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray -> ImportError
    with pytest.raises(ImportError, match="pip install xarray"):
        _raster().to_xarray()
    stack = RasterStack(np.zeros((1, 2, 3)), T, "EPSG:4544", times_s=[0.0])
    with pytest.raises(ImportError, match="pip install xarray"):
        stack.to_xarray()


def test_raster_stack_to_xarray_has_time():
    pytest.importorskip("xarray")
    data = np.arange(12, dtype="float32").reshape(2, 2, 3)
    stack = RasterStack(data, T, "EPSG:4544", times_s=[0.0, 600.0], unit="m", name="depth_snapshots")
    da = stack.to_xarray()
    assert da.dims == ("time", "y", "x") and da.name == "depth_snapshots"
    np.testing.assert_allclose(da["time"], [0.0, 600.0])
    assert da["time"].attrs["units"] == "s"
    np.testing.assert_allclose(da["y"], [1997.5, 1992.5])
    assert da.sel(time=600.0, x=1002.5, y=1992.5).item() == 9.0
    assert da.attrs["crs"] == "EPSG:4544" and da.attrs["units"] == "m"


def test_raster_stack_checks_and_picks():
    stack = RasterStack(np.zeros((3, 2, 2)), T, "EPSG:4544", times_s=[0, 300, 600])
    assert stack.nearest(440) == (1, 300.0)
    assert stack.nearest(451) == (2, 600.0)
    assert stack[2].meta["time_s"] == 600.0 and stack[2].transform == T
    with pytest.raises(RasterError, match="one time per raster"):
        RasterStack(np.zeros((3, 2, 2)), T, "EPSG:4544", times_s=[0, 300])
    with pytest.raises(RasterError, match=r"\(times, rows, cols\)"):
        RasterStack(np.zeros((2, 2)), T, "EPSG:4544", times_s=[0, 300])
    with pytest.raises(RasterError, match="north-up"):
        RasterStack(np.zeros((1, 2, 2)), Affine(5, 0, 0, 0, 5, 0), "EPSG:4544", times_s=[0])
