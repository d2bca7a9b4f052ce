"""IFC import into a twin: taken building ids (stale records, replace, delete), the anchor's height from the DEM,
refusals before the geometry is read, 3D buildings layers. GeoPackage and PostGIS (the ``store`` fixture)."""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import pytest
import shapely

from twin_core.errors import FieldError, GeoreferenceError, StoreError, TwinError

CRS = "EPSG:4544"
# a 10 x 10 grid of 10 m cells from (500000, 3390000) to (500100, 3390100); cell (row r from the north, col c)
# holds 400 + 10 r + c, so the anchor (500034, 3390057) lies in row 4 (3390060 > y > 3390050), col 3: 443 m
DEM_T = (10.0, 0.0, 500000.0, 0.0, -10.0, 3390100.0)
ANCHOR_XY = (500034.0, 3390057.0)
ANCHOR_DEM_Z = 443.0


def _box(path, storeys=2, georeferenced=False, eastings=0.0, northings=0.0):
    from bim_import.samples import BoxBuilding, write_box_building

    return write_box_building(BoxBuilding(20, 10, storeys, 3.0, eastings, northings, georeferenced=georeferenced),
                              path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Unplaced 20 x 10 m blocks (an anchor places them): 2 storeys and, an updated model, 4 storeys."""
    d = tmp_path_factory.mktemp("fixbimin")
    return {"two": _box(d / "two.ifc", 2), "four": _box(d / "four.ifc", 4)}


def _dem(store):
    from cim.raster import Raster

    data = (400.0 + 10.0 * np.arange(10)[:, None] + np.arange(10)[None, :]).astype("float32")
    store.write_raster("dem", Raster(data, DEM_T, CRS, unit="m"))


def _anchor(z=None):
    from bim_import.georef import Anchor

    return Anchor(*ANCHOR_XY) if z is None else Anchor(*ANCHOR_XY, z)


def _counts(store, bid):
    from bim_import.importer import ELEMENT_TABLE, SUMMARY_TABLE

    layer = store.read_layer("buildings") if store.has_layer("buildings") else None
    return {
        "feature": 0 if layer is None else int((layer["building_id"] == bid).sum()),
        "elements": store.count_rows(ELEMENT_TABLE, where={"building_id": bid}) if store.has_table(ELEMENT_TABLE) else 0,
        "summary": store.count_rows(SUMMARY_TABLE, where={"building_id": bid}) if store.has_table(SUMMARY_TABLE) else 0,
        "blobs": len(store.list_blobs(f"bim/{bid}/")),
    }


def _city_buildings(n=3, z=None):
    """A stand-in for a user's own buildings layer (as `twin import FILE --class buildings` writes it)."""
    from cim.schema import conform

    geoms = [shapely.box(500200.0 + 30 * i, 3390200.0, 500220.0 + 30 * i, 3390220.0) for i in range(n)]
    if z is not None:
        geoms = list(shapely.force_3d(np.asarray(geoms, dtype=object), z=z))
    gdf = gpd.GeoDataFrame({"building_id": [f"C{i}" for i in range(n)], "height_m": [10.0] * n}, geometry=geoms,
                           crs=CRS)
    return conform(gdf, "buildings")


# 1. a taken building id: stale records, replace, delete -----------------------------------------------------------

def test_a_replaced_layer_leaves_a_stale_record_that_replace_or_delete_clears(models, store):
    from bim_import.importer import delete_building, import_ifc

    b = import_ifc(models["two"], store, anchor=_anchor(0.0))
    bid = b.building_id
    full = _counts(store, bid)
    assert full["feature"] == 1 and full["elements"] == len(b.elements) > 0 and full["summary"] == 1
    assert full["blobs"] >= 2
    # the user replaces the buildings layer: the BIM building goes from it, its record stays
    store.write_layer("buildings", _city_buildings(), mode="replace")
    assert _counts(store, bid) == dict(full, feature=0)
    with pytest.raises(StoreError) as ei:
        import_ifc(models["two"], store, anchor=_anchor(0.0))
    msg = str(ei.value)
    assert "stale" in msg and "no longer in the 'buildings' layer" in msg
    assert "--replace" in msg and f"twin bim delete STORE {bid}" in msg
    # --replace: the stale record goes, the model comes back whole, once
    b2 = import_ifc(models["two"], store, anchor=_anchor(0.0), replace=True)
    assert b2.summary["replaced"]["feature"] == 0 and b2.summary["replaced"]["elements"] == full["elements"]
    assert _counts(store, bid) == full
    assert sorted(store.read_layer("buildings")["building_id"]) == ["C0", "C1", "C2", bid]
    # delete: all of it, in one go, the city's own buildings untouched
    r = delete_building(store, bid)
    assert (r["feature"], r["elements"], r["summary"], r["blobs"]) == (1, full["elements"], True, full["blobs"])
    assert _counts(store, bid) == {"feature": 0, "elements": 0, "summary": 0, "blobs": 0}
    assert sorted(store.read_layer("buildings")["building_id"]) == ["C0", "C1", "C2"]
    with pytest.raises(StoreError, match="no imported BIM building"):
        delete_building(store, bid)
    with pytest.raises(StoreError, match="not imported from IFC"):
        delete_building(store, "C1")
    # a stale record deletes too
    import_ifc(models["two"], store, anchor=_anchor(0.0))
    store.write_layer("buildings", _city_buildings(), mode="replace")
    r = delete_building(store, bid)
    assert r["feature"] == 0 and r["elements"] == full["elements"]
    assert _counts(store, bid) == {"feature": 0, "elements": 0, "summary": 0, "blobs": 0}


def test_an_updated_model_replaces_the_earlier_import_of_its_building(models, store):
    from bim_import.importer import ELEMENT_TABLE, SUMMARY_TABLE, import_ifc

    b2 = import_ifc(models["two"], store, anchor=_anchor(0.0), building_id="tower-a")
    with pytest.raises(StoreError, match="already in the store") as ei:
        import_ifc(models["four"], store, anchor=_anchor(0.0), building_id="tower-a")
    assert "--replace" in str(ei.value) and "--building-id" in str(ei.value)
    b4 = import_ifc(models["four"], store, anchor=_anchor(0.0), building_id="tower-a", replace=True)
    f = store.read_layer("buildings", where={"building_id": "tower-a"})
    # 4 storeys of 3 m + 0.3 m roof slab: 12.3 m (BoxBuilding.height_m)
    assert len(f) == 1 and f["height_m"].iloc[0] == pytest.approx(12.3) and f["storeys"].iloc[0] == 4
    assert store.count_rows(ELEMENT_TABLE, where={"building_id": "tower-a"}) == len(b4.elements) > len(b2.elements)
    s = store.read_table(SUMMARY_TABLE, where={"building_id": "tower-a"})
    assert len(s) == 1 and s["file"].iloc[0] == "four.ifc"
    keys = set(store.list_blobs("bim/tower-a/")["key"])
    assert keys == set(b4.blob_keys().values())  # the 2-storey model's storey blobs went with it


def test_parallel_import_checks_ids_against_the_store_too(models, store):
    # with worker processes the ids are checked against a snapshot of the store's, stale records included
    from bim_import.importer import import_ifc, import_many

    b = import_ifc(models["two"], store, anchor=_anchor(0.0))
    store.write_layer("buildings", _city_buildings(), mode="replace")
    s = import_many([models["two"], models["four"]], store, anchor=_anchor(0.0), workers=2)
    assert [os.path.basename(f["file"]) for f in s.files] == ["four.ifc"]
    assert len(s.errors) == 1 and "stale" in s.errors[0]["error"] and b.building_id in s.errors[0]["error"]
    s = import_many([models["two"], models["four"]], store, anchor=_anchor(0.0), workers=2, replace=True)
    assert not s.errors and len(s.files) == 2
    assert sorted(f["replaced"]["elements"] > 0 for f in s.files) == [True, True]
    gdf = store.read_layer("buildings")
    assert len(gdf) == 5 and gdf["building_id"].is_unique


def test_an_id_held_by_a_city_building_is_refused_or_replaced(models, store):
    from bim_import.importer import import_ifc

    store.write_layer("buildings", _city_buildings(), mode="replace")
    with pytest.raises(StoreError, match="not one imported from IFC") as ei:
        import_ifc(models["two"], store, anchor=_anchor(0.0), building_id="C1")
    assert "--building-id" in str(ei.value)
    import_ifc(models["two"], store, anchor=_anchor(0.0), building_id="C1", replace=True)
    gdf = store.read_layer("buildings")
    assert sorted(gdf["building_id"]) == ["C0", "C1", "C2"] and gdf.loc[gdf["building_id"] == "C1", "lod"].iloc[0] == 3
    with pytest.raises(FieldError, match="not usable"):
        import_ifc(models["two"], store, anchor=_anchor(0.0), building_id="../x")


def _cli(*args):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    return CliRunner().invoke(get_app(), [str(a) for a in args])


def test_cli_building_id_replace_and_delete(models, store_target):
    from cim.store import open_store

    with open_store(store_target, create=True, crs=CRS) as st:
        st.write_layer("buildings", _city_buildings(), mode="replace")
    anchor = "--anchor", f"{ANCHOR_XY[0]},{ANCHOR_XY[1]},0"
    res = _cli("bim", "import", store_target, models["two"], *anchor, "--building-id", "B7", "-q")
    assert res.exit_code == 0, res.output
    assert "B7: " in res.stdout
    res = _cli("bim", "import", store_target, models["four"], *anchor, "--building-id", "B7", "-q")
    assert res.exit_code == 1 and "already in the store" in res.stdout and "--replace" in res.stdout
    res = _cli("bim", "import", store_target, models["four"], *anchor, "--building-id", "B7", "--replace", "-q")
    assert res.exit_code == 0, res.output
    assert "replaced the earlier import of B7 (from two.ifc): 1 feature(s)" in res.stdout
    assert "stale" not in res.stdout
    res = _cli("bim", "delete", store_target, "B7")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("removed B7 (from four.ifc): 1 buildings feature(s)")
    with open_store(store_target) as st:
        assert _counts(st, "B7") == {"feature": 0, "elements": 0, "summary": 0, "blobs": 0}
        assert sorted(st.read_layer("buildings")["building_id"]) == ["C0", "C1", "C2"]
    res = _cli("bim", "delete", store_target, "B7")
    assert res.exit_code != 0 and "no imported BIM building 'B7'" in res.output + str(res.exception)
    res = _cli("bim", "import", store_target, models["two"], models["four"], *anchor, "--building-id", "B8", "-q")
    assert res.exit_code != 0 and "names one building" in res.output + str(res.exception)


# 2. the anchor's height from the twin's terrain --------------------------------------------------------------------

def test_an_anchor_without_height_stands_on_the_dem(models, store):
    import io

    import trimesh

    from bim_import.importer import import_ifc

    _dem(store)
    b = import_ifc(models["two"], store, anchor=_anchor(), building_id="on-dem")
    assert b.ground_elev_m == pytest.approx(ANCHOR_DEM_Z) and b.georef.z0 == pytest.approx(ANCHOR_DEM_Z)
    assert b.summary["anchor_z"]["source"] == "dem" and "DEM" in b.summary["anchor_z"]["text"]
    f = store.read_layer("buildings", where={"building_id": "on-dem"})
    assert f["ground_elev_m"].iloc[0] == pytest.approx(ANCHOR_DEM_Z)
    (_, _, z0), (_, _, z1) = trimesh.load(io.BytesIO(b.glb), file_type="glb").bounds
    assert (z0, z1) == pytest.approx((ANCHOR_DEM_Z, ANCHOR_DEM_Z + 6.3), abs=1e-3)  # 2 x 3 m + 0.3 m roof slab
    # an explicit height wins, 0 included
    for z in (10.0, 0.0):
        b = import_ifc(models["two"], store, anchor=_anchor(z), building_id=f"z{int(z)}")
        assert b.ground_elev_m == pytest.approx(z) and b.summary["anchor_z"]["source"] == "anchor"
    # outside the terrain: height 0, and a warning saying how to give it
    from bim_import.georef import Anchor

    with pytest.warns(UserWarning, match="outside the twin's terrain"):
        b = import_ifc(models["two"], store, anchor=Anchor(600000.0, 3390057.0), building_id="off-dem")
    assert b.ground_elev_m == 0.0


def test_cli_anchor_xy_takes_the_dem_height_and_says_so(models, tmp_path):
    from cim.store import open_store

    target = str(tmp_path / "t.gpkg")
    with open_store(target, create=True, crs=CRS) as st:
        _dem(st)
    res = _cli("bim", "import", target, models["two"], "--anchor", f"{ANCHOR_XY[0]},{ANCHOR_XY[1]}", "-q")
    assert res.exit_code == 0, res.output
    assert f"placed at the anchor, height {ANCHOR_DEM_Z:.2f} m, the twin's DEM at the anchor" in res.stdout
    with open_store(target) as st:
        assert st.read_layer("buildings")["ground_elev_m"].iloc[0] == pytest.approx(ANCHOR_DEM_Z)


# 3. refused before the geometry is read ----------------------------------------------------------------------------

def _refuse(*args, **kwargs):
    raise AssertionError("read_model was called: the geometry was read before the refusal")


def test_an_unplaceable_model_and_a_taken_id_fail_before_the_geometry_is_read(models, store, monkeypatch):
    import bim_import.model
    from bim_import.importer import import_ifc, import_many

    b = import_ifc(models["two"], store, anchor=_anchor(0.0))
    monkeypatch.setattr(bim_import.model, "read_model", _refuse)
    with pytest.raises(GeoreferenceError, match="cannot be placed"):
        import_ifc(models["four"], store)  # no georeference, no anchor
    with pytest.raises(StoreError, match="already in the store"):
        import_ifc(models["two"], store, anchor=_anchor(0.0))
    s = import_many([models["two"]], store, anchor=_anchor(0.0), workers=1)
    assert len(s.errors) == 1 and "StoreError" in s.errors[0]["error"] and "read_model" not in s.errors[0]["error"]
    s = import_many([models["four"]], store, workers=1)
    assert len(s.errors) == 1 and "GeoreferenceError" in s.errors[0]["error"]
    assert _counts(store, b.building_id)["feature"] == 1


def test_a_georeferenced_duplicate_is_refused_before_the_geometry_is_read(tmp_path, store, monkeypatch):
    # a model with its own IfcMapConversion: placed and named from the file's entities, without geometry
    import bim_import.model
    from bim_import.importer import import_ifc

    path = _box(tmp_path / "geo.ifc", 2, georeferenced=True, eastings=500000.0, northings=3390000.0)
    b = import_ifc(path, store)
    assert b.georef.method == "map_conversion"
    monkeypatch.setattr(bim_import.model, "read_model", _refuse)
    with pytest.raises(StoreError, match="already in the store"):
        import_ifc(path, store)


# 4. a 3D buildings layer -------------------------------------------------------------------------------------------

def test_import_into_a_3d_buildings_layer_puts_the_footprint_at_ground_height(models, store):
    from bim_import.importer import import_ifc

    store.write_layer("buildings", _city_buildings(z=480.0), mode="replace")
    _dem(store)
    b = import_ifc(models["two"], store, anchor=_anchor(), building_id="bim-3d")
    gdf = store.read_layer("buildings")
    assert len(gdf) == 4 and bool(shapely.has_z(gdf.geometry.values).all())
    zs = shapely.get_coordinates(gdf.loc[gdf["building_id"] == "bim-3d"].geometry.values, include_z=True)[:, 2]
    assert np.allclose(zs, ANCHOR_DEM_Z) and b.ground_elev_m == pytest.approx(ANCHOR_DEM_Z)
    # replace and delete keep the layer 3D
    from bim_import.importer import delete_building

    import_ifc(models["two"], store, anchor=_anchor(), building_id="bim-3d", replace=True)
    delete_building(store, "bim-3d")
    gdf = store.read_layer("buildings")
    assert sorted(gdf["building_id"]) == ["C0", "C1", "C2"] and bool(shapely.has_z(gdf.geometry.values).all())
    assert np.allclose(shapely.get_coordinates(gdf.geometry.values, include_z=True)[:, 2], 480.0)


def test_building_id_takes_one_file(models):
    from bim_import.importer import import_many

    with pytest.raises(TwinError, match="names one building"):
        import_many([models["two"], models["four"]], None, building_id="x")
