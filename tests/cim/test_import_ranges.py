"""Plausible ranges of numbers on import: absurd but finite values (a height of 1e300 m, -5 storeys) are refused
with what, where, why and what to do, and nothing reaches the twin; the schema's ranges are well formed."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import shapely

import geopandas as gpd
from cim.io.vector import import_vector
from cim.schema import FEATURE_CLASSES, Field, conform
from twin_core.errors import SchemaError

LON, LAT = 104.0665, 30.6574  # Tianfu Square
SQUARE = {"type": "Polygon", "coordinates": [[[LON, LAT], [LON + 0.001, LAT], [LON + 0.001, LAT + 0.001],
                                               [LON, LAT + 0.001], [LON, LAT]]]}
LINE = {"type": "LineString", "coordinates": [[LON, LAT], [LON + 0.01, LAT]]}


def geojson(path, props: list[dict], geometry: dict):
    feats = [{"type": "Feature", "properties": p, "geometry": geometry} for p in props]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def buildings(path, **cols):
    n = len(next(iter(cols.values())))
    props = [{"building_id": f"B{i + 1}", "height_m": 10.0, **{k: v[i] for k, v in cols.items()}} for i in range(n)]
    return geojson(path, props, SQUARE)


def roads(path, **cols):
    n = len(next(iter(cols.values())))
    props = [{"link_id": f"L{i + 1}", "from_node": "a", "to_node": "b", "lanes": 2, "speed_limit_kmh": 50.0,
              **{k: v[i] for k, v in cols.items()}} for i in range(n)]
    return geojson(path, props, LINE)


@pytest.mark.parametrize("field,values,shown,range_", [
    ("height_m", [12.0, 1e300, 15.0], "1e+300 at feature 2 (building_id 'B2')", "from 0 to 1,000 m"),
    ("height_m", [-5.0, 10.0, -0.5], "-5 at feature 1 (building_id 'B1'); -0.5 at feature 3 (building_id 'B3')",
     "from 0 to 1,000 m"),
    ("storeys", [3, -1, 4], "-1 at feature 2 (building_id 'B2')", "from 0 to 200"),
    ("storeys", [3, 4, 1000], "1000 at feature 3 (building_id 'B3')", "from 0 to 200"),
    ("gfa_m2", [1e300, 600.0, None], "1e+300 at feature 1 (building_id 'B1')", "from 0 to 10,000,000 m2"),
    ("ground_elev_m", [500.0, -9999.0, 501.0], "-9999 at feature 2 (building_id 'B2')", "from -1,000 to 9,000 m"),
    ("lod", [1, 7, 2], "7 at feature 2 (building_id 'B2')", "from 0 to 4"),
])
def test_absurd_building_values_are_refused_and_the_twin_is_unchanged(store, tmp_path, field, values, shown, range_):
    import_vector(store, buildings(tmp_path / "good.geojson", height_m=[10.0, 20.0]), "buildings")
    before = store.read_layer("buildings")
    src = buildings(tmp_path / "bad.geojson", **{field: values})
    n_bad = shown.count(" at feature ")
    fc = FEATURE_CLASSES["buildings"]
    with pytest.raises(SchemaError) as err:
        import_vector(store, src, "buildings")
    msg = str(err.value)
    assert msg.startswith(f"layer 'buildings': field '{field}' must lie {range_} ({fc.field(field).range_why}); "
                          f"{n_bad} of 3 value(s) lie outside, e.g. {shown}. Nothing was written."), msg
    assert "Fix the source values" in msg and f"map another field to '{field}'" in msg
    if not fc.field(field).required:
        assert "--drop" in msg
    for mode in ("replace", "append"):  # neither replacing nor appending lets them in
        with pytest.raises(SchemaError, match=rf"field '{field}' must lie"):
            import_vector(store, src, "buildings", mode=mode)
    pd.testing.assert_frame_equal(store.read_layer("buildings"), before)


def test_the_message_counts_all_and_shows_the_first_three(store, tmp_path):
    src = buildings(tmp_path / "cm.geojson", height_m=[1200.0, 1500.0, 2000.0, 3300.0, 12.0])  # centimetres
    with pytest.raises(SchemaError, match=r"field 'height_m' must lie from 0 to 1,000 m \(a height is not negative, "
                                          r"and the tallest building on earth, the Burj Khalifa, is 828 m\); 4 of 5 "
                                          r"value\(s\) lie outside, e\.g\. 1200 at feature 1 \(building_id 'B1'\); "
                                          r"1500 at feature 2 \(building_id 'B2'\); 2000 at feature 3 "
                                          r"\(building_id 'B3'\) and 1 more\. Nothing was written\..*a wrong unit"):
        import_vector(store, src, "buildings")
    assert not store.has_layer("buildings")


@pytest.mark.parametrize("field,value,range_", [
    ("speed_limit_kmh", 1e6, "from 0 to 300 km/h"),
    ("speed_limit_kmh", -30.0, "from 0 to 300 km/h"),
    ("lanes", -1, "from 0 to 50"),
    ("capacity_vph", 1e300, "from 0 to 120,000 veh/h"),
    ("length_m", -10.0, "from 0 to 1,000,000 m"),
])
def test_absurd_road_values_are_refused(store, tmp_path, field, value, range_):
    src = roads(tmp_path / "roads.geojson", **{field: [value, None if field not in ("lanes", "speed_limit_kmh")
                                                       else 1]})
    with pytest.raises(SchemaError, match=rf"layer 'road_links': field '{field}' must lie {re.escape(range_)} "
                                          rf"\(.*\); 1 of 2 value\(s\) lie outside, e\.g\. .* at feature 1 "
                                          rf"\(link_id 'L1'\)"):
        import_vector(store, src, "road_links")
    assert not store.has_layer("road_links")


@pytest.mark.parametrize("layer,props,field", [
    ("parcels", {"parcel_id": "P1", "zoning": "R2", "max_coverage": 60}, "max_coverage"),  # per cent, not 0..1
    ("parcels", {"parcel_id": "P1", "zoning": "R2", "min_green_ratio": 1.3}, "min_green_ratio"),
    ("parcels", {"parcel_id": "P1", "zoning": "R2", "max_height_m": -1}, "max_height_m"),
    ("parcels", {"parcel_id": "P1", "zoning": "R2", "max_far": -2}, "max_far"),
    ("water", {"water_id": "W1", "normal_level_m": 1e300}, "normal_level_m"),
])
def test_absurd_parcel_and_water_values_are_refused(store, tmp_path, layer, props, field):
    src = geojson(tmp_path / "x.geojson", [props], SQUARE)
    with pytest.raises(SchemaError, match=rf"layer '{layer}': field '{field}' must lie .*; 1 of 1 value\(s\) lie "
                                          rf"outside"):
        import_vector(store, src, layer)
    assert not store.has_layer(layer)


def test_negative_poi_capacity_is_refused(store, tmp_path):
    src = geojson(tmp_path / "p.geojson", [{"poi_id": "s1", "kind": "shelter", "capacity": -500}],
                  {"type": "Point", "coordinates": [LON, LAT]})
    with pytest.raises(SchemaError, match=r"layer 'pois': field 'capacity' must lie from 0 to 10,000,000 persons"):
        import_vector(store, src, "pois")
    assert not store.has_layer("pois")


def test_values_at_the_bounds_and_nulls_are_accepted(store, tmp_path):
    src = buildings(tmp_path / "edge.geojson", height_m=[0.0, 828.0, 1000.0], storeys=[0, 163, None],
                    ground_elev_m=[-430.0, 8849.0, None], lod=[0, 4, None], gfa_m2=[None, 1.76e6, 0.0])
    assert import_vector(store, src, "buildings") == 3
    got = store.read_layer("buildings")
    assert got["height_m"].tolist() == [0.0, 828.0, 1000.0]
    assert got["storeys"].isna().tolist() == [False, False, True]
    src = geojson(tmp_path / "p.geojson", [{"parcel_id": "P1", "zoning": "R2", "max_coverage": 1.0,
                                            "min_green_ratio": 0.0}], SQUARE)
    assert import_vector(store, src, "parcels") == 1


def test_conform_refuses_out_of_range_for_every_caller():
    # conform is shared by vector import, the SUMO reader, BIM import and the sample city
    g = gpd.GeoDataFrame({"building_id": ["B1"], "height_m": [np.float64(1e300)]},
                         geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:4544")
    with pytest.raises(SchemaError, match=r"field 'height_m' must lie from 0 to 1,000 m"):
        conform(g, "buildings")
    assert conform(g.assign(height_m=[30.0]), "buildings")["height_m"].tolist() == [30.0]


def test_every_range_is_numeric_ordered_and_explained():
    ranged = [(fc.name, f) for fc in FEATURE_CLASSES.values() for f in fc.fields if f.has_range]
    assert {(n, f.name) for n, f in ranged} >= {
        ("buildings", "height_m"), ("buildings", "storeys"), ("road_links", "lanes"),
        ("road_links", "speed_limit_kmh"), ("road_links", "capacity_vph"), ("parcels", "max_coverage")}
    for name, f in ranged:
        assert f.dtype in ("int64", "float64") and f.range_why, (name, f.name)
        assert f.minimum is None or f.maximum is None or f.minimum < f.maximum
    d = FEATURE_CLASSES["buildings"].to_dict()  # the viewer's schema endpoint shows the range and why
    h = next(x for x in d["fields"] if x["name"] == "height_m")
    assert (h["minimum"], h["maximum"]) == (0.0, 1000.0) and "828 m" in h["range_why"]
    assert "minimum" not in next(x for x in d["fields"] if x["name"] == "building_id")


@pytest.mark.parametrize("kw,why", [
    (dict(dtype="str", minimum=0, range_why="x"), "only numbers have a range"),
    (dict(dtype="float64", minimum=5, maximum=1, range_why="x"), "minimum 5 is above maximum 1"),
    (dict(dtype="float64", minimum=0), "a range needs its reason"),
])
def test_a_badly_declared_range_is_refused(kw, why):
    with pytest.raises(SchemaError, match=why):
        Field("x", **kw)


def test_check_range_ignores_nulls_and_fields_without_range():
    from cim.schema import check_range

    f = FEATURE_CLASSES["buildings"].field("storeys")
    check_range(pd.Series([1, None, 3], dtype="Int64"), f, "buildings")
    check_range(pd.Series([-1e300]), FEATURE_CLASSES["sensors"].field("warn_threshold"), "sensors")
    with pytest.raises(SchemaError, match=r"1 of 3 value\(s\) lie outside, e\.g\. -2 at feature 3\."):
        check_range(pd.Series([1, None, -2], dtype="Int64"), f, "buildings")
