"""The Python API as a notebook meets it past the README: Shift-Tab on every method, what a twin shows in
Jupyter, a notebook's own types (pandas Timedelta / Timestamp, NumPy scalars, shapely points, text for
numbers), run ids used twice, and "interrupt the kernel" in the middle of a sweep. Each test names what it
did before."""

from __future__ import annotations

import datetime
import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
from shapely import Point

import twin_core.sweep as sweep_mod
from twin_core.errors import ParameterError, TwinWarning
from twin_core.twin import Twin
from twin_core.units import is_bare_number, parse_duration, parse_offset

from test_research_api import X0, Y0, _tiny_twin  # noqa: E402  (a flat 4 x 4 twin of 5 m cells)

#: inside the tiny twin
BOUNDS = (X0, Y0, X0 + 20, Y0 + 20)
CENTRE = (X0 + 10, Y0 + 10)


# -- Shift-Tab and help() ------------------------------------------------------------------------------
@pytest.mark.parametrize("method, names", [
    ("access", {"scenario", "run", "flooded_by", "flood_time", "speeds_from", "save", "progress"}),
    ("view", {"layers", "scenario", "colour_by", "hillshade", "max_features", "pitch"}),
    ("sweep", {"engine", "grid", "scenarios", "run_prefix", "on_error", "executor", "progress"}),
    ("layer", {"name", "scenario", "bbox", "where", "columns", "limit", "offset"}),
])
def test_every_method_shows_its_keywords(method, names):
    """help(twin.access), twin.view, twin.sweep and twin.layer showed ``(..., **kwargs)``: Shift-Tab offered
    none of their keywords."""
    params = inspect.signature(getattr(Twin, method)).parameters
    assert names <= set(params)
    var = [p.name for p in params.values() if p.kind == p.VAR_KEYWORD]
    assert var == (["fixed"] if method == "sweep" else [])  # a sweep's fixed engine parameters stay open


def test_view_keyword_typo_names_the_close_one_and_takes_layers_positionally(tmp_path):
    """twin.view(layer="buildings") said "view() got an unexpected keyword argument 'layer'", and
    twin.view("road_links") was a TypeError (Twin.view took keywords only)."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        with pytest.raises(TypeError, match=r"\['layer'\].*did you mean 'layers'"):
            twin.view(layer="buildings")
        with warnings.catch_warnings():
            # and no PendingDeprecationWarning from rasterio's affine `*` under the hillshade, one per view()
            warnings.simplefilter("error", PendingDeprecationWarning)
            deck = twin.view((), hillshade=True)
        assert [layer.id for layer in deck.layers] == ["hillshade"]


# -- what a notebook shows -----------------------------------------------------------------------------
def test_a_twin_shows_a_table_in_a_notebook(tmp_path):
    """A twin had no _repr_html_: a notebook cell ending in ``twin`` showed one line, no layers or runs."""
    twin = _tiny_twin(str(tmp_path / "t.gpkg"))
    twin.flood(storm="5y", duration="5min", run="f1")
    page = twin._repr_html_()
    for text in ("<table>", "EPSG:4544", "dem (4 x 4)", "manning (4 x 4)", "1 runs", "base"):
        assert text in page
    twin.close()
    assert "closed" in twin._repr_html_()  # a closed twin still shows


# -- a notebook's own types ----------------------------------------------------------------------------
def test_durations_from_pandas_and_numpy(tmp_path):
    """duration=pd.Timedelta("5min") (or datetime.timedelta, np.timedelta64) was refused: "cannot read a
    duration Timedelta('0 days 00:05:00')"."""
    assert parse_duration(pd.Timedelta("5min")) == parse_duration(datetime.timedelta(minutes=5)) == 300.0
    assert parse_duration(np.timedelta64(2, "h")) == 7200.0 and parse_duration(np.int64(600)) == 600.0
    assert parse_offset(-pd.Timedelta("30min")) == -1800.0
    assert not is_bare_number(pd.Timedelta("10min")) and not is_bare_number(np.timedelta64(10, "s"))
    assert is_bare_number(np.float32(10))
    with pytest.raises(ParameterError, match="NaT"):
        parse_duration(np.timedelta64("NaT"))
    with pytest.raises(ParameterError, match="no fixed length"):
        parse_duration(np.timedelta64(1, "M"))
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin, warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)  # a Timedelta is no bare number of seconds
        run = twin.flood(storm="5y", duration=pd.Timedelta("5min"), until=datetime.timedelta(minutes=6), save=False)
    assert run.summary["sim_time_s"] == 360


def test_numbers_given_as_text_name_the_argument(tmp_path):
    """spacing="20" failed with "'>' not supported between instances of 'str' and 'int'", radius="200" with
    "ufunc 'isfinite' not supported for the input types"."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        with pytest.raises(ParameterError, match=r"spacing must be a number of metres, got str '20'; write spacing=20"):
            twin.sunlight(bounds=BOUNDS, spacing="20", save=False)
        with pytest.raises(ParameterError, match=r"radius must be a number of metres .*got str '200'"):
            twin.viewshed(CENTRE, radius="200", save=False)
        with pytest.raises(ParameterError, match="observer_height must be a number of metres"):
            twin.viewshed(CENTRE, observer_height="30m", save=False)
        # NumPy scalars are numbers
        r = twin.viewshed(np.array(CENTRE), radius=np.int64(10), observer_height=np.float32(2), save=False)
        assert r.summary["radius_m"] == 10.0


def test_viewshed_slips_of_units_and_a_shapely_point(tmp_path):
    """A longitude/latitude observer got only "lies outside the DEM"; radius=0.002 (degrees) ran on two cells
    without a word; a shapely Point (a POI's geometry) was refused."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        with pytest.raises(ParameterError, match="outside the DEM.*looks like longitude/latitude.*Transformer"):
            twin.viewshed((104.06, 30.66), radius=200, save=False)
        with pytest.warns(TwinWarning, match=r"radius=0.002 m is less than one DEM cell \(5 m\)"):
            twin.viewshed(CENTRE, radius=0.002, save=False)
        r = twin.viewshed(Point(*CENTRE), radius=10, save=False)
    assert r.summary["observer"] == list(CENTRE)


def test_sunlight_day_from_a_timestamp_is_stored_as_the_day(tmp_path):
    """A pandas Timestamp's day was stored in the result's meta as "2026-01-20 09:00:00"."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        for day in (pd.Timestamp("2026-01-20 09:00", tz="Asia/Shanghai"), np.datetime64("2026-01-20"),
                    datetime.date(2026, 1, 20)):
            r = twin.sunlight(day, start=datetime.time(8), end=datetime.time(16), bounds=BOUNDS, spacing=10,
                              run="sun")
            assert (r.summary["date"], r.summary["start"], r.summary["end"]) == ("2026-01-20", "08:00", "16:00")
            assert twin.results(run="sun")["meta"].iloc[0]["date"] == "2026-01-20"


# -- run ids -------------------------------------------------------------------------------------------
def test_an_analysis_under_another_runs_id_is_refused(tmp_path):
    """twin.sunlight(run="storm50") put its raster into the flood run storm50 without a word, and runs() then
    listed one "flood" run holding sunlight_hours; a viewshed went into a sunlight run the same way."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.flood(storm="5y", duration="5min", run="storm50")
        with pytest.raises(ParameterError, match="run 'storm50' under scenario 'base' holds a simulation.flood run"):
            twin.sunlight(bounds=BOUNDS, spacing=10, run="storm50")
        twin.sunlight(bounds=BOUNDS, spacing=10, run="s1")
        twin.sunlight(bounds=BOUNDS, spacing=10, run="s1")  # a cell run again: its own id is fine
        with pytest.raises(ParameterError, match="holds a sunlight run"):
            twin.viewshed(CENTRE, radius=10, run="s1")
        twin.viewshed(CENTRE, radius=10, run="s1", save=False)  # nothing stored: nothing to mix
        runs = twin.runs()
    assert runs[["run", "engine"]].values.tolist() == [["storm50", "flood"], ["s1", "sunlight"]]
    assert runs["results"].iloc[1] == ["sunlight_hours"]


def test_crowd_agents_as_a_whole_float_or_text(small_city_gpkg):
    """agents=200.0 (np.linspace in a sweep) failed with "n must be a whole number of agents (int)": a name the
    caller never typed; agents="200" the same."""
    with Twin(small_city_gpkg) as twin:
        r = twin.crowd("A001", agents=np.float64(20.0), until="1min", save=False)
        assert r.summary["agents"] == 20
        with pytest.raises(ParameterError, match=r"agents must be a whole number of people, got str '20'; write agents=20"):
            twin.crowd("A001", agents="20", save=False)
        with pytest.raises(ParameterError, match="agents must be a whole number of people, got float 20.5"):
            twin.crowd("A001", agents=20.5, save=False)


# -- sweeps --------------------------------------------------------------------------------------------
def test_an_interrupted_sweep_keeps_its_table(tmp_path, monkeypatch):
    """Interrupting the kernel in run 2 of a sweep kept run 1's results but lost the table that names the
    runs (it was saved only at the end) and said nothing of where run 1 went."""
    calls = []
    real = sweep_mod._call

    def interrupt_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "_call", interrupt_second)
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        with pytest.raises(KeyboardInterrupt) as info:
            twin.sweep("flood", {"storm": ["2y", "5y", "10y"]}, duration="5min")
        sweeps = twin.results(name="sweep")
        assert len(sweeps) == 1
        sweep_id = sweeps["run"].iloc[0]
        assert f"twin.load_result('base', '{sweep_id}', 'sweep')" in "".join(info.value.__notes__)
        table = twin.load_result("base", sweep_id, "sweep")
        assert table["run_status"].tolist() == ["done", "interrupted", "not run"]
        assert table["run"].tolist() == [f"{sweep_id}-{k}" for k in (1, 2, 3)]
        assert twin.results(run=f"{sweep_id}-1", name="max_depth").shape[0] == 1


def test_a_sweep_stores_numpy_values_as_the_numbers_they_are(tmp_path):
    """Grid values from np.linspace / np.arange were stored in the sweep's meta as "np.float64(0.0)"."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        df = twin.sweep("flood", {"drainage_mm_h": np.array([0.0, 20.0])}, storm="5y", duration=np.int64(300))
        meta = twin.results(run=df.attrs["sweep"], name="sweep")["meta"].iloc[0]
    assert meta["grid"] == {"drainage_mm_h": ["0.0", "20.0"]} and meta["fixed"] == {"storm": "'5y'",
                                                                                     "duration": "300"}
