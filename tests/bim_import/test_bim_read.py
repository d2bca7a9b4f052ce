"""Reading the real IFC models: counts, shells, failures, georeferencing, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.bim_import.conftest import with_schema
from twin_core.errors import GeoreferenceError, ImportFormatError


def test_product_and_storey_counts_match_the_files(duplex, fzk, georef_ifc):
    # counts from /work/shared/data/ifc/README (products, storeys)
    from bim_import import read_model

    geo = read_model(georef_ifc)
    assert (duplex.n_products, len(duplex.storeys)) == (295, 4)
    assert (fzk.n_products, len(fzk.storeys)) == (127, 2)
    assert (geo.n_products, len(geo.storeys)) == (4, 1)
    assert duplex.schema == "IFC2X3" and fzk.schema == "IFC4"
    assert geo.length_unit_m == pytest.approx(0.001)
    # every element row carries GlobalId, class, storey and property sets
    row = fzk.elements.set_index("global_id").loc["2XPyKWY018sA1ygZKgQPtU"]  # an ArchiCAD interior wall
    assert row["ifc_class"] == "IfcWallStandardCase" and row["storey"] == "Erdgeschoss"
    assert "Pset_WallCommon" in row["psets"] and "BaseQuantities" in row["qsets"]


def test_duplex_surface_model_walls_get_right_volumes(duplex):
    # The Revit wall 2O2Fr$t4X7Zf8NOew3FKau is a surface model: without shell
    # reorientation its signed volume is 433 m3 in a 27 m3 bounding box.
    m = duplex.meshes["2O2Fr$t4X7Zf8NOew3FKau"]
    box = np.prod(m.vertices.max(0) - m.vertices.min(0))
    assert 0 < m.volume() <= box
    for gid in duplex.element_ids(("IfcWall",)):
        mesh = duplex.meshes[gid]
        assert 0 < mesh.volume() <= np.prod(mesh.vertices.max(0) - mesh.vertices.min(0)) + 1e-9, gid


def test_csg_elements_without_triangles_are_reported_and_the_rest_kept(fzk, georef_ifc):
    from bim_import import read_model

    geo = read_model(georef_ifc)
    assert [f["global_id"] for f in geo.failures] == ["0rBru4syGxGOZb$M8kVJuS"]  # the CSG cone + cylinder
    assert "no triangles" in geo.failures[0]["reason"]
    assert len(geo.elements) == 1  # the element itself is still imported
    # FZK: every element with a 3D body has a mesh; only 2D annotations lack one
    assert fzk.failures == []
    body = fzk.elements[fzk.elements["has_body"]]
    assert set(body["global_id"]) - set(fzk.meshes) <= set(fzk.elements.query("ifc_class == 'IfcOpeningElement'")["global_id"])


def test_millimetre_model_without_scale_lands_within_1cm(georef_ifc):
    # geographic-referencing.ifc: IfcMapConversion E 458658.78 N 5438232.79, x axis (0.2706, 0.9627),
    # lengths in mm, Scale omitted. The proxy sits at the model origin.
    from bim_import import georeference, read_model

    geo = read_model(georef_ifc, geometry=False)
    g = georeference(geo, "EPSG:25832")
    xyz = g.apply(geo.elements[["x_m", "y_m", "z_m"]].to_numpy(float))[0]
    assert math.hypot(xyz[0] - 458658.78, xyz[1] - 5438232.79) < 0.01
    # 1000 mm along the model x axis = 1 m along (0.2706, 0.9627) on the map
    p = g.apply_xy(np.array([[1.0, 0.0]]))[0]
    assert math.hypot(p[0] - (458658.78 + 0.270600445976), p[1] - (5438232.79 + 0.962691746426)) < 0.01
    assert g.scale == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("which,crs", [("duplex", "EPSG:32616"), ("fzk", "EPSG:25832")])
def test_site_lat_lon_models_land_at_their_site(which, crs, request):
    from pyproj import Transformer

    from bim_import import georeference

    model = request.getfixturevalue(which)
    g = georeference(model, crs)
    assert g.method == "site"
    X, Y = g.apply_xy(np.array([[0.0, 0.0]]))[0]
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(X, Y)
    assert lat == pytest.approx(model.georef["site"]["lat"], abs=1e-7)  # ~1 cm
    assert lon == pytest.approx(model.georef["site"]["lon"], abs=1e-7)
    if which == "fzk":
        # TrueNorth (0.766, 0.643) is 40 deg from the model x axis, so the x axis is 50 deg
        # counter-clockwise from true east; UTM 32 grid convergence at 8.44E 49.1N is -0.42 deg.
        assert g.rotation_deg == pytest.approx(50.0 - 0.42, abs=0.05)


def test_site_outside_the_twin_crs_area_is_refused(duplex):
    from bim_import import georeference

    with pytest.raises(GeoreferenceError, match=r"outside the area of the twin CRS.*anchor.*\(CLI: --anchor X,Y"):
        georeference(duplex, "EPSG:4544")


def test_no_georeference_and_no_anchor_names_the_options(boxes):
    from bim_import import Anchor, georeference, read_model

    m = read_model(boxes["nogeo"][0], geometry=False)
    with pytest.raises(GeoreferenceError, match="IfcMapConversion.*RefLatitude.*anchor"):
        georeference(m, "EPSG:4544")
    g = georeference(m, "EPSG:4544", anchor=Anchor(500000.0, 3390000.0, 500.0, rotation_deg=90.0))
    assert g.apply(np.array([[10.0, 0.0, 1.0]]))[0] == pytest.approx([500000.0, 3390010.0, 501.0])


def test_bad_files_are_refused_clearly(tmp_path, boxes):
    from bim_import import read_model

    trunc = tmp_path / "trunc.ifc"
    trunc.write_bytes(open(boxes["ok"][0], "rb").read()[:2000])
    with pytest.raises(ImportFormatError, match="truncated"):
        read_model(trunc)
    notifc = tmp_path / "plan.ifc"
    notifc.write_text("this is a PDF, really\n")
    with pytest.raises(ImportFormatError, match="not an IFC STEP file"):
        read_model(notifc)
    old = with_schema(boxes["ok"][0], tmp_path / "old.ifc", "IFC2X2_FINAL")
    with pytest.raises(ImportFormatError, match="IFC2X2_FINAL.*not supported"):
        read_model(old)
    with pytest.raises(ImportFormatError, match="does not exist"):
        read_model(tmp_path / "missing.ifc")


def _ifc2x3_with_epset(path, millimetres: bool):
    """A one-wall IFC2X3 model georeferenced only by ePSet_MapConversion / ePSet_ProjectedCRS."""
    import importlib

    api = {n: importlib.import_module(f"ifcopenshell.api.{n}") for n in
           ("project", "root", "unit", "context", "aggregate", "geometry", "pset", "spatial")}
    f = api["project"].create_file(version="IFC2X3")
    # IFC2X3 needs an owner history: a user and an application
    org = f.createIfcOrganization(None, "RongTwin")
    f.createIfcPersonAndOrganization(f.createIfcPerson(), org)
    f.createIfcApplication(org, "1", "RongTwin tests", "rongtwin")
    project = api["root"].create_entity(f, ifc_class="IfcProject", name="P")
    lu = api["unit"].add_si_unit(f, unit_type="LENGTHUNIT", prefix="MILLI" if millimetres else None)
    api["unit"].assign_unit(f, units=[lu])
    model = api["context"].add_context(f, context_type="Model")
    body = api["context"].add_context(f, context_type="Model", context_identifier="Body", target_view="MODEL_VIEW",
                                      parent=model)
    site = api["root"].create_entity(f, ifc_class="IfcSite")
    bld = api["root"].create_entity(f, ifc_class="IfcBuilding")
    st = api["root"].create_entity(f, ifc_class="IfcBuildingStorey", name="L1")
    api["aggregate"].assign_object(f, relating_object=project, products=[site])
    api["aggregate"].assign_object(f, relating_object=site, products=[bld])
    api["aggregate"].assign_object(f, relating_object=bld, products=[st])
    for p in (site, bld, st):
        api["geometry"].edit_object_placement(f, product=p)
    k = 1.0  # ifcopenshell.api takes SI lengths and writes them in the project unit
    wall = api["root"].create_entity(f, ifc_class="IfcWall", name="W")
    rep = api["geometry"].add_wall_representation(f, context=body, length=10 * k, height=3 * k, thickness=0.2 * k)
    api["geometry"].assign_representation(f, product=wall, representation=rep)
    api["geometry"].edit_object_placement(f, product=wall)
    api["spatial"].assign_container(f, relating_structure=st, products=[wall])
    ps = api["pset"].add_pset(f, product=project, name="ePSet_MapConversion")
    # Scale left out on purpose; x axis rotated 90 degrees (abscissa 0, ordinate 1)
    api["pset"].edit_pset(f, pset=ps, properties={"Eastings": 500000.0, "Northings": 3390000.0, "OrthogonalHeight": 500.0,
                                                   "XAxisAbscissa": 0.0, "XAxisOrdinate": 1.0})
    ps = api["pset"].add_pset(f, product=project, name="ePSet_ProjectedCRS")
    api["pset"].edit_pset(f, pset=ps, properties={"Name": "EPSG:4544"})
    f.write(str(path))
    return str(path)


@pytest.mark.parametrize("millimetres", [False, True])
def test_ifc2x3_epset_map_conversion(tmp_path, millimetres):
    # A 10 m wall along the model x axis, x axis pointing grid north: its far end lands 10 m north of
    # (500000, 3390000) whatever the project length unit.
    from bim_import import georeference, read_model

    m = read_model(_ifc2x3_with_epset(tmp_path / "w.ifc", millimetres))
    g = georeference(m, "EPSG:4544")
    assert g.method == "map_conversion" and g.details["source"] == "ePSet_MapConversion"
    assert g.apply(np.array([[10.0, 0.0, 3.0]]))[0] == pytest.approx([500000.0, 3390010.0, 503.0], abs=0.01)
    tri = m.all_triangles()
    assert tri[..., 0].max() == pytest.approx(10.0, abs=1e-6)  # meshes come out in metres either way
    assert m.length_unit_m == (0.001 if millimetres else 1.0)


def test_duplex_building_storeys_and_gfa(duplex):
    from bim_import import georeference
    from bim_import.building import build_building

    b = build_building(duplex, georeference(duplex, "EPSG:32616"), meshes=False)
    # Level 1 and Level 2 hold floor slabs; T/FDN is below ground and "Roof" holds the roof and a roof space
    assert b.storeys == 2 and b.gfa_source == "slab_areas"
    assert 6.0 < b.height_m < 7.0  # the Roof storey is at 6.00 m


def test_model_without_triangles_imports_its_elements_at_their_map_position(georef_ifc, tmp_path):
    from bim_import import import_ifc, query_elements
    from cim.store import open_store

    with open_store(str(tmp_path / "g.gpkg"), create=True, crs="EPSG:25832") as st:
        b = import_ifc(georef_ifc, st)
        el = query_elements(st)
        assert not st.has_layer("buildings")  # no footprint without triangles ...
    assert b.summary["warnings"] and "no building footprint" in b.summary["warnings"][0]
    row = el.iloc[0]  # ... but the element is there, placed within 1 cm, its failure recorded
    assert math.hypot(row["x"] - 458658.78, row["y"] - 5438232.79) < 0.01 and row["z"] == pytest.approx(113.7)
    assert not row["geometry_ok"] and "no triangles" in row["failure"]


def test_anchor_places_a_model_whose_own_site_is_outside_the_twin(duplex):
    # Revit left the Duplex at its default site (Chicago): the anchor the caller gives must place it (it
    # used to be ignored, so `--anchor` could never help), with a warning saying the file's own site was unusable
    from bim_import import Anchor, georeference
    from twin_core.errors import TwinWarning

    with pytest.warns(TwinWarning, match="outside the area of the twin CRS.*anchor given instead") as seen:
        g = georeference(duplex, "EPSG:4544", anchor=Anchor(500000.0, 3390000.0, 500.0))
    said = " ".join(str(w.message) for w in seen)
    assert "--anchor" not in said and "UTM" not in said  # not told to do what it did, nor to open another twin
    assert g.method == "anchor"
    assert g.apply(np.array([[10.0, 0.0, 1.0]]))[0] == pytest.approx([500010.0, 3390000.0, 501.0])
    with pytest.raises(GeoreferenceError, match="outside the area"):  # an explicit method is not overridden
        georeference(duplex, "EPSG:4544", anchor=Anchor(500000.0, 3390000.0), method="site")


@pytest.mark.parametrize("anchor", [(500000.0, 3390000.0, 0.0, float("inf")), (float("nan"), 3390000.0, 0.0, 0.0),
                                    (500000.0, 3390000.0, float("inf"), 0.0)])
def test_non_finite_anchor_is_refused_clearly(boxes, anchor):
    from bim_import import Anchor, georeference, read_model

    m = read_model(boxes["nogeo"][0], geometry=False)
    with pytest.raises(GeoreferenceError, match="finite"):  # a raw "math domain error" before
        georeference(m, "EPSG:4544", anchor=Anchor(*anchor))


def test_reimporting_a_model_without_geometry_is_refused_not_duplicated(georef_ifc, tmp_path):
    from bim_import import import_ifc
    from cim.store import open_store
    from twin_core.errors import StoreError

    with open_store(str(tmp_path / "g.gpkg"), create=True, crs="EPSG:25832") as st:
        import_ifc(georef_ifc, st)
        with pytest.raises(StoreError, match="already in the store"):
            import_ifc(georef_ifc, st)
        assert len(st.read_table("bim_buildings")) == 1 and len(st.read_table("bim_elements")) == 1


@pytest.mark.parametrize("crs_name, problem", [(None, "IfcProjectedCRS has no Name"),
                                               ("Gauss-Krueger 105", "is not a CRS pyproj knows")])
def test_an_unusable_map_crs_with_an_anchor_warns_without_offering_the_anchor(crs_name, problem):
    # the IfcMapConversion's CRS cannot be read: the anchor given places the model, and the warning said
    # "... or an anchor" to a caller who had given one
    from bim_import import Anchor, georeference
    from twin_core.errors import TwinWarning

    g = {"length_unit_m": 1.0, "map_conversion": {"eastings": 500000.0, "northings": 3390000.0, "x_axis_abscissa": 1.0,
                                                  "x_axis_ordinate": 0.0, "crs_name": crs_name}}
    with pytest.warns(TwinWarning, match=f"{problem}.*anchor given instead") as seen:
        got = georeference(g, "EPSG:4544", anchor=Anchor(500000.0, 3390000.0))
    said = " ".join(str(w.message) for w in seen)
    assert got.method == "anchor" and "an anchor" not in said and "method='site'" not in said
    with pytest.raises(GeoreferenceError, match=f"{problem}.*or an anchor"):  # without one, the advice stays
        georeference(g, "EPSG:4544")
