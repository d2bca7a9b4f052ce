"""What a notebook shows of a Raster: one line for repr(), a small table for Jupyter, never the array."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from cim.raster import Raster

T = Affine(5, 0, 409_500, 0, -5, 3_391_200)


def dem(**kw):
    data = np.array([[500.0, 501.5, -9999.0], [np.nan, 502.25, 499.0]], dtype="float32")
    return Raster(data, T, "EPSG:4544", nodata=-9999.0, unit="m", **kw)


def test_repr_is_one_line_and_not_the_array():
    r = Raster(np.zeros((710, 762), "float32"), T, "EPSG:4544", unit="m")
    text = repr(r)
    assert "\n" not in text and "710x762" in text and len(text) < 200


def test_html_shows_shape_cell_crs_bounds_nodata_and_the_valid_range():
    out = dem()._repr_html_()
    for word in ("<table", "2 rows x 3 cols", "float32", "5 m", "EPSG:4544", "409500.000", "3391190.000",
                 "409515.000", "3391200.000", "-9999", "499 to 502.25 m", "4 of 6 cells valid"):
        assert word in out, word


def test_value_range_leaves_out_nodata_and_nan_without_copying_the_data(monkeypatch):
    r = dem()
    monkeypatch.setattr(Raster, "masked", lambda self: pytest.fail("masked() copies the whole grid as float64"))
    assert r.value_range() == (499.0, 502.25, 4, False)
    assert "499 to 502.25" in r._repr_html_()


def test_all_nodata_and_integer_rasters():
    r = Raster(np.full((3, 3), -9999.0, "float32"), T, "EPSG:4544", nodata=-9999.0)
    assert r.value_range() is None and "no valid cells" in r._repr_html_()
    cls = Raster(np.array([[0, 3], [7, 255]], "uint8"), T, "EPSG:4544", nodata=255)
    assert cls.value_range() == (0.0, 7.0, 3, False)
    assert "nodata</th><td style='text-align:left'>255" in cls._repr_html_()
    assert "(none)" in Raster(np.zeros((2, 2)), T, "EPSG:4544")._repr_html_()  # no nodata, no unit
    nan_nodata = Raster(np.array([[np.nan, 1.0]]), T, "EPSG:4544", nodata=np.float32("nan"))
    assert nan_nodata.value_range() == (1.0, 1.0, 1, False)


def test_a_huge_raster_gets_its_range_from_a_sample(monkeypatch):
    data = np.arange(400 * 500, dtype="float32").reshape(400, 500)
    r = Raster(data, T, "EPSG:4544", unit="m")
    monkeypatch.setattr(Raster, "RANGE_FULL_CELLS", 10_000)
    lo, hi, n, sampled = r.value_range()
    assert sampled and n <= 10_000 * 1.1 and lo == 0.0 and hi <= data.max()
    assert "sample" in r._repr_html_()


def test_html_is_escaped():
    r = Raster(np.zeros((2, 2)), T, "<b>EPSG:4544</b>", unit="<i>m</i>")
    out = r._repr_html_()
    assert "<b>EPSG" not in out and "&lt;b&gt;EPSG" in out and "<i>m" not in out
