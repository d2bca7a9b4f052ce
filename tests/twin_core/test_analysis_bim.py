"""Stored BIM meshes cast shadows in the twin runners (and replace their LoD1 block)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

gpd = pytest.importorskip("geopandas")
trimesh = pytest.importorskip("trimesh")

from twin_core.adapters import analysis as A  # noqa: E402

X0, Y0 = 404000.0, 3393000.0


def test_bim_mesh_shades_and_replaces_lod1(tmp_path):
    from bim_import.gltf import write_glb
    from twin_core import Twin

    twin = Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544")
    try:
        # LoD1 says 1 m high; the BIM model of the same building is a 40 m tower
        b = gpd.GeoDataFrame({"building_id": ["B1"], "height_m": [1.0], "ground_elev_m": [0.0]},
                             geometry=[shapely.MultiPolygon([shapely.box(X0, Y0, X0 + 20, Y0 + 20)])],
                             crs="EPSG:4544")
        twin.store.write_layer("buildings", b)
        tower = trimesh.creation.box(extents=[20, 20, 40]).apply_translation([10, 10, 20])  # origin-relative
        glb = write_glb([("tower", np.asarray(tower.vertices), np.asarray(tower.faces))],
                        extras={"origin": [X0, Y0], "crs": "EPSG:4544"})
        twin.store.put_blob("bim/B1/building.glb", glb, mime="model/gltf-binary", layer="buildings",
                            feature_id="B1")
        meshes, ids = A.bim_meshes(twin)
        assert ids == {"B1"} and len(meshes) == 1
        np.testing.assert_allclose(meshes[0][0].min(axis=0), [X0, Y0, 0.0], atol=1e-2)  # float32 in the GLB
        bounds = (X0, Y0 + 25, X0 + 20, Y0 + 45)  # 5-25 m north of the building
        with_bim, _ = A.run_sunlight(twin, bounds=bounds, spacing=10, solar_time=True, step_minutes=20,
                                     save=False)
        lod1_only, _ = A.run_sunlight(twin, bounds=bounds, spacing=10, solar_time=True, step_minutes=20,
                                      use_bim=False, save=False)
        # a 1 m block shades nothing 5 m away; the 40 m tower shades the strip north of it around noon
        assert np.all(lod1_only.data == pytest.approx(8.0))
        assert np.all(with_bim.data < 6.0)
    finally:
        twin.close()


def test_cells_under_a_bim_building_are_nan_like_lod1(tmp_path):
    # "cells under a building get NaN": under a building whose BIM mesh replaced its LoD1 block they got 0 h
    from bim_import.gltf import write_glb
    from twin_core import Twin

    with Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544") as twin:
        b = gpd.GeoDataFrame({"building_id": ["B1"], "height_m": [40.0], "ground_elev_m": [0.0]},
                             geometry=[shapely.MultiPolygon([shapely.box(X0, Y0, X0 + 20, Y0 + 20)])],
                             crs="EPSG:4544")
        twin.store.write_layer("buildings", b)
        tower = trimesh.creation.box(extents=[20, 20, 40]).apply_translation([10, 10, 20])
        glb = write_glb([("tower", np.asarray(tower.vertices), np.asarray(tower.faces))],
                        extras={"origin": [X0, Y0], "crs": "EPSG:4544"})
        twin.store.put_blob("bim/B1/building.glb", glb, mime="model/gltf-binary", layer="buildings",
                            feature_id="B1")
        bounds = (X0 - 10, Y0 - 10, X0 + 30, Y0 + 30)
        kw = dict(bounds=bounds, spacing=10, solar_time=True, step_minutes=30, save=False)
        with_bim, _ = A.run_sunlight(twin, **kw)
        lod1, _ = A.run_sunlight(twin, use_bim=False, **kw)
    # the same building, the same cells under it: NaN either way, and the same hours around it
    np.testing.assert_array_equal(np.isnan(with_bim.data), np.isnan(lod1.data))
    assert np.isnan(with_bim.data[1:3, 1:3]).all()
    np.testing.assert_allclose(with_bim.data, lod1.data)


@pytest.mark.parametrize("home, replaced", [((20.1, 0, 30.1, 10), False),   # 0.1 m off the east edge: a neighbour
                                            ((19.9, 0, 29.9, 10), False),   # 0.1 m over it: a neighbour still
                                            ((14.0, 0, 24.0, 10), True)])   # 6 of its 10 m on it: replaced
def test_neighbour_sunlight_replaces_what_the_fire_separation_replaces(tmp_path, home, replaced):
    # the sunlight evaluator took every building within 1 cm of the footprint as replaced (a home overlapping
    # it by 0.1 m went unchecked), the fire separation every building meeting it: one decision for both now
    # (bim_import.building.replaced_buildings: half or more of the building's own area on the footprint)
    from bim_import import check_compliance
    from bim_import.samples import BoxBuilding, write_box_building
    from cim.store import open_store

    x, y = 500000.0, 3390000.0
    ifc = write_box_building(BoxBuilding(20, 10, 3, 3.0, x, y, use="office"), tmp_path / "new.ifc")
    x0, y0, x1, y1 = home
    with open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544") as st:
        st.write_layer("buildings", gpd.GeoDataFrame(
            {"building_id": ["H1"], "height_m": [9.0], "use": ["residential"], "ground_elev_m": [500.0]},
            geometry=[shapely.box(x + x0, y + y0, x + x1, y + y1)], crs="EPSG:4544"))
        rules = {"rules": {"min_neighbour_sunlight_h": 2, "min_fire_separation_m": 6}}
        r = check_compliance(ifc, {**rules, "parcel": {"polygon": [[x - 50, y - 50], [x + 80, y - 50],
                                                                   [x + 80, y + 60], [x - 50, y + 60]]}},
                             store=st, evaluators=A.COMPLIANCE_EVALUATORS)
    sun, fire = r.result("min_neighbour_sunlight_h"), r.result("min_fire_separation_m")
    assert ("no home" in sun.note) is replaced and ("of 1 homes" in sun.note) is not replaced
    assert fire.passed is replaced and ("left out as the ones it replaces: H1" in fire.note) is replaced
