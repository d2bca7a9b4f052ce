"""The Python API as a researcher meets it on day one, with the README and the docstrings only: opening a
twin by its path, what a notebook shows of a run, tab completion and Shift-Tab, and the usual slips (a
mistyped scenario, layer or keyword, longitude/latitude for metres, seconds for hours), each of which failed
unclearly or did the wrong thing without a word."""

from __future__ import annotations

import contextlib
import inspect
import pathlib
import re
import warnings

import numpy as np
import pytest

from twin_core.errors import (LayerNotFoundError, ParameterError, RasterError, ScenarioError,
                              StoreConnectionError, TwinWarning)
from twin_core.twin import Twin

from test_research_api import X0, Y0, _tiny_twin  # noqa: E402  (the same flat twin)

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


@contextlib.contextmanager
def _no_twin_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        yield


# -- opening ---------------------------------------------------------------------------------------------
def test_a_path_opens_the_twin(tmp_path):
    """Twin("city.gpkg") was accepted, then twin.results() failed with
    "AttributeError: 'str' object has no attribute 'get_meta'"."""
    path = tmp_path / "t.gpkg"
    _tiny_twin(str(path)).close()
    with Twin(str(path)) as twin:
        assert twin.crs == "EPSG:4544" and len(twin.results()) == 0
    with Twin(path) as twin:  # a pathlib.Path too
        assert twin.rasters() == ["dem", "manning"]
        with Twin(twin.store) as again:  # an open store, as before
            assert again.store is twin.store
    with pytest.raises(StoreConnectionError, match="does not exist"):
        Twin(str(tmp_path / "nope.gpkg"))
    with pytest.raises(TypeError, match=r"a \.gpkg path, a postgresql:// DSN or a cim.store.Store, got NoneType"):
        Twin(None)


def test_create_on_an_existing_twin_keeps_its_time_zone(tmp_path):
    """Twin.create() on an existing twin (a notebook cell run twice) reset its time zone to Asia/Shanghai."""
    path = str(tmp_path / "t.gpkg")
    Twin.create(path, timezone="Asia/Urumqi").close()
    with Twin.create(path) as twin:
        assert twin.timezone == "Asia/Urumqi"
    with Twin.create(path, timezone="Asia/Shanghai") as twin:
        assert twin.timezone == "Asia/Shanghai"
    with Twin.create(str(tmp_path / "new.gpkg")) as twin:
        assert twin.timezone == "Asia/Shanghai"


# -- what tab completion, help() and a notebook show --------------------------------------------------------
def test_tab_completion_offers_twin():
    """dir(twin_core) had no 'Twin' (it is loaded lazily), so twin_core.Tw<Tab> completed nothing."""
    import twin_core

    assert {"Twin", "errors", "__version__"} <= set(dir(twin_core))


@pytest.mark.parametrize("method, names", [
    ("flood", {"storm", "duration", "until", "threshold", "drainage_mm_h", "buildings", "save", "progress"}),
    ("traffic", {"mode", "period", "demand_scale", "until", "flooded_by", "route_iterations", "method"}),
    ("crowd", {"agents", "density", "scenario", "run", "until", "model", "ifc", "storey", "closed_exits"}),
])
def test_engine_methods_show_their_keywords(method, names):
    """help(twin.flood) and Jupyter's Shift-Tab showed only (scenario=None, run=None, **kwargs)."""
    sig = inspect.signature(getattr(Twin, method))
    assert names <= set(sig.parameters), names - set(sig.parameters)
    assert not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    assert sig.parameters["until"].default is not inspect.Parameter.empty
    doc = getattr(Twin, method).__doc__
    assert "Returns" in doc and "Parameters" in doc


def test_scenarios_show_themselves(tmp_path):
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.scenarios.create("levee")
        twin.scenarios.create("works")
        assert repr(twin.scenarios) == f"<Scenarios ['levee', 'works'] on {twin.store.uri}>"  # was <... at 0x7f..>
        assert list(twin.scenarios) == ["levee", "works"] and len(twin.scenarios) == 2


def test_runs_show_a_line_and_a_table_not_every_array(small_city_gpkg):
    """repr() of a flood run printed every array of its result (thousands of lines in a notebook); a crowd
    run's every agent's exit time."""
    with Twin.open(small_city_gpkg) as twin, warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        fr = twin.flood(storm="5y", duration="5min", run="f1")
        cr = twin.crowd("A001", agents=20, until="1min", run="c1")
        unsaved = twin.flood(storm="5y", duration="5min", save=False)
    for run, engine in ((fr, "flood"), (cr, "crowd")):
        text = repr(run)
        assert len(text) < 300 and "\n" not in text, text
        assert text.startswith(f"<{type(run).__name__} 'base'/'{run.run}' {engine}"), text
        html = run._repr_html_()
        assert "<table>" in html and "twin.load_result(&#x27;base&#x27;" in html
    assert re.search(r"max_depth_m=[0-9.]+", repr(fr)) and "evacuation_time_s=" in repr(cr)
    assert "not saved" in unsaved._repr_html_()


# -- finding stored results ----------------------------------------------------------------------------------
def test_runs_lists_one_row_per_run_and_results_filters_by_name(tmp_path):
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.flood(storm="2y", duration="10min", run="f1")
        twin.save_result("levee", "mine", "note", {"a": 1})
        runs = twin.runs()
        assert runs[["scenario", "run", "engine"]].values.tolist() == [["base", "f1", "flood"],
                                                                       ["levee", "mine", ""]]
        assert "max_depth" in runs["results"].iloc[0] and runs["results"].iloc[1] == ["note"]
        snap = twin.results(run="f1", name="depth_snapshots")
        assert len(snap) == 1 and snap["meta"].iloc[0]["snapshot_times_s"][0] == 0.0
        assert twin.runs("levee")["run"].tolist() == ["mine"]


def test_a_results_filter_that_finds_nothing_by_a_typo_warns(tmp_path):
    """twin.results("storm_rsh") answered an empty table without a word."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.scenarios.create("storm_rush")
        twin.scenarios.create("quiet")
        twin.save_result("storm_rush", "demo-storm", "summary", {"a": 1})
        with pytest.warns(TwinWarning, match=r"no scenario 'storm_rsh'; did you mean 'storm_rush'\?"):
            assert twin.results("storm_rsh").empty
        with pytest.warns(TwinWarning, match=r"no run is called 'demo-strom'; did you mean 'demo-storm'\?"):
            assert twin.results(run="demo-strom").empty
        with pytest.warns(TwinWarning, match=r"no result is called 'sumary'; did you mean 'summary'\?"):
            assert twin.results(name="sumary").empty
        with _no_twin_warnings():  # a scenario that exists but holds no results yet: no mistake
            assert twin.results("quiet").empty and twin.runs("quiet").empty
            assert len(twin.results("storm_rush")) == 1


def test_layer_lists_hide_the_result_payloads(tmp_path):
    """twin.layers() and twin.rasters() listed res_<hash> tables of stored results beside 'buildings'."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.flood(storm="2y", duration="10min", run="f1")
        assert twin.rasters() == ["dem", "manning"]
        assert any(n.startswith("res_") for n in twin.rasters(results=True))
        assert not any(n.startswith("res_") for n in twin.layers())


# -- slips -----------------------------------------------------------------------------------------------------
def test_a_mistyped_scenario_names_the_close_one(tmp_path):
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.scenarios.create("storm_rush")
        for call in (lambda: twin.scenario("storm-rush"), lambda: twin.raster("dem", scenario="storm-rush"),
                     lambda: twin.scenarios.diff("base", "storm-rush"),
                     lambda: twin.flood("storm-rush", storm="2y", duration="10min")):
            with pytest.raises(ScenarioError, match=r"did you mean 'storm_rush'\?"):
                call()
        with pytest.raises(ParameterError, match=r"did you mean 'storm_rush'\?"):
            twin.sweep("flood", {"storm": ["2y"]}, scenarios=["storm-rush"], duration="10min")
        with pytest.raises(ScenarioError, match=r"^no scenario 'zzz'; scenarios here: \['storm_rush'\] \(or 'base'\)$"):
            twin.scenario("zzz")  # nothing close: no guess


def test_a_mistyped_layer_or_raster_names_the_close_one_without_result_tables(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        twin.flood(storm="2y", duration="5min", run="f1")
        with pytest.raises(LayerNotFoundError, match=r"did you mean 'buildings'\?") as e:
            twin.layer("buildingz")
        assert "res_" not in str(e.value)
        with pytest.raises(LayerNotFoundError, match=r"did you mean 'dem'\?") as e:
            twin.raster("dme")
        assert "res_" not in str(e.value) and "twin.load_result" in str(e.value)
        with pytest.raises(TypeError, match=r"Twin.layer\(\) .*'bbbox': did you mean 'bbox'\?"):
            twin.layer("pois", bbbox=(0, 0, 1, 1))  # was "GeoPackageStore.read_layer() got an unexpected ..."


def test_longitude_latitude_for_metres_is_caught(small_city_gpkg):
    """A lon/lat bbox found nothing without a word; lon/lat sunlight bounds computed and saved a grid of
    nothing."""
    lonlat = (104.06, 30.66, 104.07, 30.67)
    with Twin.open(small_city_gpkg) as twin:
        with pytest.warns(TwinWarning, match="looks like longitude/latitude"):
            assert twin.layer("buildings", bbox=lonlat).empty
        with pytest.raises(ParameterError, match="not longitude/latitude"):
            twin.sunlight(bounds=lonlat, spacing=10)
        with pytest.raises(RasterError, match="do not overlap the raster.*look like longitude/latitude"):
            twin.raster("dem", bounds=lonlat)
        with _no_twin_warnings():  # a box inside the twin that finds nothing is no mistake
            x0, y0, _, _ = twin.extent
            twin.layer("pois", bbox=(x0, y0, x0 + 1, y0 + 1))
        assert twin.results().empty


def test_a_where_value_no_feature_has_warns_with_the_close_match(small_city_gpkg):
    """twin.layer("pois", where={"kind": "schol"}) found nothing without a word (the README says it warns)."""
    with Twin.open(small_city_gpkg) as twin:
        with pytest.warns(TwinWarning, match=r"no feature of 'pois' has kind = 'schol'.*did you mean 'school'\?"):
            assert twin.layer("pois", where={"kind": "schol"}).empty
        with _no_twin_warnings():  # a value the layer has, with another filter that finds nothing: no mistake
            assert twin.layer("buildings", where={"use": "residential", "height_m": (">", 10000)}).empty


def test_raster_patch_with_a_unit_in_the_number_is_a_scenario_error(tmp_path):
    """delta="2m" failed as a bare ValueError: "could not convert string to float: '2m'"."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        s = twin.scenarios.create("levee")
        bounds = (X0, Y0, X0 + 10, Y0 + 10)
        with pytest.raises(ScenarioError, match=r"delta must be a finite number .*got '2m'; e.g. delta=2.0"):
            s.patch_raster("dem", bounds, delta="2m")
        with pytest.raises(ScenarioError, match="values must be finite numbers"):
            s.patch_raster("dem", bounds, values="high")
        s.patch_raster("dem", bounds, delta=2.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": 15}, r"threshold=15 is in metres.*write threshold=0.15"),
    ({"duration": 1}, r"duration=1 is 1 s of rain: a bare number is seconds; write e.g. duration='1h'"),
])
def test_flood_unit_slips_warn(tmp_path, kwargs, match):
    """threshold=15 (centimetres meant) reported no flooded feature; duration=1 (an hour meant) rained 1 s."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        with pytest.warns(TwinWarning, match=match):
            twin.flood(storm="2y", **{"duration": "10min", **kwargs}, save=False)


# -- crowd on an IFC storey, analyses as runs ----------------------------------------------------------------------
def test_crowd_on_an_ifc_storey_from_the_twin(small_city_gpkg, tmp_path):
    """A storey could only be evacuated through the adapter's storey_area() + walkable=, and without
    twin_crs it stayed in model coordinates while its results were saved as the twin's CRS."""
    from bim_import.samples import BoxBuilding, write_box_building
    from twin_core.adapters.crowd import storey_area

    ifc = write_box_building(BoxBuilding(20, 10, 2, 3.0, 409700.0, 3390900.0), tmp_path / "box.ifc")
    with Twin.open(small_city_gpkg) as twin:
        run = twin.crowd(ifc=ifc, storey=0, agents=20, until="2min", run="box")
        assert run.summary["status"] == "evacuated" and run.summary["storey"]
        assert run.summary["crs"] == twin.crs and run.summary["ifc"] == str(ifc)
        top = twin.load_result("base", "box", "max_density")
        x0, y0, x1, y1 = top.bounds
        assert x0 < 409720 and x1 > 409700 and y0 < 3390910 and y1 > 3390900  # where the building is
        with pytest.raises(ParameterError, match="storey= and anchor= go with ifc="):
            twin.crowd("A001", storey=0, agents=5)
        with pytest.raises(ParameterError, match="not area and ifc"):
            twin.crowd("A001", ifc=ifc, storey=0, agents=5)
        df = twin.sweep("crowd", {"agents": [5, 10]}, ifc=ifc, storey=0, until=30)
        assert (df["run_status"] == "done").all() and df["storey"].nunique() == 1
        walk, info = storey_area(str(ifc), 0)  # model coordinates
        with pytest.warns(TwinWarning, match="model's own coordinates"):
            twin.crowd(walkable=walk, info=info, agents=5, until=30, run="local")


def test_the_map_servers_crowd_jobs_cannot_name_a_file_to_read():
    """The map server takes a crowd job's parameters from run_crowd's keywords: ifc= lives on Twin.crowd
    only, or a web client could have the server read any file as an IFC model."""
    from twin_core.adapters.crowd import run_crowd

    assert not {"ifc", "storey", "anchor"} & set(inspect.signature(run_crowd).parameters)


def test_sunlight_and_viewshed_are_runs_like_the_engines(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        sun = twin.sunlight("2026-01-20", bounds=(409500, 3390700, 409600, 3390800), spacing=20, step_minutes=60)
        assert (sun.scenario, sun.summary["engine"]) == ("base", "sunlight") and sun.result.shape == (5, 5)
        assert 0 <= sun.summary["mean_hours"] <= 8 and sun.summary["date"] == "2026-01-20"
        assert twin.load_result("base", sun.run, "sunlight_hours").shape == (5, 5)
        b = twin.layer("buildings")
        tall = b.loc[b["height_m"].idxmax()]
        p = tall.geometry.representative_point()
        with pytest.warns(TwinWarning, match=rf"inside building {tall['building_id']}"):
            view = twin.viewshed((p.x, p.y), radius=100, observer_height=1.6, save=False)
        assert view.summary["visible_fraction"] < 0.1 and view.run.startswith("view-") and "viewshed" in repr(view)
        assert twin.runs()["engine"].tolist() == ["sunlight"]


# -- sweeps --------------------------------------------------------------------------------------------------------
def test_a_sweep_records_its_fixed_parameters(tmp_path):
    """A stored sweep of duration="5min" runs did not say so anywhere."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        df = twin.sweep("flood", {"storm": ["2y", "5y"]}, duration="5min")
        assert df.attrs["fixed"] == {"duration": "5min"}
        meta = twin.results(run=df.attrs["sweep"], name="sweep")["meta"].iloc[0]
        assert meta["fixed"] == {"duration": "'5min'"}


@pytest.mark.postgis
def test_a_parallel_sweep_records_a_failed_run(pg_dsn):
    """A parallel member that failed under on_error="record" raised UnboundLocalError ('t0') instead."""
    import concurrent.futures as cf

    with _tiny_twin(pg_dsn) as twin, cf.ThreadPoolExecutor(2) as ex:
        df = twin.sweep("flood", {"storm": ["2y", "often"]}, duration="5min", on_error="record", executor=ex)
    assert df["run_status"].tolist() == ["done", "failed"]
    assert "return period" in df["run_error"].iloc[1] and np.isnan(df["wall_s"].iloc[1])


# -- the README ----------------------------------------------------------------------------------------------------
def test_the_readme_notebook_block_runs(small_city_gpkg, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    quick = next(b for b in blocks if 'Twin.open("city.gpkg")' in b)
    notebook = next(b for b in blocks if 'with Twin("city.gpkg") as twin:' in b)
    (tmp_path / "city.gpkg").write_bytes(pathlib.Path(small_city_gpkg).read_bytes())
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(quick, "README.md", "exec"), ns)
    ns["twin"].close()
    monkeypatch.setattr("builtins.help", lambda obj: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)  # the traffic engine's own load warnings
        exec(compile(notebook, "README.md", "exec"), ns)
    assert ns["flood"].summary["max_depth_m"] > 0 and len(ns["gauges"])
    assert ns["rush"].summary["flooded_by"] == ns["flood"].run and ns["plaza"].summary["evacuated"] > 0
    assert ns["view"].summary["visible_fraction"] > 0.05  # the README's observer stands in the open
    assert set(ns["runs"]["engine"]) == {"flood", "traffic", "crowd", "sunlight", "viewshed"}


def test_traffic_run_shows_one_line_not_its_link_layer(tmp_path):
    """repr(TrafficRun) printed the whole link layer and the engine's arrays (thousands of lines)."""
    from twin_core.adapters.traffic import TrafficRun

    r = TrafficRun({"scenario": "base", "run": "t1", "engine": "traffic", "mode": "assign", "period": "am",
                    "trips": 3145.0, "tstt": 1234.5678, "rgap": 1e-4, "converged": True},
                   result=object(), links=list(range(100000)))
    text = repr(r)
    assert text == ("<TrafficRun 'base'/'t1' traffic: mode=assign, period=am, trips=3145, tstt=1235, "
                    "rgap=0.0001, converged=True>")
    assert "twin.load_result(&#x27;base&#x27;, &#x27;t1&#x27;, name)" in r._repr_html_()
