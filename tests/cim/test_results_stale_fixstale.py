"""Stale runs (cim.results.stale_results / stale_runs, shared by the map server's mark_stale, twin.runs() and
``twin runs``), on both stores:

- a traffic, access or crowd run made on a flood run (its summary's ``flooded_by``) is stale when that flood run
  is stale, was saved again after it, or was deleted, and says so naming the chain;
- a crowd run on an IFC storey (its summary's ``ifc``) read no layer of the twin: replacing ``areas`` leaves it
  current, while a plaza run goes stale;
- each scenario, layer, raster and the index of results is looked up once per call."""

from __future__ import annotations

import time
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

CRS = "EPSG:4544"
X0, Y0 = 409_900.0, 3_391_000.0  # central Chengdu, in the CRS's area of use


def _pause() -> None:
    time.sleep(0.02)  # a GeoPackage keeps last_change to the millisecond


def _layers(store, names=("road_links", "buildings", "areas", "pois")) -> None:
    box = shapely.box(X0, Y0, X0 + 40, Y0 + 40)
    frames = {
        "road_links": {"link_id": ["L1"], "geometry": [shapely.LineString([(X0, Y0), (X0 + 40, Y0 + 40)])]},
        "buildings": {"building_id": ["B1"], "geometry": [box.buffer(-15)]},
        "areas": {"area_id": ["A1"], "geometry": [box]},
        "pois": {"poi_id": ["P1"], "geometry": [shapely.Point(X0 + 20, Y0 + 20)]},
    }
    for n in names:
        store.write_layer(n, gpd.GeoDataFrame(frames[n], crs=CRS))


def _dem(store, value: float = 10.0, names=("dem", "manning")) -> None:
    from cim.raster import Raster

    for n in names:
        store.write_raster(n, Raster(np.full((4, 4), value, "float32"), Affine(10, 0, X0, 0, -10, Y0 + 40), CRS))


@pytest.fixture
def city(store):
    _layers(store)
    _dem(store)
    _pause()
    return store


def _save(store, run: str, engine: str, summary: dict | None = None, scenario: str = "base") -> None:
    from cim.results import save_result

    save_result(store, scenario, run, "summary", {"engine": engine, **(summary or {})},
                meta={"engine": f"simulation.{engine}"})


def _why(store, scenario=None) -> dict:
    from cim.results import list_results, stale_runs

    return {run: why for (_, run), why in stale_runs(store, list_results(store, scenario=scenario)).items()}


#: what each engine's adapter stores of the plaza or storey it ran on (twin_core.adapters.crowd.plaza_area,
#: storey_crowd_kwargs): a traffic or access run needs nothing more than flooded_by
_PLACE = {"traffic": {}, "access": {}, "crowd": {"area_id": "A1", "exits_from": "roads"}}


@pytest.mark.parametrize("engine", ["traffic", "access", "crowd"])
def test_a_run_on_a_flood_run_that_went_stale_is_stale_naming_the_chain(city, engine):
    _save(city, "storm50", "flood")
    _pause()
    _dem(city, 12.0, names=("dem",))  # the flood's ground changed: its depths are not the twin's now
    dem_at = city.raster_written("dem")
    _pause()
    _save(city, "wet", engine, {**_PLACE[engine], "flooded_by": "storm50"})
    _save(city, "dry", engine, _PLACE[engine])
    got = _why(city)
    when = f"{dem_at:%Y-%m-%d %H:%M} UTC"
    assert got["storm50"] == f"raster dem replaced {when}, after this run"
    # the run made on it did not read the DEM itself, and was made after it was replaced: stale through the flood
    assert got["wet"] == f"flood run storm50 is stale: raster dem replaced {when}, after that run"
    assert got["dry"] is None  # the same engine without the flood: current


@pytest.mark.parametrize("engine", ["traffic", "access", "crowd"])
def test_a_run_whose_flood_run_was_run_again_after_it_is_stale(city, engine):
    from cim.results import list_results

    _save(city, "storm50", "flood")
    _pause()
    _save(city, "wet", engine, {**_PLACE[engine], "flooded_by": "storm50"})
    assert _why(city) == {"storm50": None, "wet": None}
    _pause()
    _save(city, "storm50", "flood", {"storm": {"return_period_y": 100}})  # saved again: other water
    again = list_results(city, run="storm50")["created"].max()
    got = _why(city)
    assert got["storm50"] is None  # the new flood is current
    assert got["wet"].startswith("flood run storm50 re-run ") and got["wet"].endswith(" UTC, after this run")
    assert again[:10] in got["wet"]
    _pause()
    _save(city, "wet2", engine, {**_PLACE[engine], "flooded_by": "storm50"})  # made on the new one: current
    assert _why(city)["wet2"] is None


def test_a_run_whose_flood_run_was_deleted_says_so(city):
    from cim.results import delete_run

    _save(city, "storm50", "flood")
    _pause()
    _save(city, "jam", "traffic", {"flooded_by": "storm50"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "runs that used it now refer to results that are gone"
        delete_run(city, None, "storm50")
    assert _why(city) == {"jam": "flood run storm50 it used was deleted"}


def test_a_cause_the_dependent_run_shares_is_said_once(city):
    """Buildings replaced after both runs: the traffic run read them itself; the flood's staleness through them
    is not said again as a chain."""
    _save(city, "storm50", "flood")
    _pause()
    _save(city, "jam", "traffic", {"flooded_by": "storm50"})
    _pause()
    _layers(city, ("buildings",))
    got = _why(city)
    assert got["jam"].startswith("layer buildings replaced ") and ";" not in got["jam"], got
    assert got["storm50"].startswith("layer buildings replaced "), got


def test_an_edit_of_the_scenario_between_the_flood_and_the_run_on_it(city):
    from cim.scenario import Scenarios

    works = Scenarios(city).create("works")
    _save(city, "storm50", "flood", scenario="works")
    _pause()
    works.set_param("drainage_mm_h", 30)
    _pause()
    _save(city, "jam", "traffic", {"flooded_by": "storm50"}, scenario="works")
    got = _why(city, "works")
    assert got["storm50"].startswith("scenario works edited ")
    assert got["jam"].startswith("flood run storm50 is stale: scenario works edited ")
    assert got["jam"].endswith(", after that run")
    _pause()
    works.set_param("drainage_mm_h", 40)  # now after both: each is stale by the edit itself, said once
    got = _why(city, "works")
    assert got["jam"].startswith("scenario works edited ") and got["jam"].endswith(", after this run")
    assert "flood run" not in got["jam"]


def test_an_access_run_on_a_traffic_run_on_a_stale_flood(city):
    """The chain goes on: access drove at the speeds of a traffic run (speeds_from) made on a stale flood."""
    _save(city, "storm50", "flood")
    _pause()
    _dem(city, 12.0, names=("manning",))
    _pause()
    _save(city, "jam", "traffic", {"flooded_by": "storm50"})
    _save(city, "reach", "access", {"speeds_from": "jam"})
    got = _why(city)
    assert got["reach"].startswith("traffic run jam is stale: flood run storm50 is stale: raster manning replaced ")


def test_an_ifc_storey_crowd_run_does_not_go_stale_with_the_areas(city):
    # what the crowd adapter stores: an IFC storey's summary has the file and storey, a plaza's its area
    _save(city, "c-ifc", "crowd", {"ifc": "/data/box.ifc", "storey": "Level 0", "walkable_m2": 180.0})
    _save(city, "c-plaza", "crowd", {"area_id": "A1", "name": "Plaza", "exits_from": "roads"})
    _save(city, "c-exits", "crowd", {"area_id": "A1", "exits_from": "explicit"})  # exits given: no roads read
    _pause()
    _layers(city, ("road_links",))
    got = _why(city)
    assert got["c-ifc"] is None and got["c-exits"] is None
    assert got["c-plaza"].startswith("layer road_links replaced ")
    _pause()
    _layers(city, ("areas", "buildings"))
    got = _why(city)
    assert got["c-ifc"] is None
    assert "layer areas replaced " in got["c-plaza"] and "layer buildings replaced " in got["c-plaza"]
    assert got["c-exits"].startswith("layer areas replaced ")


def test_a_reason_of_only_some_results_of_a_run_names_them(city):
    import pandas as pd

    from cim.results import save_result

    _save(city, "storm50", "flood")
    save_result(city, "base", "storm50", "exposure_road_links", pd.DataFrame({"link_id": ["L1"], "max_depth_m": [0.3]}),
                meta={"engine": "simulation.flood"})
    _pause()
    _layers(city, ("road_links",))
    assert _why(city)["storm50"].endswith(", after this run (exposure_road_links)")


def test_each_scenario_layer_raster_and_the_index_is_looked_up_once(city, monkeypatch):
    """Once per call: when each layer and raster was written, each scenario's last edit; and the store reads of
    a call do not grow with the number of runs (their summaries come from one read of the index)."""
    from cim.results import list_results, stale_results
    from cim.scenario import Scenario, Scenarios

    sc = Scenarios(city)
    sc.create("works").set_param("k", 1)

    def runs(first, last):
        for scen in ("base", "works"):
            _save(city, f"storm-{scen}", "flood", scenario=scen)
            for i in range(first, last):
                _save(city, f"jam{i}-{scen}", "traffic", {"flooded_by": f"storm-{scen}"}, scenario=scen)
                _save(city, f"c{i}-{scen}", "crowd", {"area_id": "A1", "flooded_by": f"storm-{scen}"}, scenario=scen)

    calls: dict = {}

    def counted(name, fn):
        def call(*a, **k):
            key = (name, *(x if isinstance(x, str) else getattr(x, "name", "") for x in a))
            calls[key] = calls.get(key, 0) + 1
            return fn(*a, **k)
        return call

    for m in ("layer_written", "raster_written", "get_meta", "list_layers", "list_rasters", "read_table"):
        monkeypatch.setattr(city, m, counted(m, getattr(city, m)))
    # each scenario's last edit, worked out from the scenarios' metadata (Scenario._last_edited; the base has none)
    edited = Scenario._last_edited
    monkeypatch.setattr(Scenario, "_last_edited", lambda self, meta: counted("last_edited", edited)(self, meta))

    def count(n_rows):
        rows = list_results(city)
        calls.clear()
        why = stale_results(city, rows, scenarios=sc)
        assert len(why) == len(rows) == n_rows
        return dict(calls)

    runs(0, 2)
    few = count(2 * 5)
    runs(2, 8)
    many = count(2 * 17)
    assert many == few  # 34 results of 18 runs cost what 10 of 6 did
    # the metadata: the results index and the scenarios' entries, once each (4 reads when each scenario's last
    # edit read the scenarios' metadata again)
    assert many.get(("get_meta",)) == 2
    once = {k: v for k, v in many.items() if k[0] in ("layer_written", "raster_written", "last_edited")}
    assert set(once) == {("layer_written", "road_links"), ("layer_written", "buildings"), ("layer_written", "areas"),
                         ("raster_written", "dem"), ("raster_written", "manning"), ("last_edited", "works", "")}
    assert set(once.values()) == {1}
