"""Parameter sweeps (scenario ensembles) from the Python API: one row per run, every run saved, bad requests
refused before anything runs, and parallel runs on a PostGIS twin."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import warnings

import numpy as np
import pytest

from twin_core.errors import ParameterError, StoreError
from twin_core.twin import Twin


def test_a_flood_sweep_over_storms_and_scenarios(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        s = twin.scenarios.create("levee", "ground raised 2 m along the river")
        dem = twin.raster("dem")
        x0, y0, x1, y1 = dem.bounds
        from shapely.geometry import box

        s.patch_raster("dem", box(x0, y0, x1, (y0 + y1) / 2), delta=2.0)
        calls = []
        df = twin.sweep("flood", {"storm": ["2y", "20y", "100y"]}, scenarios=[None, "levee"], duration="10min",
                        progress=lambda done, total: calls.append((done, total)))
        assert calls == [(k, 6) for k in range(1, 7)]
        assert df["scenario"].tolist() == ["base"] * 3 + ["levee"] * 3
        assert df["storm"].tolist() == ["2y", "20y", "100y"] * 2 and (df["run_status"] == "done").all()
        # a rarer storm rains more, on either scenario
        for _, g in df.groupby("scenario"):
            assert g["rain_m3"].is_monotonic_increasing
        # every run is saved under its scenario and run id, with the sweep's table
        for r in df.itertuples():
            assert twin.load_result(r.scenario, r.run, "summary")["max_depth_m"] == pytest.approx(r.max_depth_m)
        stored = twin.load_result("base", df.attrs["sweep"], "sweep")
        assert stored["run"].tolist() == df["run"].tolist() and stored["storm"].tolist() == ["'2y'", "'20y'",
                                                                                           "'100y'"] * 2


def test_failed_runs_are_recorded_or_raised(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        df = twin.sweep("flood", {"storm": ["5y", "often"]}, duration="5min", on_error="record")
        assert df["run_status"].tolist() == ["done", "failed"]
        assert "return period" in df["run_error"].iloc[1] and np.isnan(df["max_depth_m"].iloc[1])
        with pytest.raises(ParameterError) as e:
            twin.sweep("flood", {"storm": ["5y", "often"]}, duration="5min")
        assert "run 2 of 2 of sweep" in "".join(getattr(e.value, "__notes__", []))


def test_a_crowd_sweep_over_crowd_sizes(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        areas = twin.layer("areas")
        plaza = str(areas.loc[areas["kind"] == "plaza", "area_id"].iloc[0])
        df = twin.sweep("crowd", {"agents": [10, 40]}, area=plaza, until=60)
    assert df["agents"].tolist() == [10, 40] and (df["run_status"] == "done").all()
    assert (df["sim_time_s"] <= 60).all() and "evacuated" in df
    assert set(df["status"]) <= {"evacuated", "time_limit", "jammed"}  # the crowd's own status


@pytest.mark.parametrize("call, err, match", [
    (lambda t: t.sweep("rain", {}), ParameterError, "engine must be one of"),
    (lambda t: t.sweep("flood", [("storm", ["5y"])]), ParameterError, "grid must be a dict"),
    (lambda t: t.sweep("flood", {"storm": "50y"}), ParameterError, r"write \['50y'\] for one value"),
    (lambda t: t.sweep("flood", {"storm": []}), ParameterError, "is empty"),
    (lambda t: t.sweep("flood", {"run": ["a"]}), ParameterError, "grid may not set 'run'"),
    (lambda t: t.sweep("flood", {"strom": ["5y"]}), TypeError, "did you mean 'storm'"),
    (lambda t: t.sweep("flood", {"storm": ["5y"]}, storm="5y"), ParameterError, "both in grid and given"),
    (lambda t: t.sweep("flood", {"storm": ["5y"]}, scenarios=["nope"]), ParameterError, "scenario 'nope' does not"),
    (lambda t: t.sweep("flood", {"storm": ["5y"]}, on_error="ignore"), ParameterError, "on_error must be"),
    (lambda t: t.sweep("flood", {"storm": ["5y"]}, executor=cf.ThreadPoolExecutor(1)), StoreError,
     "GeoPackage file takes one writer at a time"),
])
def test_bad_sweeps_are_refused_before_anything_runs(small_city_gpkg, call, err, match):
    with Twin.open(small_city_gpkg) as twin:
        with pytest.raises(err, match=match):
            call(twin)
        assert not len(twin.results())


@pytest.mark.postgis
@pytest.mark.slow
def test_parallel_sweep_on_postgis_gives_the_sequential_figures(pg_dsn):
    """Worker processes open the twin themselves (by DSN and schema) and save their runs; an equilibrium
    assignment is deterministic, so the parallel figures are the sequential ones."""
    import sample_city

    sample_city.build_into(pg_dsn, "small", seed=0)
    grid = {"demand_scale": [0.2, 0.4]}
    with Twin.open(pg_dsn) as twin, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq = twin.sweep("traffic", grid, mode="assign")
        with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
            par = twin.sweep("traffic", grid, mode="assign", executor=ex)
        assert (par["run_status"] == "done").all(), par["run_error"].tolist()
        assert par["tstt"].to_numpy() == pytest.approx(seq["tstt"].to_numpy(), rel=1e-9)
        for r in par.itertuples():
            assert twin.load_result("base", r.run, "summary")["tstt"] == pytest.approx(r.tstt)


def test_the_module_examples_run():
    import doctest

    import twin_core.sweep

    assert doctest.testmod(twin_core.sweep, optionflags=doctest.ELLIPSIS).failed == 0
