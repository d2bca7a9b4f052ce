"""A scenario whose edits refer to features no longer in the base warns once per process for one state of its
edit log and of the base layer (the map server read the layer on every request and logged the warning each
time), and warns again after a new edit, an undo, or the layer written again (both stores)."""

from __future__ import annotations

import time
import warnings

import geopandas as gpd
import shapely

from twin_core.errors import TwinWarning

CRS = "EPSG:4544"
X0, Y0 = 409_900.0, 3_391_000.0
CLOSURE = shapely.box(X0 - 10, Y0 - 10, X0 + 200, Y0 + 110)  # crosses links a and b


def _links(ids=("a", "b", "c", "d")):
    from cim.schema import conform

    rows = {"a": 0, "b": 100, "c": 300, "d": 400}
    gdf = gpd.GeoDataFrame(
        {"link_id": list(ids), "from_node": [f"n{i}" for i in ids], "to_node": [f"m{i}" for i in ids],
         "lanes": [2] * len(ids), "speed_limit_kmh": [50.0] * len(ids), "capacity_vph": [1800.0] * len(ids)},
        geometry=[shapely.LineString([(X0, Y0 + rows[i]), (X0 + 150, Y0 + rows[i])]) for i in ids], crs=CRS)
    return conform(gdf, "road_links")


def _orphan_warnings(read) -> int:
    """How many orphaned-edit warnings ``read()`` gave (every warning shown: Python's own once-per-place
    registry is no part of what is tested)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        read()
    return sum(1 for w in rec if issubclass(w.category, TwinWarning)
               and "refer to features no longer in the base layer" in str(w.message))


def test_orphaned_edit_warns_once_until_the_log_or_the_base_changes(store):
    from cim.scenario import Scenarios

    store.write_layer("road_links", _links())
    works = Scenarios(store).create("works")
    works.close_roads(CLOSURE)  # closes a and b
    store.write_layer("road_links", _links(("c", "d")))  # both closed links gone from the base

    def read():
        Scenarios(store).get("works").layer("road_links")  # a fresh handle, as a request of the map server

    assert _orphan_warnings(read) == 1
    assert _orphan_warnings(read) == 0  # the same scenario, log and base: said already
    assert _orphan_warnings(lambda: [read() for _ in range(3)]) == 0

    works.set_param("demand_scale", 0.5)  # a new edit: warned again, once
    assert _orphan_warnings(read) == 1
    assert _orphan_warnings(read) == 0

    time.sleep(0.02)  # a GeoPackage keeps last_change to the millisecond
    store.write_layer("road_links", _links(("c", "d")))  # the base written again (the same features)
    assert _orphan_warnings(read) == 1
    assert _orphan_warnings(read) == 0

    works.undo()  # the set_param taken back: another state of the log
    assert _orphan_warnings(read) == 1

    # another scenario reading the same orphaned edit (its parent's) is another key
    Scenarios(store).create("works_night", parent="works")
    assert _orphan_warnings(lambda: Scenarios(store).get("works_night").layer("road_links")) == 1
    assert _orphan_warnings(read) == 0


def test_the_warning_still_names_the_edit_and_the_fix(store):
    from cim.scenario import Scenarios

    store.write_layer("road_links", _links())
    Scenarios(store).create("works").close_roads(CLOSURE)
    store.write_layer("road_links", _links(("b", "c", "d")))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        Scenarios(store).get("works").layer("road_links")
    msgs = [str(w.message) for w in rec if "refer to features" in str(w.message)]
    assert len(msgs) == 1 and "1 of its 2 features gone ('a')" in msgs[0]
    assert "twin scenario undo STORE works" in msgs[0]
