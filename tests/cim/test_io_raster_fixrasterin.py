"""GeoTIFF import defects a data-engineer review found: the band's scale/offset and unit were ignored, only
band 1 of a multi-band file was read without a word, ``resolution`` was ignored for a grid already in the
twin CRS, no progress was reported, a warp copied the grid first, and a Manning grid of 40 went in unchecked."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine

from cim.io.raster import import_raster, read_geotiff, reproject_raster
from cim.raster import Raster
from twin_core.errors import RasterError, TwinWarning

GRID = Affine(5.0, 0.0, 409000.0, 0.0, -5.0, 3391500.0)  # near Tianfu Square, in EPSG:4544


def _tif(path, bands, *, dtype="float32", nodata=None, scale=None, offset=None, units=None, crs="EPSG:4544",
         transform=GRID):
    """A GeoTIFF of ``bands`` (a 2-D array, or a list of them), with band scale/offset/unit when given."""
    bands = [bands] if np.ndim(bands) == 2 else list(bands)
    rows, cols = np.shape(bands[0])
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=len(bands), dtype=dtype, crs=crs,
                       transform=transform, nodata=nodata) as ds:
        for i, b in enumerate(bands, 1):
            ds.write(np.asarray(b, dtype=dtype), i)
        if scale is not None:
            ds.scales = (scale,) * len(bands)
        if offset is not None:
            ds.offsets = (offset,) * len(bands)
        if units is not None:
            ds.units = (units,) * len(bands)
    return path


# -- 1: scale and offset ---------------------------------------------------------------------------------------
def test_int32_dem_in_centimetres_with_scale_reads_as_metres(store, tmp_path):
    """An int32 DEM stored in cm with scale 0.01 (50123 meaning 501.23 m) was imported as 50123 m."""
    stored = np.array([[50123, 50200], [-9999, 49999]], dtype="int32")
    src = _tif(tmp_path / "dem_cm.tif", stored, dtype="int32", nodata=-9999, scale=0.01, units="m")
    r = read_geotiff(src)
    assert r.data.dtype == np.float64  # int32 holds more digits than float32 keeps
    # nodata matched on the stored value before scaling: NaN, not -99.99 m
    assert r.data[0, 0] == pytest.approx(501.23, abs=1e-9) and np.isnan(r.data[1, 0]) and np.isnan(r.nodata)
    imported = import_raster(store, src, "dem")
    back = store.read_raster("dem").data
    # stored as float32: its spacing at 500 is 6.1e-5 m
    assert back[0, 0] == pytest.approx(501.23, abs=6.1e-5) and back[1, 1] == pytest.approx(499.99, abs=6.1e-5)
    assert np.isnan(back[1, 0]) and imported.unit == "m"


def test_offset_and_scale_of_a_16_bit_band_read_as_float32_like_gdal_unscale(tmp_path):
    stored = np.array([[0, 1000], [2000, 65535]], dtype="uint16")
    src = _tif(tmp_path / "u16.tif", stored, dtype="uint16", nodata=65535, scale=0.1, offset=-100.0)
    r = read_geotiff(src)
    assert r.data.dtype == np.float32  # every uint16 value fits float32 exactly
    np.testing.assert_allclose(r.data[:, :][~np.isnan(r.data)], [-100.0, 0.0, 100.0], atol=1e-5)
    assert np.isnan(r.data[1, 1])
    # a band without scale or offset reads as stored, nodata kept
    plain = read_geotiff(_tif(tmp_path / "plain.tif", stored, dtype="uint16", nodata=65535))
    assert plain.data.dtype == np.uint16 and plain.nodata == 65535


# -- 2: the file's unit ----------------------------------------------------------------------------------------
def test_dem_whose_file_says_feet_is_refused_without_a_unit_given(store, tmp_path):
    src = _tif(tmp_path / "dem_ft.tif", np.full((4, 4), 1640.0), units="ft")
    with pytest.raises(RasterError, match=r"raster 'dem' holds .* in m, but dem_ft\.tif gives its values in 'ft'; "
                                          r"convert .*gdal_calc"):
        import_raster(store, src, "dem")
    assert not store.has_raster("dem")
    assert read_geotiff(src).unit == "ft"
    # under another name, the file's unit is the raster's
    assert import_raster(store, src, "rain_ft").unit == "ft"
    assert store.raster_info("rain_ft")["unit"] == "ft"


def test_a_unit_given_that_contradicts_the_files_is_refused_naming_both(store, tmp_path):
    src = _tif(tmp_path / "dem_ft.tif", np.full((4, 4), 1640.0), units="ft")
    with pytest.raises(RasterError, match=r"dem_ft\.tif gives its values in 'ft' \(its band unit\), but the unit "
                                          r"given is 'm': say which is right.*gdal_edit\.py -units m dem_ft\.tif"
                                          r".*convert them to m"):
        import_raster(store, src, "dem", unit="m")
    assert not store.has_raster("dem")
    with pytest.raises(RasterError, match=r"but the unit given is 'mm'.*import with unit 'ft' \(CLI: --unit ft\)"):
        import_raster(store, src, "snow", unit="mm")
    # the same unit spelled another way is no contradiction
    metres = _tif(tmp_path / "dem_m.tif", np.full((4, 4), 500.0), units="metre")
    assert import_raster(store, metres, "dem", unit="m").unit == "m"
    assert import_raster(store, metres, "dem").unit == "metre"


# -- 3: bands ------------------------------------------------------------------------------------------------
def test_multi_band_file_without_a_band_named_warns_and_band_picks_one(store, tmp_path):
    src = _tif(tmp_path / "three.tif", [np.full((4, 4), v) for v in (500.0, 600.0, 700.0)])
    with pytest.warns(TwinWarning, match=r"three\.tif has 3 bands; band 1 is imported as 'dem' and the other 2 left "
                                         r"out\. Name the band to import with band=N \(CLI: --band N\)"):
        import_raster(store, src, "dem", unit="m")
    assert float(store.read_raster("dem").data[0, 0]) == 500.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        r = import_raster(store, src, "dem", unit="m", band=2)
        import_raster(store, _tif(tmp_path / "one.tif", np.full((4, 4), 1.0)), "other")  # one band: no warning
    assert float(store.read_raster("dem").data[0, 0]) == 600.0 and "band" not in r.meta
    with pytest.raises(RasterError, match=r"three\.tif has 3 band\(s\); band 4 does not exist"):
        import_raster(store, src, "dem", band=4)


# -- 4: resolution, progress, memory ---------------------------------------------------------------------------
def test_resolution_resamples_a_grid_already_in_the_twin_crs(store, tmp_path):
    """resolution= was ignored when the file needed no warp: a 5 m grid stayed 5 m."""
    src = _tif(tmp_path / "dem5.tif", np.full((8, 8), 500.0))
    r = import_raster(store, src, "dem", unit="m", resolution=10)
    assert r.res == (10.0, 10.0) and r.shape == (4, 4)
    assert store.raster_info("dem")["width"] == 4
    np.testing.assert_allclose(store.read_raster("dem").data, 500.0)
    for bad in (0, -5, float("nan")):
        with pytest.raises(RasterError, match=r"resolution must be a cell size above 0 .*--resolution 5"):
            import_raster(store, src, "dem", unit="m", resolution=bad)


def test_import_reports_progress_through_read_warp_and_write(store, tmp_path):
    src = _tif(tmp_path / "utm.tif", np.full((40, 40), 500.0), crs="EPSG:32648",
               transform=Affine(5.0, 0, 409000.0, 0, -5.0, 3391500.0))
    calls = []
    import_raster(store, src, "dem", unit="m", progress=lambda done, total: calls.append((done, total)))
    done = [d / t for d, t in calls]
    assert len(calls) > 3 and done == sorted(done) and done[-1] == 1.0


@pytest.mark.parametrize("resolution, resampling", [(None, "bilinear"), (23.0, "bilinear"), (2.0, "cubic"),
                                                     (40.0, "average")])
def test_chunked_warp_matches_one_warp_and_does_not_copy_the_grid(resolution, resampling):
    """The warp is done a band of rows at a time (for progress), each from the source rows it needs: the same
    cells as a single warp, at any cell size; and the whole source is no longer copied (astype made a float32
    copy of a float32 grid, and rasterio copies the array it is given)."""
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    rng = np.random.default_rng(1)
    data = (500 + rng.random((600, 500)) * 20).astype("float32")
    data[100:110, 200:230] = -9999.0
    src = Raster(data, Affine(5.0, 0, 409000.0, 0, -5.0, 3391500.0), "EPSG:32648", nodata=-9999.0)
    reproject_raster(src, "EPSG:4544", resolution=resolution, resampling=resampling)
    tracemalloc.start()  # after one warp: the first sets up GDAL's and PROJ's caches
    try:
        start = tracemalloc.get_traced_memory()[0]
        out = reproject_raster(src, "EPSG:4544", resolution=resolution, resampling=resampling)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    # the new grid, plus a band of source rows (a 16th, padded): a copy of the whole source would add 1.2 MB
    assert peak < out.data.nbytes + 0.4 * data.nbytes
    t, w, h = calculate_default_transform("EPSG:32648", "EPSG:4544", 500, 600, *src.bounds, resolution=resolution)
    one = np.full((h, w), -9999.0, dtype="float32")
    reproject(data, one, src_transform=src.transform, src_crs="EPSG:32648", dst_transform=t, dst_crs="EPSG:4544",
              src_nodata=-9999.0, dst_nodata=-9999.0, resampling=getattr(Resampling, resampling))
    assert out.shape == one.shape
    np.testing.assert_array_equal(out.data, one)


# -- 5: Manning's n --------------------------------------------------------------------------------------------
def test_manning_grid_of_0_or_less_is_refused_and_above_0_5_warned_about(store, tmp_path):
    n = np.full((4, 4), 0.03)
    n[0, :3] = 40.0  # Strickler's K, or a typo
    n[3, 3] = -9999.0  # nodata: not counted
    src = _tif(tmp_path / "n.tif", n, nodata=-9999.0)
    with pytest.warns(TwinWarning, match=r"n\.tif: 3 cell\(s\) hold a Manning's n above 0\.5 \(highest 40\).*"
                                         r"Chow 1959; Arcement & Schneider 1989.*Strickler"):
        import_raster(store, src, "manning")
    zero = n.copy()
    zero[0, :3] = 0.03
    zero[1, 1], zero[2, 2] = 0.0, -0.02
    with pytest.raises(RasterError, match=r"n0\.tif: a Manning's n must be above 0, but 2 cell\(s\) hold 0 or less "
                                          r"\(lowest -0\.02\)"):
        import_raster(store, _tif(tmp_path / "n0.tif", zero, nodata=-9999.0), "manning")
    assert float(store.read_raster("manning").data[0, 0]) == 40.0  # the refused grid left the one before
    fine = zero.copy()
    fine[1, 1], fine[2, 2] = 0.2, 0.011
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        import_raster(store, _tif(tmp_path / "ok.tif", fine, nodata=-9999.0), "manning")
        import_raster(store, src, "not_manning")  # another name: no n check
    assert float(store.read_raster("manning").data[1, 1]) == pytest.approx(0.2)
