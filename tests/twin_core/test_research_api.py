"""The Python API as a researcher uses it from a notebook: sweeps, finding stored results again, the messages."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from affine import Affine

from cim.raster import Raster
from twin_core.errors import LayerNotFoundError, TwinWarning
from twin_core.twin import Twin

X0, Y0 = 404000.0, 3393000.0


def _tiny_twin(path, shape=(4, 4)) -> Twin:
    """A twin of a flat 'dem' and a 'manning' raster (no layers)."""
    tr = Affine(5.0, 0, X0, 0, -5.0, Y0 + 5.0 * shape[0])
    twin = Twin.create(path, crs="EPSG:4544")
    twin.store.write_raster("dem", Raster(np.zeros(shape, "float32"), tr, "EPSG:4544"))
    twin.store.write_raster("manning", Raster(np.full(shape, 0.03, "float32"), tr, "EPSG:4544"))
    return twin


def test_view_docstring_examples_parse():
    """`# doctest: +SKIP  (renders in Jupyter)` made every doctest run of twin_core.view fail with
    "ValueError: line 18 of the doctest for twin_core.view has an invalid option: '(renders'"."""
    import twin_core.view

    res = doctest.testmod(twin_core.view, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0


def test_design_storm_cut_short_by_until_warns(tmp_path):
    """A 1-hour design storm run with until='10min' got a sixth of its rain without a word (only a user
    hyetograph was checked) while the summary's storm total_mm gave the whole storm."""
    with _tiny_twin(str(tmp_path / "f.gpkg")) as twin:
        with pytest.warns(TwinWarning, match="design storm goes on to 3600 s"):
            fr = twin.flood(storm="2y", duration="1h", until="10min", save=False)
        assert fr.summary["rain_m3"] < fr.summary["storm"]["total_mm"] / 1000 * 16 * 25 / 2
        with warnings.catch_warnings():
            warnings.simplefilter("error", TwinWarning)
            twin.flood(storm="2y", duration="10min", save=False)  # the whole storm: no warning


def test_load_result_says_where_the_run_is(tmp_path):
    """A run stored under another scenario answered only "results there: []"."""
    with _tiny_twin(str(tmp_path / "r.gpkg")) as twin:
        twin.save_result("levee", "storm50", "summary", {"max_depth_m": 1.0})
        twin.save_result("base", "am", "summary", {"tstt": 1.0})
        with pytest.raises(LayerNotFoundError, match=r"run 'storm50' is under scenario 'levee': "
                                                     r"twin.load_result\('levee', 'storm50', 'summary'\)"):
            twin.load_result(None, "storm50", "summary")
        with pytest.raises(LayerNotFoundError, match=r"runs under scenario 'base': \['am'\]"):
            twin.load_result("base", "storm-50", "summary")
        with pytest.raises(LayerNotFoundError, match=r"results there: \['summary'\]"):
            twin.load_result("base", "am", "link_flows")  # the run is there: its results are listed
        assert twin.load_result("levee", "storm50", "summary") == {"max_depth_m": 1.0}


def test_analysis_results_keep_their_parameters(tmp_path):
    """Sunlight and viewshed rasters were stored with meta {}: which day, hours or observer a stored run used
    could not be found again."""
    from twin_core.adapters.analysis import run_sunlight, run_viewshed

    with _tiny_twin(str(tmp_path / "a.gpkg"), shape=(20, 20)) as twin:
        _, vr = run_viewshed(twin, (X0 + 50, Y0 + 50), observer_height=1.7, radius=30.0)
        _, sr = run_sunlight(twin, "2026-06-21", "09:00", "15:00", bounds=(X0, Y0, X0 + 40, Y0 + 40), spacing=20,
                             step_minutes=60)
        idx = twin.results()
        vm = idx.loc[idx["run"] == vr, "meta"].iloc[0]
        sm = idx.loc[idx["run"] == sr, "meta"].iloc[0]
    assert vm["observer"] == [X0 + 50, Y0 + 50] and vm["observer_height_m"] == 1.7 and vm["radius_m"] == 30.0
    assert (sm["date"], sm["start"], sm["end"], sm["spacing_m"]) == ("2026-06-21", "09:00", "15:00", 20.0)
    assert sm["bounds"] == [X0, Y0, X0 + 40, Y0 + 40]


@pytest.mark.parametrize("call, match", [
    (lambda t: t.flood(return_period="50y", save=False), r"Twin.flood\(\) got unexpected .*'return_period'.*'storm'"),
    (lambda t: t.traffic(demand=2.0), r"'demand': did you mean 'demand_scale'\?"),
    (lambda t: t.crowd("A1", n=10), r"Twin.crowd\(\) got unexpected .*\['n'\].*'agents'"),
])
def test_engine_keyword_typo_names_what_is_taken(tmp_path, call, match):
    """A mistyped keyword failed as "prepare_flood() got an unexpected keyword argument 'return_period'":
    an internal function, and nothing about what the call takes."""
    with _tiny_twin(str(tmp_path / "k.gpkg")) as twin:
        with pytest.raises(TypeError, match=match):
            call(twin)


def test_a_run_id_holding_another_engines_results_is_refused(tmp_path):
    # flood(run="shared") then traffic(run="shared"): the traffic summary overwrote the flood's
    import sample_city
    from twin_core.errors import ParameterError

    path = str(tmp_path / "c.gpkg")
    sample_city.build_into(path, "small", seed=0)
    with Twin.open(path) as twin:
        twin.flood(run="shared", storm="2y", duration="10min")
        with pytest.raises(ParameterError, match=r"run 'shared' under scenario 'base' holds a simulation.flood run; "
                                                 r"a simulation.traffic run under the same id would overwrite"):
            twin.traffic(run="shared", demand_scale=0.1)
        with pytest.raises(ParameterError, match="a simulation.crowd run under the same id"):
            twin.crowd("A001", agents=10, run="shared", until=5.0)
        assert twin.load_result(None, "shared", "summary")["storm"]
        twin.flood(run="shared", storm="2y", duration="10min")  # the same engine may re-run its id
        twin.traffic(run="t1", demand_scale=0.1)
        twin.traffic(run="t1", mode="simulate", demand_scale=0.1, route_iterations=1)  # assign -> simulate is fine


def test_a_flood_run_in_a_notebook_shows_no_deprecation_noise(small_city_gpkg):
    """Every raster read composed the window's transform with affine's deprecated `*` (rasterio's
    window_transform): four PendingDeprecationWarnings per flood run in a notebook, none of them ours to act on."""
    with Twin.open(small_city_gpkg) as twin, warnings.catch_warnings():
        warnings.simplefilter("error", PendingDeprecationWarning)
        twin.flood(storm="5y", duration="5min", run="quiet")
        r = twin.raster("dem", bounds=(409500, 3390700, 410000, 3391200))
    assert r.shape[0] > 0
