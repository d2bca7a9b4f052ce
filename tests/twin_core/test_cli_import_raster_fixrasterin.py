"""`twin import-raster` gaps a data-engineer review found: no --band (band 1 of a multi-band file, silently), no
--resolution, no progress bar, the file's unit ignored, a Manning grid of 40 taken as it was."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import rasterio
from affine import Affine
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.errors import RasterError, TwinWarning
from twin_core.twin import Twin

GRID = Affine(5.0, 0.0, 410000.0, 0.0, -5.0, 3395020.0)


def run(*args):
    return CliRunner().invoke(get_app(), [str(a) for a in args])


@pytest.fixture
def twin_file(tmp_path):
    path = str(tmp_path / "t.gpkg")
    Twin.create(path, crs="EPSG:4544").close()
    return path


def _tif(path, bands, units=None, nodata=None):
    bands = [bands] if np.ndim(bands) == 2 else bands
    rows, cols = np.shape(bands[0])
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=len(bands), dtype="float32",
                       crs="EPSG:4544", transform=GRID, nodata=nodata) as ds:
        for i, b in enumerate(bands, 1):
            ds.write(np.asarray(b, dtype="float32"), i)
        if units:
            ds.units = (units,) * len(bands)
    return str(path)


def test_band_option_picks_the_band_and_a_multi_band_file_without_it_warns(twin_file, tmp_path):
    src = _tif(tmp_path / "rgb.tif", [np.full((4, 4), v) for v in (500.0, 600.0, 700.0)])
    with pytest.warns(TwinWarning, match=r"rgb\.tif has 3 bands; band 1 is imported.*\(CLI: --band N\)"):
        res = run("import-raster", twin_file, src, "--name", "dem")
    assert res.exit_code == 0, res.output
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        res = run("import-raster", twin_file, src, "--name", "dem", "--band", "3")
    assert res.exit_code == 0, res.output
    with Twin.open(twin_file) as t:
        assert float(t.raster("dem").data[0, 0]) == 700.0
    assert run("import-raster", twin_file, src, "--name", "dem", "--band", "0").exit_code == 2  # typer: min 1


def test_resolution_option_resamples(twin_file, tmp_path):
    src = _tif(tmp_path / "dem.tif", np.full((8, 8), 500.0))
    res = run("import-raster", twin_file, src, "--name", "dem", "--resolution", "10")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "imported dem: 4 x 4 cells of 10 m"
    with Twin.open(twin_file) as t:
        assert t.raster("dem").res == (10.0, 10.0)
    res = run("import-raster", twin_file, src, "--name", "dem", "--resolution", "0")
    assert isinstance(res.exception, RasterError) and "--resolution 5" in str(res.exception)


def test_the_files_unit_is_read_and_a_contradicting_unit_refused(twin_file, tmp_path):
    src = _tif(tmp_path / "dem_ft.tif", np.full((4, 4), 1640.0), units="ft")
    res = run("import-raster", twin_file, src, "--name", "dem")
    assert isinstance(res.exception, RasterError), res.output
    assert "but dem_ft.tif gives its values in 'ft'" in str(res.exception)
    res = run("import-raster", twin_file, src, "--name", "dem", "--unit", "m")
    assert isinstance(res.exception, RasterError), res.output
    assert "gives its values in 'ft' (its band unit), but the unit given is 'm'" in str(res.exception)
    with Twin.open(twin_file) as t:
        assert "dem" not in t.rasters()
    assert run("import-raster", twin_file, src, "--name", "level_ft").exit_code == 0
    with Twin.open(twin_file) as t:
        assert t.store.raster_info("level_ft")["unit"] == "ft"


def test_manning_of_40_is_warned_about(twin_file, tmp_path):
    src = _tif(tmp_path / "k.tif", np.full((4, 4), 40.0))
    with pytest.warns(TwinWarning, match=r"k\.tif: 16 cell\(s\) hold a Manning's n above 0\.5"):
        assert run("import-raster", twin_file, src, "--name", "manning").exit_code == 0
    res = run("import-raster", twin_file, _tif(tmp_path / "z.tif", np.zeros((4, 4))), "--name", "manning")
    assert isinstance(res.exception, RasterError) and "must be above 0" in str(res.exception)


def test_a_long_import_shows_the_progress_bar_and_json_or_quiet_none(twin_file, tmp_path, monkeypatch):
    import twin_core.cli.layers as layers
    import twin_core.progress

    bars = []

    @contextmanager
    def fake_bar(description, total=None, *, quiet=False, delay=1.0):
        calls = []
        bars.append((description, quiet, calls))
        yield lambda done, tot: calls.append((done, tot))

    monkeypatch.setattr(twin_core.progress, "progress_bar", fake_bar)
    monkeypatch.setattr(layers, "_BAR_AFTER_S", 0.0)  # as if the import ran past the bar's delay
    src = _tif(tmp_path / "dem.tif", np.full((8, 8), 500.0))
    assert run("import-raster", twin_file, src, "--name", "dem").exit_code == 0
    (description, quiet, calls), = bars
    assert description == "importing dem" and not quiet
    assert calls and calls[-1][0] == calls[-1][1]
    assert run("import-raster", twin_file, src, "--name", "dem", "--json").exit_code == 0
    assert run("import-raster", twin_file, src, "--name", "dem", "-q").exit_code == 0
    assert [q for _, q, _ in bars[1:]] == [True, True]
