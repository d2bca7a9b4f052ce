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

    twin = cim.crs.resolve_crs(CRS)
    ok = cim.crs.in_area_of_use([[X0, Y0, X0, Y0], [104.06, 30.66, 104.06, 30.66], [np.nan] * 4], twin)
    assert ok.tolist() == [True, False, True]  # not finite: nothing to compare (other checks refuse it)
    with pytest.raises(CRSError, match="lie outside the area of its CRS EPSG:4544"):
        cim.crs.check_area_of_use(np.array([104.0, 30.0, 104.1, 30.1]), twin)


def _box_whose_top_edge_bulges_into_the_area():
    """A wide box south of EPSG:4544's area (lat 22.5 less the 3 degree margin: 19.5) whose top edge crosses the
    zone's central meridian (105E) just north of 19.5 but whose corners and edge midpoints lie south of it: in
    Gauss-Kruger a line of constant northing is furthest north on the central meridian."""
    from cim.crs import transformer

    cm_x, top = transformer("EPSG:4326", CRS).transform(105.0, 19.5 + 0.005)
    span = 300_000.0
    box = (cm_x - span, top - 1000.0, cm_x + 3 * span, top)  # the midpoint of the top edge is 300 km east of 105E
    lonlat = transformer(CRS, "EPSG:4326")
    eight = [lonlat.transform(x, y) for x in (box[0], (box[0] + box[2]) / 2, box[2]) for y in (box[1], box[3])]
    assert max(lat for _, lat in eight) < 19.5 < lonlat.transform(cm_x, top)[1]  # the case is what it claims
    return box


def test_an_edit_and_an_import_judge_a_box_near_the_zone_edge_alike(store):
    """The edit's check sampled 8 points a box (corners, edge midpoints), the import's 21 an edge: this box was
    refused as an edit and taken on import. Both now take it, through one sampling (cim.crs.lonlat_boxes)."""
    import cim.crs

    box = _box_whose_top_edge_bulges_into_the_area()
    twin = cim.crs.resolve_crs(CRS)
    cim.crs.check_area_of_use(np.array(box), twin)  # the import's check: inside
    cim.crs.check_in_twin_area(np.array(box), twin, twin)
    assert cim.crs.in_area_of_use([box], twin).tolist() == [True]
    assert cim.crs.lonlat_boxes([box], twin)[0, 3] > 19.5
    store.write_layer("zones", gpd.GeoDataFrame({"id": ["z0"]}, geometry=[shapely.box(X0, Y0, X0 + 10, Y0 + 10)],
                                                crs=CRS))
    s = Scenarios(store).create("wide_zone")
    s.add_features("zones", gpd.GeoDataFrame({"id": ["z1"]}, geometry=[shapely.box(*box)], crs=CRS))
    assert sorted(s.layer("zones")["id"]) == ["z0", "z1"]
    # and a box just south of it is refused by both
    south = (box[0], box[1] - 20_000.0, box[2], box[3] - 20_000.0)
    assert cim.crs.in_area_of_use([south], twin).tolist() == [False]
    with pytest.raises(CRSError, match="lie outside the area of its CRS EPSG:4544"):
        cim.crs.check_area_of_use(np.array(south), twin)


def test_a_box_with_points_that_do_not_transform_is_outside_for_both():
    import cim.crs

    twin = cim.crs.resolve_crs(CRS)
    huge = [0.0, 0.0, 1e9, 1e9]
    assert cim.crs.in_area_of_use([huge], twin).tolist() == [False]
    assert np.isnan(cim.crs.lonlat_boxes([huge], twin)).all() and cim.crs.lonlat_box(huge, twin) is None
    with pytest.raises(CRSError, match="lie outside the area of its CRS EPSG:4544"):
        cim.crs.check_area_of_use(np.array(huge), twin)


def test_the_area_helpers_live_in_cim_crs_only():
    import cim.io.vector

    for name in ("_check_area_of_use", "_check_in_twin_area", "_lonlat_box", "_meets_area", "_fmt_box",
                 "_AREA_MARGIN_DEG"):
        assert not hasattr(cim.io.vector, name), name


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


def test_the_refusal_is_an_outside_area_error_with_what_a_caller_needs_to_word_it(store):
    """The message stays Python's (the to_crs hint); the attributes let the map say "draw inside the city"."""
    import pickle

    from cim.scenario import OutsideAreaError

    s = Scenarios(store).create("far_attrs")
    with pytest.raises(OutsideAreaError) as e:
        s.add_features("pois", _pois(["c", "d"], [(530000.0, 180000.0), (X0, Y0)]))
    err = e.value
    assert isinstance(err, ScenarioError) and isinstance(err, ValueError)
    assert err.layer == "pois" and err.ids == ["c"] and err.crs == CRS
    assert err.bounds == (530000.0, 180000.0, 530000.0, 180000.0)
    assert err.crs_name == "CGCS2000 / 3-degree Gauss-Kruger CM 105E"
    from cim.crs import area_text, resolve_crs

    assert err.area == area_text(resolve_crs(CRS)) and "lon 103.5..106.5" in err.area  # the PROJ database's words
    lon, lat = err.lonlat[:2]
    assert 100 < lon < 106 and 0 < lat < 3  # south of the zone, near the equator
    assert "gdf.to_crs('EPSG:4544')" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is OutsideAreaError and str(back) == str(err) and back.ids == ["c"]
