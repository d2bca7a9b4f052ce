"""Building feature, element table, glTF, store import (atomic), parallel import, CityJSON, floor plans."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.bim_import.conftest import with_schema
from twin_core.errors import GeometryError, GeoreferenceError, ImportFormatError, StoreError


def test_box_building_feature_hand_computed(boxes):
    # 20 x 10 m block, 3 storeys of 3.0 m + 0.3 m roof slab: height 9.3 m, GFA 3 x 200 m2
    from bim_import.importer import prepare_building
    from cim.schema import FEATURE_CLASSES

    b = prepare_building(boxes["ok"][0], "EPSG:4544")
    f = b.feature
    assert list(f.columns[:-1]) == FEATURE_CLASSES["buildings"].field_names
    row = f.iloc[0]
    assert row["height_m"] == pytest.approx(9.3, rel=1e-6)
    assert row["storeys"] == 3 and row["gfa_m2"] == pytest.approx(600.0) and b.gfa_source == "qsets"
    assert row["ground_elev_m"] == pytest.approx(500.0)
    assert f.geometry.iloc[0].area == pytest.approx(200.0, rel=0.01)
    assert f.geometry.iloc[0].bounds == pytest.approx((500000.0, 3390000.0, 500020.0, 3390010.0), abs=1e-3)
    assert str(f.crs.to_epsg()) == "4544"
    # GLB blob: x east / y north relative to the footprint centroid, z up = absolute height 500.0 .. 509.3
    # (what the viewer's deck.gl ScenegraphLayer places with orientation [0, 0, 0])
    import trimesh

    scene = trimesh.load(io.BytesIO(b.glb), file_type="glb")
    (x0, y0, z0), (x1, y1, z1) = scene.bounds
    assert (z0, z1) == pytest.approx((500.0, 509.3), abs=1e-3)
    assert (x0, x1) == pytest.approx((-10.0, 10.0), abs=1e-3) and (y0, y1) == pytest.approx((-5.0, 5.0), abs=1e-3)
    assert b.origin == pytest.approx((500010.0, 3390005.0), abs=1e-3)


def test_real_models_building_and_glb(fzk):
    import trimesh

    from bim_import import georeference
    from bim_import.building import build_building

    b = build_building(fzk, georeference(fzk, "EPSG:25832"))
    # FZK-Haus: two storeys with storey quantities 119.82 + 121.67 m2
    assert b.storeys == 2 and b.gfa_m2 == pytest.approx(241.498, abs=0.01) and b.gfa_source == "qsets"
    # the house is 12 m x 10 m with roof overhangs: footprint between the two
    assert 120.0 < b.footprint.area < 200.0
    assert b.ground_elev_m == pytest.approx(110.0)
    scene = trimesh.load(io.BytesIO(b.glb), file_type="glb")
    phys_with_mesh = [g for g in fzk.element_ids(physical=True) if g in fzk.meshes]
    assert len(scene.geometry) == len(phys_with_mesh)
    assert set(b.storey_glb) == {"Erdgeschoss", "Dachgeschoss"}


def test_store_import_is_atomic_and_queryable(boxes, store, tmp_path):
    from bim_import.importer import ELEMENT_TABLE, import_ifc

    b = import_ifc(boxes["ok"][0], store)
    gdf = store.read_layer("buildings")
    assert gdf["building_id"].tolist() == [b.building_id]
    el = store.read_table(ELEMENT_TABLE)
    assert len(el) == len(b.elements) == 19  # 3 x (slab + 4 walls) + the 2nd half of the split front wall + door + roof + lawn
    walls = el[el["ifc_class"] == "IfcWall"]
    assert all(json.loads(p)["Pset_WallCommon"]["IsExternal"] is True for p in walls["psets"])
    from bim_import import query_elements

    ext = query_elements(store, ifc_class="IfcWall", properties={"Pset_WallCommon.IsExternal": True})
    assert len(ext) == 13 and set(ext["global_id"]) == set(walls["global_id"])
    slabs = query_elements(store, building_id=b.building_id, storey="Level 2",
                           properties={"Qto_SlabBaseQuantities.GrossArea": 200.0})
    assert slabs["name"].tolist() == ["Floor 2"]
    blobs = store.list_blobs("bim/")
    assert f"bim/{b.building_id}/building.glb" in set(blobs["key"])
    assert f"bim/{b.building_id}/storey/Level_1.glb" in set(blobs["key"])
    assert set(blobs["feature_id"]) == {b.building_id}
    before = (len(store.read_layer("buildings")), len(store.read_table(ELEMENT_TABLE)), len(store.list_blobs()))
    with pytest.raises(StoreError, match="already in the store"):
        import_ifc(boxes["ok"][0], store)
    # bad inputs: each a clear error, and nothing written
    with pytest.raises(GeoreferenceError):
        import_ifc(boxes["nogeo"][0], store)
    with pytest.raises(ImportFormatError, match="not an IFC"):
        import_ifc(__file__, store)
    trunc = tmp_path / "trunc.ifc"
    trunc.write_bytes(open(boxes["ok"][0], "rb").read()[:3000])
    with pytest.raises(ImportFormatError, match="truncated"):
        import_ifc(trunc, store)
    old = with_schema(boxes["ok"][0], tmp_path / "old.ifc", "IFC2X2_FINAL")
    with pytest.raises(ImportFormatError, match="not supported"):
        import_ifc(old, store)
    after = (len(store.read_layer("buildings")), len(store.read_table(ELEMENT_TABLE)), len(store.list_blobs()))
    assert after == before


def test_failure_inside_the_write_rolls_everything_back(boxes, tmp_path):
    from bim_import.importer import prepare_building, write_building
    from cim.store import open_store

    st = open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544")
    b = prepare_building(boxes["ok"][0], "EPSG:4544")
    b.storey_glb["broken"] = None  # put_blob of a storey fails after the layer and tables were written
    with pytest.raises(Exception):
        write_building(st, b)
    assert not st.has_layer("buildings") and not st.has_table("bim_elements") and len(st.list_blobs()) == 0
    st.close()


def test_import_many_in_parallel_with_a_bad_file(boxes, tmp_path):
    from bim_import.importer import import_many
    from cim.store import open_store

    bad = tmp_path / "bad.ifc"
    bad.write_text("not ifc")
    calls = []
    with open_store(str(tmp_path / "m.gpkg"), create=True, crs="EPSG:4544") as st:
        s = import_many([boxes["tall"][0], str(bad), boxes["setback"][0]], st, workers=2,
                        progress=lambda d, t: calls.append((d, t)))
        assert len(st.read_layer("buildings")) == 2
    assert len(s.files) == 2 and s.elements_read == 2 * 0 + sum(f["elements"] for f in s.files)
    assert [e["file"] for e in s.errors] == [str(bad)] and "ImportFormatError" in s.errors[0]["error"]
    assert calls[-1] == (3, 3)


def test_cityjson_lod1_and_semantic_surfaces(boxes):
    from bim_import.cityjson import to_cityjson
    from bim_import.importer import prepare_building

    b = prepare_building(boxes["ok"][0], "EPSG:4544")
    doc = to_cityjson([b])
    assert doc["type"] == "CityJSON" and doc["version"] == "2.0"
    obj = doc["CityObjects"][b.building_id]
    lod1, lod2 = obj["geometry"]
    v = np.asarray(doc["vertices"]) * doc["transform"]["scale"] + doc["transform"]["translate"]
    idx = [i for solid in lod1["boundaries"] for shell in solid for face in shell for ring in face for i in ring]
    assert v[idx, 2].min() == pytest.approx(500.0) and v[idx, 2].max() == pytest.approx(509.3)
    types = [lod2["semantics"]["surfaces"][k]["type"] for k in lod2["semantics"]["values"]]
    assert {"GroundSurface", "WallSurface", "RoofSurface"} == set(types)
    # the roof faces come from the roof slab's top: all at 509.3
    roof = [lod2["boundaries"][i] for i, t in enumerate(types) if t == "RoofSurface"]
    assert all(v[j, 2] == pytest.approx(509.3) for face in roof for ring in face for j in ring)


def test_box_floorplan_hand_computed(boxes):
    # slab 20 x 10 m minus 0.25 m walls all round: 19.5 x 9.5 = 185.25 m2, plus the 1 m door opening through
    # the 0.25 m front wall, grown 2 cm outwards to meet the outer face: 1.0 x 0.27 = 0.27 m2
    from bim_import import storey_floorplan

    p = storey_floorplan(boxes["ok"][0], "Level 1")
    assert p.walkable.area == pytest.approx(185.25 + 0.27, rel=1e-3)
    assert len(p.walls) == 5 and len(p.doors) == 1 and p.exits == [0]
    (a, b), = p.exit_lines.values()
    assert a[1] == pytest.approx(0.0, abs=0.03) and b[1] == pytest.approx(0.0, abs=0.03)  # on the outer wall face
    assert abs(a[0] - b[0]) == pytest.approx(1.0, abs=0.06) and (a[0] + b[0]) / 2 == pytest.approx(10.0, abs=1e-3)
    g = storey_floorplan(boxes["ok"][0], 0, twin_crs="EPSG:4544")
    assert g.crs == "EPSG:4544" and g.walkable.bounds[0] == pytest.approx(500000.25, abs=1e-3)
    (ga, gb), = g.exit_lines.values()
    assert ga[1] == pytest.approx(3390000.0, abs=0.03) and (ga[0] + gb[0]) / 2 == pytest.approx(500010.0, abs=1e-3)
    assert g.crs_offset["origin"] == pytest.approx((500000.0, 3390000.0))
    with pytest.raises(GeometryError, match="no storey"):
        storey_floorplan(boxes["ok"][0], "Level 9")


def test_fzk_floorplan(fzk):
    from bim_import import storey_floorplan

    p = storey_floorplan(fzk, "Erdgeschoss")
    # ground slab 120 m2 (its BaseQuantities) minus the wall sections
    assert 90.0 < p.walkable.area < 120.0 and len(p.walls) >= 13
    names = dict(zip(fzk.elements["global_id"], fzk.elements["name"]))
    assert sorted(names[p.door_ids[i]] for i in p.exits) == ["Haustuer", "Terrassentuer"]
    assert len(p.doors) == 5


@pytest.mark.parametrize("which", ["box", "fzk"])
def test_floorplan_feeds_the_crowd_engine(which, boxes, request):
    # the contract with simulation.crowd: WalkableArea(polygon, exits={name: [(x1, y1), (x2, y2)]})
    from bim_import import storey_floorplan
    from simulation.crowd import WalkableArea

    if which == "box":
        plan = storey_floorplan(boxes["ok"][0], "Level 1")
    else:
        plan = storey_floorplan(request.getfixturevalue("fzk"), "Erdgeschoss")
    area = WalkableArea(plan.walkable, exits=plan.exit_lines)
    assert area.exit_names == [plan.door_ids[i] for i in plan.exits] and len(area.exit_names) >= 1


def test_cityjson_from_the_store_matches_the_direct_export(boxes, tmp_path):
    from typer.testing import CliRunner

    from bim_import.cityjson import from_store, to_cityjson
    from bim_import.importer import import_ifc
    from cim.store import open_store
    from twin_core.cli import get_app

    target = str(tmp_path / "c.gpkg")
    with open_store(target, create=True, crs="EPSG:4544") as st:
        b = import_ifc(boxes["ok"][0], st)
        doc = from_store(st)
    direct = to_cityjson([b])

    def surfaces(d):
        v = np.asarray(d["vertices"]) * d["transform"]["scale"] + d["transform"]["translate"]
        lod2 = d["CityObjects"][b.building_id]["geometry"][1]
        out = {}
        for face, k in zip(lod2["boundaries"], lod2["semantics"]["values"]):
            t = lod2["semantics"]["surfaces"][k]["type"]
            out.setdefault(t, []).append(np.round(v[face[0]], 2).tolist())
        return {t: sorted(map(sorted, fs)) for t, fs in out.items()}

    assert surfaces(doc) == surfaces(direct)  # the roof read back from the GLB blob, LoD1 from the layer
    out = tmp_path / "b.city.json"
    res = CliRunner().invoke(get_app(), ["bim", "cityjson", str(out), "--store", target])
    assert res.exit_code == 0, res.output
    assert list(json.loads(out.read_text())["CityObjects"]) == [b.building_id]


def test_one_broken_element_never_loses_the_rest(boxes, tmp_path):
    import ifcopenshell

    from bim_import.importer import ELEMENT_TABLE, import_ifc
    from cim.store import open_store

    f = ifcopenshell.open(boxes["ok"][0])
    wall = [e for e in f.by_type("IfcWall") if e.Name == "Wall 2.3"][0]
    pts = wall.Representation.Representations[0].Items[0].SweptArea.OuterCurve.Points
    pts.CoordList = [(0.0, 0.0)] * len(pts.CoordList)  # a profile collapsed to a point: no solid
    broken = tmp_path / "broken.ifc"
    f.write(str(broken))
    with open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544") as st:
        b = import_ifc(broken, st)
        el = st.read_table(ELEMENT_TABLE)
    assert [x["global_id"] for x in b.summary["failed"]] == [wall.GlobalId]
    assert len(el) == 19 and el["geometry_ok"].sum() == 18
    row = el.set_index("global_id").loc[wall.GlobalId]
    assert "no triangles" in row["failure"]
    assert b.height_m == pytest.approx(9.3) and b.footprint.area == pytest.approx(200.0, rel=0.01)


@pytest.mark.parametrize("cut", [float("nan"), float("inf"), 0.0])
def test_floorplan_refuses_a_non_finite_cut(boxes, cut):
    # a NaN cut height gave a plan with no walls at all
    from bim_import.floorplan import storey_floorplan

    with pytest.raises(GeometryError, match="cut_height must be a finite number > 0"):
        storey_floorplan(boxes["ok"][0], 0, cut)


def test_a_building_globalid_that_is_no_globalid_gives_a_safe_id(boxes, tmp_path):
    # the default id is bim-<GlobalId>; a file could put markup there and it reached URLs, file names and the page
    import ifcopenshell

    from bim_import.importer import prepare_building
    from twin_core.errors import TwinWarning

    f = ifcopenshell.open(str(boxes["ok"][0]))
    f.by_type("IfcBuilding")[0].GlobalId = "<img src=x onerror=alert(1)>"
    bad = tmp_path / "bad_guid.ifc"
    f.write(str(bad))
    with pytest.warns(TwinWarning, match="is not an IFC GlobalId"):
        b = prepare_building(str(bad), "EPSG:4544")
    bid = b.feature["building_id"].iloc[0]
    assert bid.startswith("bim-") and len(bid) == 26 and bid[4:].isalnum()
    good = prepare_building(boxes["ok"][0], "EPSG:4544").feature["building_id"].iloc[0]
    assert good == "bim-" + ifcopenshell.open(str(boxes["ok"][0])).by_type("IfcBuilding")[0].GlobalId


# -- a model without IfcBuildingStorey: its storeys are unknown (or declared), never a silent 0 --------------
def _storeyless(tmp_path, declare: bool) -> str:
    from bim_import.samples import BoxBuilding, write_box_building

    spec = BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0, storey_entities=False, declare_storeys=declare)
    return write_box_building(spec, tmp_path / f"storeyless_{declare}.ifc")


def test_model_without_storeys_stores_unknown_storeys_not_zero_and_says_so(tmp_path, store):
    # a planner reading "0 storeys" takes it as fact; FAR checks, population and trip estimates built on it
    # would be wrong. The count is left unknown (null), with a warning that says why and what to add.
    from bim_import import import_ifc, read_model
    from bim_import.importer import SUMMARY_TABLE
    from twin_core.errors import TwinWarning

    path = _storeyless(tmp_path, declare=False)
    m = read_model(path)
    assert len(m.storeys) == 0 and m.building["declared_storeys"] is None
    with pytest.warns(TwinWarning, match=r"storeyless_False\.ifc has no IfcBuildingStorey, so its number of storeys "
                                         r"is unknown and stored empty \(null\), not 0.*height of 9\.3 m would hold "
                                         r"about 3, which is not stored.*Add IfcBuildingStorey"):
        b = import_ifc(path, store)
    assert b.storeys is None and b.summary["storeys"] is None and b.gfa_m2 is None
    assert any("no IfcBuildingStorey" in w for w in b.summary["warnings"])
    assert b.height_m == pytest.approx(9.3, rel=1e-6)  # the rest of the building is as with storeys
    got = store.read_layer("buildings")
    assert got["storeys"].isna().tolist() == [True] and got["height_m"].tolist() == pytest.approx([9.3])
    assert store.layer_info("buildings")["columns"]["storeys"] == "int64"  # still an integer column
    assert store.read_table(SUMMARY_TABLE)["storeys"].isna().tolist() == [True]


def test_model_without_storeys_takes_the_declared_number_of_storeys(tmp_path):
    from bim_import.importer import prepare_building
    from twin_core.errors import TwinWarning

    path = _storeyless(tmp_path, declare=True)
    with pytest.warns(TwinWarning, match=r"has no IfcBuildingStorey; its number of storeys \(3\) is taken from the "
                                         r"building's Pset_BuildingCommon\.NumberOfStoreys as declared"):
        b = prepare_building(path, "EPSG:4544")
    assert b.storeys == 3 and b.feature["storeys"].tolist() == [3]


def test_storeyless_model_is_checked_and_recorded_with_unknown_storeys(tmp_path, store):
    from bim_import.checks import get_check, record_check
    from tests.bim_import.test_bim_checks import PLOT
    from twin_core.errors import TwinWarning

    path = _storeyless(tmp_path, declare=False)
    with pytest.warns(TwinWarning, match="no IfcBuildingStorey"):
        rec = record_check(store, path, PLOT)  # int(None) raised a TypeError here
    assert get_check(store, rec["check_id"])["storeys"] is None
    ok = record_check(store, _box(tmp_path), PLOT)  # a later check with storeys goes into the same column
    assert get_check(store, ok["check_id"])["storeys"] == 3


def _box(tmp_path) -> str:
    from bim_import.samples import BoxBuilding, write_box_building

    return write_box_building(BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0), tmp_path / "box.ifc")


def test_cli_says_unknown_storeys_not_none(tmp_path):
    # `twin bim import` printed "None storeys" for a model without IfcBuildingStorey
    from typer.testing import CliRunner

    from twin_core.cli import get_app
    from twin_core.twin import Twin

    path = _storeyless(tmp_path, declare=False)
    twin = str(tmp_path / "t.gpkg")
    Twin.create(twin, crs="EPSG:4544").close()
    res = CliRunner().invoke(get_app(), ["bim", "import", twin, path, "-q"])
    assert res.exit_code == 0, res.output
    assert "unknown storeys" in res.stdout and "None" not in res.stdout
