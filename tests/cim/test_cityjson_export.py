"""CityJSON 2.0 export of buildings: structure (rule-based spec check), closed outward shells, volumes."""

from __future__ import annotations

import copy
import json
from collections import Counter

import geopandas as gpd
import numpy as np
import pytest
import shapely

from cim.io.cityjson import solid_volumes, to_cityjson, validate_cityjson
from twin_core.errors import CRSError, FieldError, GeometryError, SchemaError

COURTYARD = shapely.Polygon([(0, 0), (40, 0), (40, 30), (0, 30)], [[(10, 10), (10, 20), (30, 20), (30, 10)]])
ELL = shapely.Polygon([(0, 0), (30, 0), (30, 10), (10, 10), (10, 25), (0, 25)])


def _frame(geoms, heights, ground=None, crs="EPSG:4544", **cols):
    data = {"building_id": [f"b{i}" for i in range(len(geoms))], "height_m": heights, **cols}
    if ground is not None:
        data["ground_elev_m"] = ground
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=crs)


def _shells(doc):
    for oid, obj in doc["CityObjects"].items():
        for g in obj["geometry"]:
            solids = [g["boundaries"]] if g["type"] == "Solid" else g["boundaries"]
            for solid in solids:
                for shell in solid:
                    yield oid, shell


def _assert_closed_and_outward(doc):
    """Each directed edge of a shell is matched by exactly one reverse edge (watertight, consistent)."""
    v = np.asarray(doc["vertices"], dtype="float64") * doc["transform"]["scale"] + doc["transform"]["translate"]
    for oid, shell in _shells(doc):
        edges = Counter()
        for face in shell:
            for ring in face:
                for a, b in zip(ring, ring[1:] + ring[:1]):
                    edges[(a, b)] += 1
        for (a, b), k in edges.items():
            assert k == 1 and edges.get((b, a)) == 1, f"{oid}: edge {a}->{b} is not matched by one {b}->{a}"
        # outward: the top face's normal points up, the bottom face's down
        def normal(face):
            p = v[face[0]]
            return 0.5 * np.cross(p, np.roll(p, -1, axis=0)).sum(axis=0)
        assert normal(shell[0])[2] < 0 and normal(shell[-1])[2] > 0


@pytest.fixture(scope="module")
def small_buildings():
    import sample_city

    return sample_city.build("small", seed=0)["buildings"]


def test_sample_buildings_export_valid(small_buildings, tmp_path):
    b = small_buildings
    path = tmp_path / "city.city.json"
    doc = to_cityjson(b, "EPSG:4544", path=path)
    assert validate_cityjson(doc) == []
    assert doc["type"] == "CityJSON" and doc["version"] == "2.0"
    assert doc["metadata"]["referenceSystem"] == "https://www.opengis.net/def/crs/EPSG/0/4544"
    assert set(doc["CityObjects"]) == set(b.building_id)
    assert all(isinstance(c, int) for vtx in doc["vertices"] for c in vtx)
    assert doc["transform"]["scale"] == [0.001, 0.001, 0.001]
    x0, y0, x1, y1 = b.total_bounds
    ext = doc["metadata"]["geographicalExtent"]
    assert ext[:2] == pytest.approx([x0, y0]) and ext[3:5] == pytest.approx([x1, y1])
    assert ext[2] == pytest.approx(b.ground_elev_m.min()) and ext[5] == pytest.approx((b.ground_elev_m + b.height_m).max())
    obj = doc["CityObjects"][b.building_id.iloc[0]]
    assert obj["type"] == "Building" and obj["geometry"][0]["lod"] == "1"
    assert obj["attributes"]["use"] == b.use.iloc[0] and obj["attributes"]["storeys"] == int(b.storeys.iloc[0])
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(doc))
    _assert_closed_and_outward(doc)


def test_volumes_round_trip(small_buildings):
    b = small_buildings
    doc = to_cityjson(b, "EPSG:4544")
    vol = solid_volumes(doc)
    expected = (b.geometry.area * b.height_m).to_numpy()
    got = np.array([vol[i] for i in b.building_id])
    # vertices are rounded to 1 mm: on footprints >= 36 m2 that moves a volume by well under 0.1 %
    assert np.allclose(got, expected, rtol=1e-3)
    assert got.sum() == pytest.approx(expected.sum(), rel=1e-5)
    # the heights decode back: top z - bottom z of each solid
    v = np.asarray(doc["vertices"], dtype="float64") * 0.001 + doc["transform"]["translate"]
    oid = b.building_id.iloc[3]
    shell = doc["CityObjects"][oid]["geometry"][0]["boundaries"][0]
    z_top, z_bot = v[shell[-1][0], 2], v[shell[0][0], 2]
    assert z_bot == pytest.approx(b.ground_elev_m.iloc[3], abs=1e-3)
    assert z_top - z_bot == pytest.approx(b.height_m.iloc[3], abs=2e-3)


def test_courtyard_l_shape_and_multipart():
    multi = shapely.MultiPolygon([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 5)])
    b = _frame([COURTYARD, ELL, multi], [12.0, 6.0, 3.0], ground=[500.0, np.nan, 480.0])
    doc = to_cityjson(b)
    assert validate_cityjson(doc) == []
    _assert_closed_and_outward(doc)
    vol = solid_volumes(doc)
    assert vol["b0"] == pytest.approx((1200 - 200) * 12.0)
    assert vol["b1"] == pytest.approx(ELL.area * 6.0)
    assert vol["b2"] == pytest.approx(150 * 3.0)
    g0 = doc["CityObjects"]["b0"]["geometry"][0]
    assert g0["type"] == "Solid" and len(g0["boundaries"][0][-1]) == 2  # the roof has the courtyard as a hole
    assert len(g0["boundaries"][0]) == 2 + 4 + 4  # bottom, 8 walls, top
    g2 = doc["CityObjects"]["b2"]["geometry"][0]
    assert g2["type"] == "MultiSolid" and len(g2["boundaries"]) == 2
    v = np.asarray(doc["vertices"]) * 0.001 + doc["transform"]["translate"]
    assert v[:, 2].min() == pytest.approx(0.0)  # missing ground elevation: 0


def test_reprojects_to_the_requested_crs():
    from pyproj import Transformer

    b = _frame([shapely.box(409000, 3390000, 409020, 3390010)], [10.0], ground=[500.0])
    doc = to_cityjson(b, "EPSG:32648")
    assert doc["metadata"]["referenceSystem"].endswith("/EPSG/0/32648")
    x, y = Transformer.from_crs(4544, 32648, always_xy=True).transform(409000, 3390000)
    v = np.asarray(doc["vertices"]) * 0.001 + doc["transform"]["translate"]
    assert np.hypot(v[:, 0] - x, v[:, 1] - y).min() < 0.002
    assert solid_volumes(doc)["b0"] == pytest.approx(2000.0, rel=1e-3)


def test_validator_finds_each_rule_broken():
    good = to_cityjson(_frame([ELL], [6.0], ground=[500.0]))
    assert validate_cityjson(good) == []

    def broken(fn):
        d = copy.deepcopy(good)
        fn(d)
        return " | ".join(validate_cityjson(d))

    assert "version" in broken(lambda d: d.update(version="1.1"))
    assert "type must be 'CityJSON'" in broken(lambda d: d.update(type="FeatureCollection"))
    assert "transform is missing" in broken(lambda d: d.pop("transform"))
    assert "scale" in broken(lambda d: d["transform"].update(scale=[0, 1, 1]))
    assert "integer" in broken(lambda d: d["vertices"][0].__setitem__(0, 1.5))
    assert "referenceSystem" in broken(lambda d: d["metadata"].update(referenceSystem="EPSG:4544"))
    shell = lambda d: d["CityObjects"]["b0"]["geometry"][0]["boundaries"][0]  # noqa: E731
    assert "out of range" in broken(lambda d: shell(d)[0][0].__setitem__(0, 10**6))
    assert "implicitly closed" in broken(lambda d: shell(d)[1][0].append(shell(d)[1][0][0]))
    assert "fewer than 3" in broken(lambda d: shell(d)[1].__setitem__(0, [0, 1]))
    assert "nested" in broken(lambda d: d["CityObjects"]["b0"]["geometry"][0].update(type="MultiSolid"))
    assert "unknown city object type" in broken(lambda d: d["CityObjects"]["b0"].update(type="House"))
    assert "not used" in broken(lambda d: d["vertices"].append([0, 0, 0]))
    assert "lod" in broken(lambda d: d["CityObjects"]["b0"]["geometry"][0].update(lod=1))
    assert "children" in broken(lambda d: d["CityObjects"]["b0"].update(children=["nope"]))
    assert validate_cityjson([1, 2]) == ["the document is not a JSON object"]


def test_bad_input():
    b = _frame([ELL], [6.0])
    with pytest.raises(CRSError, match="no CRS"):
        to_cityjson(b.set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="projected"):
        to_cityjson(b.to_crs(4326), "EPSG:4326")
    with pytest.raises(FieldError, match="height_m"):
        to_cityjson(b.drop(columns="height_m"))
    with pytest.raises(GeometryError, match="positive height_m"):
        to_cityjson(_frame([ELL, ELL], [6.0, np.nan]))
    with pytest.raises(GeometryError, match="positive height_m"):
        to_cityjson(_frame([ELL], [0.0]))
    with pytest.raises(GeometryError, match="no polygon footprint"):
        to_cityjson(_frame([shapely.Point(0, 0)], [6.0]))
    with pytest.raises(SchemaError, match="LoD1"):
        to_cityjson(b, lod=2)
    dup = _frame([ELL, ELL], [6.0, 7.0])
    dup["building_id"] = "same"
    with pytest.raises(SchemaError, match="unique"):
        to_cityjson(dup)
    with pytest.raises(GeometryError, match="fewer than 3"):
        to_cityjson(_frame([shapely.box(0, 0, 0.0001, 0.0001)], [3.0]))
    empty = to_cityjson(b.iloc[:0])
    assert empty["CityObjects"] == {} and validate_cityjson(empty) == []


def test_hole_below_the_precision_leaves_no_stray_vertices():
    # a hole that collapses at the export precision was left out, but its vertices stayed in
    # "vertices", so the document failed its own check ("vertices are not used by any geometry")
    tiny_hole = shapely.Polygon(shapely.box(0, 0, 20, 20).exterior.coords, [shapely.box(5, 5, 5.3, 5.3).exterior.coords])
    doc = to_cityjson(_frame([tiny_hole], [10.0]), scale=1.0)
    assert validate_cityjson(doc) == []
    assert len(doc["vertices"]) == 8
    assert solid_volumes(doc)["b0"] == pytest.approx(4000.0)


def test_collapsed_footprint_error_names_the_building():
    b = _frame([ELL, shapely.box(50, 50, 50.0001, 50.0001)], [6.0, 3.0])
    b["building_id"] = ["keep", "sliver"]
    with pytest.raises(GeometryError, match="'sliver'.*fewer than 3"):
        to_cityjson(b)
