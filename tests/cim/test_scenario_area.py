"""Scenario edits hold the import's line on where data may lie: geometries outside the area the twin's CRS
covers (lon/lat given as metres, another country's grid) are refused, naming the features and what to do,
and nothing is recorded. Also: create(name, exist_ok=True) says when a description or parent given is
not the existing scenario's."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from cim.scenario import Scenarios
from twin_core.errors import CRSError, ScenarioError, TwinWarning

CRS = "EPSG:4544"
#: central Chengdu (lon 104.06, lat 30.66) in EPSG:4544 metres
X0, Y0 = 409907.0, 3393657.0


@pytest.fixture
def store(store_target):
    from cim.store import open_store

    s = open_store(store_target, create=True, crs=CRS)
    pois = gpd.GeoDataFrame({"poi_id": ["a", "b"], "kind": ["shelter", "school"]},
                            geometry=[shapely.Point(X0, Y0), shapely.Point(X0 + 300, Y0 + 200)], crs=CRS)
    s.write_layer("pois", pois)
    yield s
    s.close()


def _pois(ids, points):
    return gpd.GeoDataFrame({"poi_id": ids, "kind": ["shelter"] * len(ids)},
                            geometry=[shapely.Point(*p) for p in points], crs=CRS)


def test_features_added_in_lonlat_are_refused_with_the_hint_and_nothing_is_recorded(store):
    s = Scenarios(store).create("new_shelter")
    with pytest.raises(ScenarioError) as e:
        s.add_features("pois", _pois(["c"], [(104.06, 30.66)]))
    msg = str(e.value)
    assert "1 feature for 'pois' ('c') lies outside the area the twin's CRS EPSG:4544 covers" in msg
    assert "look like longitude/latitude" in msg
    assert "to_crs('EPSG:4544')" in msg and "Nothing was recorded" in msg
    assert len(s.edits()) == 0
    assert sorted(s.layer("pois")["poi_id"]) == ["a", "b"]


def test_features_modified_into_lonlat_are_refused_and_nothing_is_recorded(store):
    s = Scenarios(store).create("moved")
    with pytest.raises(ScenarioError, match=r"2 features for 'pois' \('a', 'b'\) lie outside.*longitude/latitude"):
        s.modify_features("pois", _pois(["a", "b"], [(104.06, 30.66), (104.07, 30.67)]))
    assert len(s.edits()) == 0
    assert s.layer("pois").geometry.x.tolist() == [X0, X0 + 300]


def test_only_the_features_outside_are_named_and_none_of_the_frame_is_recorded(store):
    s = Scenarios(store).create("mixed")
    gdf = _pois(["c", "d", "e"], [(X0 + 10, Y0 + 10), (104.06, 30.66), (X0 - 10, Y0 - 10)])
    with pytest.raises(ScenarioError) as e:
        s.add_features("pois", gdf)
    assert "('d')" in str(e.value) and "'c'" not in str(e.value) and "'e'" not in str(e.value)
    assert len(s.edits()) == 0


def test_metres_of_another_area_are_refused_without_the_lonlat_hint(store):
    s = Scenarios(store).create("far")
    # British National Grid metres (London) read as EPSG:4544: near the equator, west of the zone
    with pytest.raises(ScenarioError) as e:
        s.add_features("pois", _pois(["c"], [(530000.0, 180000.0)]))
    msg = str(e.value)
    assert "lies outside the area the twin's CRS EPSG:4544 covers" in msg and "(530000, 180000, 530000, 180000)" in msg
    assert "longitude/latitude" not in msg
    assert "gdf.to_crs('EPSG:4544')" in msg
    assert len(s.edits()) == 0


def test_features_in_the_area_are_recorded_as_before(store):
    s = Scenarios(store).create("ok")
    s.add_features("pois", _pois(["c"], [(X0 + 50, Y0 + 50)]))
    s.modify_features("pois", _pois(["a"], [(X0 - 50, Y0 - 50)]))
    # attributes alone (no geometry) need no area check
    s.modify_features("pois", pd.DataFrame({"poi_id": ["b"], "kind": ["hospital"]}))
    got = s.layer("pois").set_index("poi_id")
    assert sorted(got.index) == ["a", "b", "c"]
    assert got.loc["a"].geometry.x == X0 - 50 and got.loc["b", "kind"] == "hospital"


def test_the_scenario_and_the_import_share_one_area_test():
    import cim.crs
    import cim.io.vector

    assert cim.io.vector._check_area_of_use is cim.crs.check_area_of_use
    assert cim.io.vector._check_in_twin_area is cim.crs.check_in_twin_area
    twin = cim.crs.resolve_crs(CRS)
    ok = cim.crs.in_area_of_use([[X0, Y0, X0, Y0], [104.06, 30.66, 104.06, 30.66], [np.nan] * 4], twin)
    assert ok.tolist() == [True, False, True]  # not finite: nothing to compare (other checks refuse it)
    with pytest.raises(CRSError, match="lie outside the area of its CRS EPSG:4544"):
        cim.crs.check_area_of_use(np.array([104.0, 30.0, 104.1, 30.1]), twin)


def test_a_store_whose_crs_declares_no_area_takes_any_coordinates(tmp_path):
    from pyproj import CRS as ProjCRS

    from cim.store import open_store

    custom = ProjCRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=105 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m")
    assert custom.area_of_use is None
    store = open_store(str(tmp_path / "c.gpkg"), create=True, crs=custom.to_wkt())
    try:
        store.write_layer("pois", _pois(["a"], [(0, 0)]).set_crs(custom, allow_override=True))
        s = Scenarios(store).create("toy")
        s.add_features("pois", _pois(["b"], [(5, 5)]).set_crs(custom, allow_override=True))
        assert sorted(s.layer("pois")["poi_id"]) == ["a", "b"]
    finally:
        store.close()


# -- create(name, exist_ok=True) with other arguments -------------------------------------------------------

def test_exist_ok_with_another_description_warns_naming_both(store):
    sc = Scenarios(store)
    sc.create("levee", "a 2 m levee")
    with pytest.warns(TwinWarning) as rec:
        s = sc.create("levee", "a 3 m levee", exist_ok=True)
    msg = " ".join(str(w.message) for w in rec)
    assert "its description 'a 2 m levee' is kept, not the description 'a 3 m levee' given here" in msg
    assert "replace=True" in msg
    assert s.name == "levee" and sc.list().set_index("name").loc["levee", "description"] == "a 2 m levee"


def test_exist_ok_with_another_parent_warns_naming_both(store):
    sc = Scenarios(store)
    sc.create("storm")
    sc.create("levee", "a 2 m levee")
    with pytest.warns(TwinWarning, match="its parent 'base' is kept, not the parent 'storm' given here"):
        sc.create("levee", parent="storm", exist_ok=True)
    assert sc.list().set_index("name").loc["levee", "parent"] == "base"


def test_exist_ok_with_the_defaults_or_the_same_arguments_is_silent(store):
    sc = Scenarios(store)
    sc.create("storm")
    sc.create("levee", "a 2 m levee", parent="storm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sc.create("levee", exist_ok=True).name == "levee"
        assert sc.create("levee", "a 2 m levee", parent="storm", exist_ok=True).name == "levee"
