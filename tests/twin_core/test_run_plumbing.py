"""How a run is named, checked and found again, the same way from every door: the Twin's methods, the adapters a
script calls and the ``twin`` CLI (which calls the adapters). Each test names what it did before."""

from __future__ import annotations

import datetime
import json
import unicodedata
import warnings

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from shapely import Point
from typer.testing import CliRunner

from cim.raster import Raster
from cim.results import claim_run, save_result
from twin_core.errors import LayerNotFoundError, ParameterError, SchemaError, TwinWarning
from twin_core.twin import Twin

from test_research_api import X0, Y0, _tiny_twin  # noqa: E402  (a flat 4 x 4 twin of 5 m cells)

CRS = "EPSG:4544"
BOUNDS = (X0, Y0, X0 + 20, Y0 + 20)
CENTRE = (X0 + 10, Y0 + 10)
runner = CliRunner()


def _cli(*args):
    from twin_core.cli import get_app

    return runner.invoke(get_app(), [str(a) for a in args])


# -- 1. one claim_run ------------------------------------------------------------------------------------------
def test_claim_run_makes_checks_and_refuses_like_every_engine(tmp_path):
    from cim.store import open_store

    store = open_store(str(tmp_path / "r.gpkg"), create=True, crs=CRS)
    try:
        save_result(store, "base", "storm50", "max_depth", np.zeros((2, 2)), meta={"engine": "simulation.flood"})
        save_result(store, "café", "s1", "sunlight_hours", np.zeros((2, 2)), meta={"analysis": "sunlight"})
        assert claim_run(store, None, None, "simulation.flood").startswith("flood-")  # the engine's short name
        assert claim_run(store, None, None, "sunlight", "sun").startswith("sun-")
        assert claim_run(store, None, "storm50", "simulation.flood") == "storm50"  # its own id again
        assert claim_run(store, None, "storm50", "flood") == "storm50"
        # another scenario's id: one id would name two runs (item 2 of the user review)
        with pytest.raises(ParameterError, match="run id 'storm50' is taken under scenario 'base'; "):
            claim_run(store, "levee", "storm50", "sunlight")
        assert claim_run(store, "levee", "storm50", "sunlight", save=False) == "storm50"  # nothing stored
        with pytest.raises(ParameterError, match="run 'storm50' under scenario 'base' holds a simulation.flood run; "
                                                 "a sunlight run under the same id would overwrite or mix"):
            claim_run(store, "base", "storm50", "sunlight")
        assert claim_run(store, None, "storm50", "sunlight", save=False) == "storm50"  # nothing stored, no mix
        # the scenario name typed in another Unicode form is the same scenario
        with pytest.raises(ParameterError, match="holds a sunlight run"):
            claim_run(store, unicodedata.normalize("NFD", "café"), "s1", "simulation.flood")
        for save in (True, False):  # a bad id fails saved or not
            with pytest.raises(SchemaError, match="run id 'a b' is not valid"):
                claim_run(store, None, "a b", "simulation.flood", save=save)
    finally:
        store.close()


def test_twin_sunlight_refuses_a_taken_run_id_in_the_engines_words(tmp_path):
    """Twin.sunlight/viewshed checked the id their own way (Twin._check_run_for) and said it otherwise than the
    engines and the adapters: "holds a simulation.flood run (result 'max_depth'); a sunlight under the same id
    would mix with it"."""
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.save_result("base", "storm50", "max_depth", np.zeros((2, 2)), meta={"engine": "simulation.flood"})
        for call in (lambda: twin.sunlight(bounds=BOUNDS, spacing=10, run="storm50"),
                     lambda: twin.viewshed(CENTRE, radius=10, run="storm50")):
            with pytest.raises(ParameterError) as info:
                call()
            what = "sunlight" if "sunlight" in str(info.value).split(";")[1] else "viewshed"
            assert str(info.value) == (
                f"run 'storm50' under scenario 'base' holds a simulation.flood run; a {what} run under the same id "
                "would overwrite or mix with its results (such as 'max_depth'). Give this run another id, or delete "
                "run 'storm50' first: twin.delete_run('storm50', scenario='base') (CLI: twin runs TARGET storm50 "
                "--delete --scenario base)")


# -- 2. the input checks in the adapters, for the CLI and scripts too -------------------------------------------
@pytest.mark.parametrize("agents, match", [
    (0, r"agents must be at least 1 \(a whole number of people\), got 0"),  # was "no agents to simulate"
    ("abc", r"agents must be a whole number of people, got str 'abc'$"),
    ("20", r"agents must be a whole number of people, got str '20'; write agents=20"),  # was "n must be ..."
    (20.5, r"agents must be a whole number of people, got float 20.5"),
    (True, r"agents must be a whole number of people, got bool True"),
])
def test_run_crowd_checks_agents_as_twin_crowd_does(small_city_gpkg, agents, match):
    """Only Twin.crowd read agents (Twin._whole); run_crowd, which scripts and the CLI call, answered with the
    engine's "n must be a whole number of agents (int)" (a name the caller never typed) or, for 0, ran into
    "no agents to simulate" after building the area."""
    from twin_core.adapters.crowd import run_crowd

    with Twin.open(small_city_gpkg) as twin:
        with pytest.raises(ParameterError, match=match):
            run_crowd(twin, "A001", agents=agents, until="5s", save=False)
        with pytest.raises(ParameterError, match=match):
            twin.crowd("A001", agents=agents, until="5s", save=False)


def test_run_crowd_takes_a_whole_float(small_city_gpkg):
    """np.linspace's 20.0 went through Twin.crowd only; run_crowd refused it."""
    from twin_core.adapters.crowd import run_crowd

    with Twin.open(small_city_gpkg) as twin:
        r = run_crowd(twin, "A001", agents=np.float64(20.0), until="5s", save=False)
    assert r.summary["agents"] == 20


def test_cli_crowd_agents_zero_names_the_option(small_city_gpkg):
    """The CLI checks --agents with the adapter's rule, in the option's name, before the area is built."""
    res = _cli("crowd", small_city_gpkg, "--area", "A001", "--agents", "0")
    assert isinstance(res.exception, ParameterError), res.output
    assert str(res.exception) == "--agents must be at least 1 (a whole number of people), got 0"


def test_a_crowd_without_a_seed_runs_and_records_none(small_city_gpkg):
    """seed=None (a fresh random placement) ran before the seed was recorded, then failed after the whole run."""
    with Twin.open(small_city_gpkg) as twin:
        r = twin.crowd("A001", agents=10, until=20, seed=None, run="unseeded")
        assert r.summary["seed"] is None and twin.load_result("base", "unseeded", "summary")["seed"] is None
        with pytest.raises(ParameterError, match="seed must be a whole number, got str '7'; write seed=7"):
            twin.crowd("A001", agents=10, until=20, seed="7", save=False)


def test_run_sunlight_reads_a_notebooks_dates_times_and_numbers(tmp_path):
    """Only Twin.sunlight turned a Timestamp, a datetime.time or a number typed as text into what the analysis
    reads: run_sunlight stored the day as "2026-01-20 09:00:00+08:00" and failed on spacing="10" with a
    TypeError ("'>' not supported between instances of 'str' and 'int')."""
    from twin_core.adapters.analysis import run_sunlight

    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        ras, run = run_sunlight(twin, pd.Timestamp("2026-01-20 09:00", tz="Asia/Shanghai"), datetime.time(8),
                                datetime.time(16), bounds=BOUNDS, spacing=10, run="sun")
        meta = twin.results(run="sun")["meta"].iloc[0]
        assert (meta["date"], meta["start"], meta["end"]) == ("2026-01-20", "08:00", "16:00")
        with pytest.raises(ParameterError, match=r"spacing must be a number of metres, got str '10'; write "
                                                 r"spacing=10"):
            run_sunlight(twin, bounds=BOUNDS, spacing="10", save=False)


def test_run_viewshed_reads_a_point_and_warns_and_hints_as_twin_viewshed(tmp_path):
    """run_viewshed (and `twin analysis viewshed`) refused a shapely Point, ran a radius of 0.002 (degrees)
    without a word and answered a longitude/latitude observer with only "outside the DEM"."""
    from twin_core.adapters.analysis import run_viewshed

    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        ras, _ = run_viewshed(twin, Point(CENTRE), radius=10, save=False)
        assert ras.shape == (4, 4)
        with pytest.warns(TwinWarning, match=r"radius=0.002 m is less than one DEM cell \(5 m\)"):
            run_viewshed(twin, CENTRE, radius=0.002, save=False)
        with pytest.raises(ParameterError, match="looks like longitude/latitude: transform it first"):
            run_viewshed(twin, (104.06, 30.66), save=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", TwinWarning)  # a radius the check refuses is not also warned of
            with pytest.raises(ParameterError, match="radius must be a finite distance > 0"):
                run_viewshed(twin, CENTRE, radius=0.0, save=False)
    res = _cli("analysis", "viewshed", str(tmp_path / "t.gpkg"), "--x", "104.06", "--y", "30.66")
    assert isinstance(res.exception, ParameterError) and "looks like longitude/latitude" in str(res.exception)


# -- 3. one result lookup --------------------------------------------------------------------------------------
T = Affine(5.0, 0.0, 410000.0, 0.0, -5.0, 3395100.0)


@pytest.fixture
def stored(tmp_path):
    path = str(tmp_path / "s.gpkg")
    with Twin.create(path, crs=CRS) as twin:
        depth = np.arange(12, dtype="float32").reshape(3, 4) / 10
        for scen in ("base", "works"):
            twin.save_result(scen, "flood-1", "max_depth", Raster(depth, T, CRS, nodata=None, unit="m"))
            twin.save_result(scen, "flood-1", "depth_snapshots", np.stack([depth * 0, depth]),
                             meta={"snapshot_times_s": [0.0, 600.0], "transform": list(T)[:6], "crs": CRS})
        twin.save_result("base", "flood-2", "max_depth", Raster(depth, T, CRS, nodata=None, unit="m"))
        twin.save_result("base", "flood-2", "depth_snapshots", np.stack([depth * 0, depth]),
                         meta={"snapshot_times_s": [0.0, 600.0], "transform": list(T)[:6], "crs": CRS})
    return path


def test_view_snapshots_and_export_find_a_result_alike(stored, tmp_path):
    """view(result=...) listed the run's results as a Python list, export_result as text, snapshots its own way:
    one mistyped name, three answers."""
    with Twin.open(stored) as twin:
        calls = {"view": lambda: twin.view(result=("flood-2", "depth_snapshot"), time=0, hillshade=False),
                 "snapshots": lambda: twin.snapshots("flood-2", "depth_snapshot"),
                 "export": lambda: twin.export_result("flood-2", "depth_snapshot", tmp_path / "d.tif")}
        said = {}
        for what, call in calls.items():
            with pytest.raises(LayerNotFoundError) as info:
                call()
            said[what] = str(info.value)
    assert set(said.values()) == {"run 'flood-2' has no result 'depth_snapshot'; did you mean 'depth_snapshots'?; "
                                  "its results: depth_snapshots, max_depth"}, said


def test_a_run_under_several_scenarios_is_named_for_python_and_the_cli(stored, tmp_path):
    """"name one (--scenario)" told a notebook user a CLI flag only; and "`twin runs` lists the runs"."""
    with Twin.open(stored) as twin:
        for call in (lambda: twin.view(result="flood-1", hillshade=False), lambda: twin.snapshots("flood-1"),
                     lambda: twin.export_result("flood-1", "max_depth", tmp_path / "m.tif")):
            with pytest.raises(LayerNotFoundError, match=r"run 'flood-1' is under several scenarios \['base', "
                                                         r"'works'\]; name one: scenario='base' \(CLI: --scenario "
                                                         r"base\)"):
                call()
        with pytest.raises(LayerNotFoundError, match=r"no run 'flood-3' in this twin; did you mean 'flood-2'\?; "
                                                     r"twin.runs\(\) \(CLI: `twin runs`\) lists the runs"):
            twin.snapshots("flood-3")
        assert twin.snapshots("flood-1", scenario="works").meta == {"scenario": "works", "run": "flood-1"}


def test_runs_created_is_a_utc_datetime(stored):
    """runs()["created"] was the ISO text of the first result: no .dt, no time arithmetic, and sorted right only
    while every result wrote the same form."""
    with Twin.open(stored) as twin:
        runs = twin.runs()
    assert isinstance(runs["created"].dtype, pd.DatetimeTZDtype) and str(runs["created"].dt.tz) == "UTC"
    assert runs["created"].is_monotonic_increasing
    assert (pd.Timestamp.now(tz="UTC") - runs["created"]).max() < pd.Timedelta("10min")
    res = _cli("runs", stored, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["runs"]
    assert [pd.Timestamp(r["created"]) for r in out] == runs["created"].tolist()  # ISO text, as before
    human = _cli("runs", stored)
    assert runs["created"].iloc[0].strftime("%Y-%m-%d %H:%M:%S") in human.stdout


def test_runs_created_when_no_run_is_stored(tmp_path):
    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        runs = twin.runs()
    assert runs.empty and isinstance(runs["created"].dtype, pd.DatetimeTZDtype)


# -- 4. one way to read a stack of snapshots -------------------------------------------------------------------
def test_a_crowd_density_is_stored_as_a_flood_stack_and_old_runs_still_read(small_city_gpkg, tmp_path):
    """A crowd's density kept the engine's rows from the south and its grid only in the run's summary, a flood's
    depth rows from the north with its grid in the array's meta: two forms for every reader to know (the map
    server, which reads the meta, could not place a crowd's density at all). New runs store it as the flood
    does; runs stored before (rows from the south, grid in the summary) read the same."""
    import rasterio

    from cim.results import list_results
    from twin_core.adapters.crowd import run_crowd

    with Twin.open(small_city_gpkg) as twin:
        r = run_crowd(twin, "A001", agents=30, until="20s", run="c-new")
        engine = np.asarray(r.result.density, "float32")  # rows from the south
        meta = twin.results(run="c-new", name="density")["meta"].iloc[0]
        assert meta["crs"] == twin.crs and meta["unit"] == "persons/m2"
        assert meta["snapshot_times_s"] == [float(t) for t in r.result.density_times]
        max_density = twin.load_result("base", "c-new", "max_density")
        assert meta["transform"] == list(max_density.transform)[:6]
        np.testing.assert_array_equal(twin.load_result("base", "c-new", "density"), engine[:, ::-1, :])
        new = twin.snapshots("c-new")
        np.testing.assert_array_equal(new.data, engine[:, ::-1, :])  # north-up
        np.testing.assert_array_equal(new.data.max(axis=0), max_density.data)
        assert new.transform == max_density.transform
        # the same run as an older version stored it: the engine's rows, the density's meta only who wrote it
        twin.save_result("base", "c-old", "density", engine, meta={"engine": "simulation.crowd"})
        twin.save_result("base", "c-old", "summary", twin.load_result("base", "c-new", "summary"),
                         meta={"engine": "simulation.crowd"})
        assert set(list_results(twin.store, run="c-old")["meta"].iloc[0]) == {"engine"}
        old = twin.snapshots("c-old")
        np.testing.assert_array_equal(old.data, new.data)
        assert (old.transform, old.crs, old.unit) == (new.transform, new.crs, new.unit)
        np.testing.assert_array_equal(old.times_s, new.times_s)
        for run in ("c-new", "c-old"):  # and both export alike, north-up
            out = twin.export_result(run, "density", tmp_path / f"{run}.tif")
            with rasterio.open(out) as ds:
                np.testing.assert_array_equal(ds.read(), new.data)
                assert ds.transform == new.transform


def test_the_flood_cascades_read_snapshots_as_twin_snapshots(tmp_path):
    """load_depth_snapshots (what traffic and the crowd read a flood by) had its own reader beside
    Twin.snapshots."""
    from twin_core.adapters.flood import load_depth_snapshots

    with _tiny_twin(str(tmp_path / "t.gpkg")) as twin:
        twin.flood(storm="5y", duration="5min", run="f1")
        depth, times, transform = load_depth_snapshots(twin, "base", "f1", missing="no roads close")
        stack = twin.snapshots("f1")
        assert depth.dtype == np.float64 and transform == stack.transform
        np.testing.assert_array_equal(depth, stack.data)
        np.testing.assert_array_equal(times, stack.times_s)
        # a stack stored by hand with its transform and times but no CRS: the twin's, for the cascade (as before)
        # and for twin.snapshots (which said "stored without a grid")
        twin.save_result("base", "f4", "depth_snapshots", stack.data,
                         meta={"snapshot_times_s": list(stack.times_s), "transform": list(stack.transform)[:6]})
        assert twin.snapshots("f4").crs == twin.crs
        np.testing.assert_array_equal(load_depth_snapshots(twin, "base", "f4", missing="-")[0], depth)
        # a stack whose meta lost its times is incomplete, in the cascade's words
        twin.save_result("base", "f2", "depth_snapshots", stack.data,
                         meta={"engine": "simulation.flood", "transform": list(stack.transform)[:6], "crs": CRS})
        with pytest.raises(ParameterError, match="the depth snapshots of flood run 'f2' are incomplete"):
            load_depth_snapshots(twin, "base", "f2", missing="no roads close")
        with pytest.raises(ParameterError, match="flood run 'f3' has no depth snapshots, so no roads close"):
            load_depth_snapshots(twin, "base", "f3", missing="no roads close")


def test_the_map_server_places_a_crowd_density_as_its_max_density(small_city_gpkg):
    """The map server reads an array's grid from its meta: a crowd's density had none there and was refused
    ("result 'density' has grid (113, 170), the 'dem' raster (200, 200)")."""
    from fastapi.testclient import TestClient

    from twin_core.adapters.crowd import run_crowd
    from viewer.app import create_app
    from viewer.settings import Settings

    with Twin.open(small_city_gpkg) as twin:
        run_crowd(twin, "A001", agents=30, until="20s", run="c1")
    with TestClient(create_app(Settings(store=small_city_gpkg)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as client:
        dens = client.get("/api/results/base/c1/density/meta?step=0")
        top = client.get("/api/results/base/c1/max_density/meta")
    assert dens.status_code == 200, dens.text
    assert dens.json()["bounds"] == top.json()["bounds"] and dens.json()["steps"] >= 2


def test_the_map_server_places_an_older_crowd_density_north_up(tmp_path, save_crowd_density):
    """A crowd run stored before 2026-12-05 keeps its density's grid in the summary, rows from the south; the map
    server read only an array's own meta (refused it, or borrowed the DEM's grid)."""
    from fastapi.testclient import TestClient
    from pyproj import Transformer

    from viewer.app import create_app
    from viewer.settings import Settings

    path = str(tmp_path / "t.gpkg")
    with Twin.create(path, crs="EPSG:4544") as twin:
        save_crowd_density(twin)  # 2 persons/m2 on the southernmost row at the second time
    to_ll = Transformer.from_crs("EPSG:4544", "EPSG:4326", always_xy=True)
    with TestClient(create_app(Settings(store=path)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as client:
        meta = client.get("/api/results/base/crowd-1/density/meta?step=1")
        assert meta.status_code == 200, meta.text
        assert meta.json()["times_s"] == [0.0, 2.0] and meta.json()["steps"] == 2  # times from its summary too
        values = {}
        for row, y in (("south", 3395000.5), ("north", 3395002.5)):
            lon, lat = to_ll.transform(410001.5, y)
            r = client.get("/api/results/base/crowd-1/density/value", params={"lon": lon, "lat": lat, "step": 1})
            assert r.status_code == 200, r.text
            values[row] = r.json()["value"]
    assert values == {"south": 2.0, "north": 0.0}
