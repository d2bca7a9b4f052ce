"""CLI defects a user review found: `twin import-raster` replaced the DEM when --name was left out; errors that
gave a CLI user Python advice or the wrong option; `twin info` without the extent's coordinates; a 0 % progress
bar printed above an input error."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from typer.testing import CliRunner

from cim.raster import Raster
from twin_core.cli import get_app
from twin_core.errors import CRSError, LayerNotFoundError, ParameterError, TwinWarning
from twin_core.twin import Twin

GRID = Affine(5.0, 0.0, 410000.0, 0.0, -5.0, 3395020.0)  # 4 x 4 cells of 5 m


def run(*args):
    return CliRunner().invoke(get_app(), [str(a) for a in args])


def _grid(value: float, shape=(4, 4), transform=GRID, unit="m") -> Raster:
    return Raster(np.full(shape, value, dtype="float32"), transform, "EPSG:4544", nodata=-9999.0, unit=unit)


@pytest.fixture
def twin_file(tmp_path):
    """A twin with a 4 x 4 DEM (all 500 m) and Manning grid on one grid."""
    path = str(tmp_path / "t.gpkg")
    with Twin.create(path, crs="EPSG:4544") as t:
        t.store.write_raster("dem", _grid(500.0))
        t.store.write_raster("manning", _grid(0.03, unit="s/m^(1/3)"))
    return path


def _tif(tmp_path, name: str, r: Raster, crs: bool = True) -> str:
    import rasterio

    path = str(tmp_path / name)
    with rasterio.open(path, "w", driver="GTiff", width=r.shape[1], height=r.shape[0], count=1, dtype="float32",
                       crs=r.crs if crs else None, transform=r.transform, nodata=r.nodata) as ds:
        ds.write(r.data, 1)
    return path


# -- item 3: import-raster --------------------------------------------------------------------------------------
def test_import_raster_without_name_is_refused_and_leaves_the_dem(twin_file, tmp_path):
    """It defaulted to --name dem: `twin import-raster c.gpkg other.tif` put a 2 x 2 grid in place of the DEM."""
    src = _tif(tmp_path, "small.tif", _grid(7.0, shape=(2, 2)))
    res = run("import-raster", twin_file, src)
    assert isinstance(res.exception, ParameterError), res.output
    msg = str(res.exception)
    assert msg.startswith("--name is required") and "the twin has dem, manning" in msg
    with Twin.open(twin_file) as t:
        assert t.raster("dem").shape == (4, 4) and float(t.raster("dem").data[0, 0]) == 500.0


def test_import_raster_says_what_it_replaced(twin_file, tmp_path):
    src = _tif(tmp_path, "dem2.tif", _grid(501.0))
    res = run("import-raster", twin_file, src, "--name", "dem", "--unit", "m")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "imported dem: 4 x 4 cells, replacing the 4 x 4 cells it had"
    res = run("import-raster", twin_file, src, "--name", "rain_grid", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"raster": "rain_grid", "shape": [4, 4], "replaced": None}
    with Twin.open(twin_file) as t:
        assert float(t.raster("dem").data[0, 0]) == 501.0


def test_replacing_the_dem_on_another_grid_warns_that_manning_is_left_behind(twin_file, tmp_path):
    """A DEM on a new grid with the Manning grid on the old one: every flood then failed, and nothing said so."""
    from cim.io.raster import import_raster

    coarse = _tif(tmp_path, "coarse.tif", _grid(502.0, shape=(2, 2), transform=Affine(10.0, 0, 410000.0, 0, -10.0,
                                                                                       3395020.0)))
    with Twin.open(twin_file) as t, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        import_raster(t.store, coarse, "dem", unit="m")
    said = [str(x.message) for x in w if issubclass(x.category, TwinWarning)]
    assert said == ["'dem' is now a 2 x 2 grid, but 'manning' stays on the 4 x 4 grid 'dem' had, and a flood needs "
                    "them on one grid: import manning on the new grid too, or dem on the old one"]
    same = _tif(tmp_path, "same.tif", _grid(0.05, shape=(2, 2), transform=Affine(10.0, 0, 410000.0, 0, -10.0,
                                                                                 3395020.0)))
    with Twin.open(twin_file) as t, warnings.catch_warnings(record=True) as w:  # manning onto dem's grid: no warning
        warnings.simplefilter("always")
        import_raster(t.store, same, "manning")
    assert not [x for x in w if issubclass(x.category, TwinWarning)]


# -- item 8: errors in the CLI's words --------------------------------------------------------------------------
def test_a_raster_without_crs_names_the_cli_option(twin_file, tmp_path):
    src = _tif(tmp_path, "nocrs.tif", _grid(1.0), crs=False)
    res = run("import-raster", twin_file, src, "--name", "extra")
    assert isinstance(res.exception, CRSError)
    assert "crs='EPSG:4544' (CLI: --crs EPSG:4544)" in str(res.exception)
    assert run("import-raster", twin_file, src, "--name", "extra", "--crs", "EPSG:4544").exit_code == 0


def test_export_of_a_result_without_run_says_run(twin_file, tmp_path):
    """It said results "are read with twin.load_result()": Python, to a CLI user."""
    with Twin.open(twin_file) as t:
        t.save_result(None, "storm50", "max_depth", _grid(0.2))
    for out in ("x.tif", "x.gpkg", "x.city.json"):
        res = run("export", twin_file, "max_depth", tmp_path / out)
        assert isinstance(res.exception, LayerNotFoundError), res.output
        msg = str(res.exception)
        assert "load_result" not in msg
        assert f"e.g. twin export {twin_file} max_depth {tmp_path / out} --run storm50 (runs with a max_depth: " \
               "storm50;" in msg and f"`twin runs {twin_file}` lists" in msg
    res = run("export", twin_file, "dme", tmp_path / "x.tif")
    msg = str(res.exception)
    assert msg.startswith(f"no layer or raster 'dme' in {twin_file}; did you mean 'dem'?; layers: none; rasters: "
                          "dem, manning; a run's results") and "--run RUN" in msg and "load_result" not in msg
    res = run("export", twin_file, "dem", tmp_path / "dem.tif")  # what is there still exports
    assert res.exit_code == 0, res.output


def _flood(twin, scenario, run_id):
    twin.save_result(scenario, run_id, "max_depth", _grid(0.2), meta={"engine": "simulation.flood"})
    twin.save_result(scenario, run_id, "exposure_buildings",
                     pd.DataFrame({"building_id": ["B1"], "max_depth_m": [0.2], "time_of_arrival_s": [60.0]}),
                     meta={"engine": "simulation.flood"})
    twin.save_result(scenario, run_id, "summary", {"engine": "flood", "threshold_m": 0.15, "max_depth_m": 0.2},
                     meta={"engine": "simulation.flood"})


def test_compare_names_its_own_scenario_options(twin_file):
    """A run id under several scenarios was answered "(CLI: --scenario base)": compare has --scenario-a/-b."""
    with Twin.open(twin_file) as t:
        t.scenarios.create("levee")
        _flood(t, None, "storm50")
        _flood(t, "levee", "storm50")
        _flood(t, "levee", "storm50-levee")
    res = run("compare", twin_file, "storm50", "storm50-levee")
    assert isinstance(res.exception, LayerNotFoundError), res.output
    assert str(res.exception).endswith("name one: scenario_a='base' (CLI: --scenario-a base)")
    res = run("compare", twin_file, "storm50-levee", "storm50")
    assert str(res.exception).endswith("name one: scenario_b='base' (CLI: --scenario-b base)")
    res = run("compare", twin_file, "storm50", "storm50-levee", "--scenario-a", "base", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["a"] == ["base", "storm50"]
    with Twin.open(twin_file) as t:  # Python names its keyword (it said scenario='base', which compare has not)
        with pytest.raises(LayerNotFoundError, match=r"name one: scenario_b='base' \(CLI: --scenario-b base\)$"):
            t.compare("storm50-levee", "storm50")


# -- item 11: twin info shows where the twin is -----------------------------------------------------------------
def test_info_shows_the_extent_as_bbox_and_lonlat(tmp_path):
    path = str(tmp_path / "e.gpkg")
    with Twin.create(path, crs="EPSG:4544") as t:
        t.store.set_meta({"extent": [409220.0, 3390475.0, 410220.0, 3391475.5]})
    res = run("info", path)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("extent:"))
    assert lines[at] == ("  extent: 1.00 km x 1.00 km, 409220,3390475,410220,3391475.5 (xmin,ymin,xmax,ymax in "
                         "EPSG:4544, as --bbox takes it)")
    lon0, lat0, lon1, lat1 = map(float, re.fullmatch(r"\s+lon/lat (\S+)", lines[at + 1]).group(1).split(","))
    # EPSG:4544 is Gauss-Kruger on 105 E, false easting 500 km: 409 km lies ~0.94 deg west of it, at ~30.6 N
    assert 104.0 < lon0 < lon1 < 104.1 and 30.6 < lat0 < lat1 < 30.7
    from pyproj import Transformer

    lons, lats = Transformer.from_crs("EPSG:4544", "EPSG:4326", always_xy=True).transform(
        [409220.0, 410220.0, 409220.0, 410220.0], [3390475.0, 3390475.0, 3391475.5, 3391475.5])
    # the box holds the four corners (to the 1e-5 deg the line is rounded to), and little more (grid convergence
    # tilts the square by ~0.5 deg: its lon/lat box is a few metres wider than the corners on one axis)
    assert lon0 <= min(lons) + 1e-5 and lat0 <= min(lats) + 1e-5
    assert lon1 >= max(lons) - 1e-5 and lat1 >= max(lats) - 1e-5
    assert max(min(lons) - lon0, min(lats) - lat0, lon1 - max(lons), lat1 - max(lats)) < 1e-4
    doc = json.loads(run("info", path, "--json").stdout)
    assert doc["extent_lonlat"] == pytest.approx([lon0, lat0, lon1, lat1], abs=1e-5)


# -- item 12: no 0 % bar above an input error -------------------------------------------------------------------
@pytest.mark.parametrize("args, error", [
    (("flood", "{city}", "--scenario", "nope", "--duration", "1min"), "scenario 'nope' does not exist"),
    (("traffic", "assign", "{city}", "--period", "noon"), "period must be one of ['am', 'offpeak', 'pm']"),
    (("crowd", "{city}", "--area", "A001", "--agents", "10", "--close-exit", "nope"), "unknown exit 'nope'"),
], ids=["flood-scenario", "traffic-period", "crowd-exit"])
def test_an_input_error_prints_no_progress_bar(small_city_gpkg, args, error):
    from twin_core.errors import TwinError

    res = run(*[a.format(city=small_city_gpkg) for a in args])
    assert isinstance(res.exception, TwinError) and error in str(res.exception), res.exception
    assert res.stdout == "", res.stdout  # it held "flood 50y 1min ... 0% 0:00:00 -:--:--"


def test_progress_bar_shows_once_moved_and_erases_an_unmoved_one(capsys):
    import time

    from twin_core.progress import progress_bar

    with pytest.raises(ValueError):
        with progress_bar("refused at once", 10):
            raise ValueError("bad input")
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError):
        with progress_bar("refused", 10, delay=0.05):
            time.sleep(0.3)  # shown by then (a long set-up shows its elapsed time), then erased on the failure
            raise ValueError("bad input")
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError):
        with progress_bar("half", 10) as progress:
            progress(5, 10)
            raise ValueError("disk full")
    assert re.search(r"half .* 50%", capsys.readouterr().out)  # how far it got stays on screen
    with progress_bar("done", 4) as progress:
        for i in range(4):
            progress(i + 1, 4)
    assert re.search(r"done .* 100%", capsys.readouterr().out)


def test_scenario_set_refuses_a_value_the_engine_would_not_take(twin_file):
    """`twin scenario set ... traffic_demand_scale '"lots"'` was recorded, and only the next traffic run failed;
    the map's set_param edit and the CLI now check values with one table (adapters.scenario_params)."""
    res = run("scenario", "set", twin_file, "x", "traffic_demand_scale", '"lots"', "--create")
    assert res.exit_code != 0 and "scenario parameter 'traffic_demand_scale' takes a number >= 0" in str(
        res.exception), res.output
    with Twin.open(twin_file) as t:
        assert "x" not in t.scenarios  # nothing recorded, no empty scenario left
    res = run("scenario", "set", twin_file, "x", "traffic_demand_scale", "1.2", "--create")
    assert res.exit_code == 0, res.output
    with Twin.open(twin_file) as t:
        assert t.scenarios["x"].params() == {"traffic_demand_scale": 1.2}
