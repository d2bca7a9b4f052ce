"""The engine adapters' arguments, as a notebook gives them: numbers typed as text, ``save=False`` everywhere,
run ids checked whether saved or not, run ids shared between engines and analyses, a mistyped POI kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cim.results import check_run_free, list_results, save_result
from twin_core.errors import ParameterError, SchemaError
from twin_core.twin import Twin

QUICK_FLOOD = dict(storm="5y", duration="5min")


# -- 1. flood numbers given as text ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    # said "must be > 0 m, got '0.15'": the value is fine, its type is not
    ({"threshold": "0.15"}, r"threshold must be a number of metres .*got str '0.15'; write threshold=0.15"),
    # a bare ValueError "could not convert string to float" that named no argument
    ({"drainage_mm_h": "20mm/h"}, r"drainage_mm_h must be a number of mm/h.*got str '20mm/h'; write drainage_mm_h=20"),
    ({"infiltration_mm_h": "lots"}, r"infiltration_mm_h must be a number of mm/h.*got str 'lots'; write e\.g\. "
                                    r"infiltration_mm_h=20"),
    ({"peak_ratio": "0.4"}, r"peak_ratio must be a number .*got str '0.4'; write peak_ratio=0.4"),
    ({"threshold": None}, r"threshold must be a number of metres .*got NoneType None; write e\.g\. threshold=0.15"),
])
def test_flood_numbers_as_text_name_the_argument_unit_and_example(small_city_gpkg, kwargs, match):
    with Twin.open(small_city_gpkg) as twin:
        with pytest.raises(ParameterError, match=match):
            twin.flood(**QUICK_FLOOD, save=False, **kwargs)


def test_flood_numbers_as_numpy_scalars_and_grids_still_work(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        shape = twin.raster("dem").shape
        r = twin.flood(**QUICK_FLOOD, save=False, threshold=np.float32(0.2), drainage_mm_h=np.float64(5.0),
                       infiltration_mm_h=np.full(shape, 1.0), peak_ratio=np.float64(0.4))
        assert r.summary["threshold_m"] == pytest.approx(0.2) and type(r.summary["threshold_m"]) is float
        assert r.summary["drainage_m3"] > 0
        with pytest.raises(ParameterError, match="threshold .*must be > 0 m"):
            twin.flood(**QUICK_FLOOD, save=False, threshold=np.float64(-1.0))
        with pytest.raises(ParameterError, match="drainage_mm_h as a grid must hold numbers of mm/h"):
            twin.flood(**QUICK_FLOOD, save=False, drainage_mm_h=np.full(shape, "20"))


# -- 2. traffic save=False ------------------------------------------------------------------------------------
def test_traffic_save_false_stores_nothing_and_returns_the_run(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        a = twin.traffic(run="t1", demand_scale=0.1, save=False)
        assert a.run == "t1" and a.saved is False and a.summary["trips"] > 0 and len(a.links)
        assert "not saved (save=False)" in a._repr_html_()
        s = twin.traffic(run="t2", mode="simulate", demand_scale=0.1, route_iterations=1, until="10min", save=False)
        assert s.run == "t2" and s.saved is False and s.summary["mode"] == "simulate"
        assert not len(list_results(twin.store))  # nothing stored
        saved = twin.traffic(run="t3", demand_scale=0.1)  # the default still saves
        assert saved.saved is True and "summary" in set(list_results(twin.store, run="t3")["name"])


# -- 3. run ids checked whether saved or not -----------------------------------------------------------------
@pytest.mark.parametrize("bad", [5, Path("x"), "", "a b"])
@pytest.mark.parametrize("save", [True, False])
def test_a_bad_run_id_fails_saved_or_not(small_city_gpkg, bad, save):
    """With save=False, run=5 showed in the run's repr as <FloodRun 'base'/5 ...>."""
    from twin_core.adapters.analysis import run_sunlight, run_viewshed

    with Twin.open(small_city_gpkg) as twin:
        x0, y0, x1, y1 = twin.extent
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        calls = {
            "flood": lambda: twin.flood(run=bad, save=save, **QUICK_FLOOD),
            "crowd": lambda: twin.crowd("A001", agents=5, until="10s", run=bad, save=save),
            "access": lambda: twin.access("fire_station", run=bad, save=save),
            "traffic": lambda: twin.traffic(run=bad, demand_scale=0.1, save=save),
            "sunlight": lambda: run_sunlight(twin, bounds=(x0, y0, x0 + 20, y0 + 20), spacing=10, run=bad, save=save),
            "viewshed": lambda: run_viewshed(twin, centre, radius=20, run=bad, save=save),
        }
        for engine, call in calls.items():
            with pytest.raises(SchemaError, match="run id .* is not valid"):
                call()
        assert not len(list_results(twin.store))


# -- 4. a run id of another engine or analysis, from any of its results ----------------------------------------
def test_check_run_free_reads_every_result_not_only_the_summary(tmp_path):
    from cim.store import open_store

    store = open_store(str(tmp_path / "r.gpkg"), create=True, crs="EPSG:4544")
    try:
        save_result(store, "base", "s1", "sunlight_hours", np.zeros((2, 2)), meta={"analysis": "sunlight"})
        save_result(store, "base", "mine", "notes", pd.DataFrame({"a": [1]}))  # a user's result: no engine
        save_result(store, "base", "f1", "max_depth", np.zeros((2, 2)), meta={"engine": "simulation.flood"})
        with pytest.raises(ParameterError, match="run 's1' under scenario 'base' holds a sunlight run; a "
                                                 "simulation.flood run under the same id would overwrite or mix"):
            check_run_free(store, "base", "s1", "simulation.flood")
        with pytest.raises(ParameterError, match="holds a simulation.flood run; a sunlight run"):
            check_run_free(store, "base", "f1", "sunlight")
        check_run_free(store, "base", "s1", "sunlight")  # the same analysis again: its own id
        check_run_free(store, "base", "f1", "simulation.flood")
        check_run_free(store, "base", "f1", "flood")  # the short name is the same engine
        with pytest.raises(ParameterError, match=r"holds results saved by hand \(\['notes'\]\)"):
            check_run_free(store, "base", "mine", "simulation.flood")  # a user's results: not an engine's to write
        with pytest.raises(ParameterError, match="run id 's1' is taken under scenario 'base'"):
            check_run_free(store, "levee", "s1", "simulation.flood")  # one id would name two runs
    finally:
        store.close()


def test_an_engine_under_an_analysis_run_id_is_refused(small_city_gpkg):
    """A flood run under a sunlight run's id went through (analyses save no summary) and mixed the results."""
    from twin_core.adapters.analysis import run_viewshed

    with Twin.open(small_city_gpkg) as twin:
        x0, y0, x1, y1 = twin.extent
        twin.sunlight(bounds=(x0, y0, x0 + 20, y0 + 20), spacing=10, step_minutes=60, run="s1")
        for call in (lambda: twin.flood(run="s1", **QUICK_FLOOD),
                     lambda: twin.crowd("A001", agents=5, until="10s", run="s1"),
                     lambda: twin.traffic(run="s1", demand_scale=0.1),
                     lambda: twin.access("fire_station", run="s1")):
            with pytest.raises(ParameterError, match="run 's1' under scenario 'base' holds a sunlight run"):
                call()
        # the adapters called directly (as the CLI does) refuse it too, not only the Twin methods
        with pytest.raises(ParameterError, match="holds a sunlight run; a viewshed run"):
            run_viewshed(twin, ((x0 + x1) / 2, (y0 + y1) / 2), radius=20, run="s1")
        twin.flood(run="f1", **QUICK_FLOOD)
        with pytest.raises(ParameterError, match="holds a simulation.flood run; an access run"):
            twin.access("fire_station", run="f1")  # access checked no run id at all
        twin.access("fire_station", run="f1", save=False)  # nothing stored: nothing to mix
        twin.access("fire_station", run="a1")
        twin.access("fire_station", run="a1")  # its own id again
        runs = twin.runs()
    assert sorted(map(tuple, runs[["run", "engine"]].values.tolist())) == [("a1", "access"), ("f1", "flood"),
                                                                          ("s1", "sunlight")]
    assert runs.set_index("run").loc["s1", "results"] == ["sunlight_hours"]


# -- 5. a mistyped POI kind ----------------------------------------------------------------------------------
def test_access_unknown_poi_kind_names_the_kinds_and_the_close_one(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        kinds = sorted(set(twin.layer("pois")["kind"].dropna().astype(str)))
        assert "fire_station" in kinds
        with pytest.raises(ParameterError, match=r"no 'fire_statoin' in the pois layer \(kinds there: .*"
                                                 r"'fire_station'.*\); did you mean 'fire_station'\?") as e:
            twin.access("fire_statoin")
        assert "within" not in str(e.value)  # the typo, not a missing response time, is what is wrong
        with pytest.raises(ParameterError, match="did you mean 'fire_station'"):
            twin.access("fire_statoin", within="5min", save=False)
