"""Compliance checks: hand-computed values on the authored boxes, parcels from the CIM, IDS, CLI, bad rules."""

from __future__ import annotations

import json
import os

import pytest

from tests.bim_import.conftest import PARCEL
from twin_core.errors import RuleError

RULES = {"max_height_m": 24, "min_setback_m": 3, "max_far": 1.2, "max_site_coverage": 0.3, "min_green_ratio": 0.02}

# Hand-computed on the 60 x 60 m parcel (3600 m2), see conftest.boxes:
#   ok:      height 3*3+0.3 = 9.3, setback min(20,20,20,30) = 20, FAR 600/3600, coverage 200/3600, green 100/3600
#   tall:    height 8*3+0.3 = 24.3 (> 24), FAR 1600/3600
#   setback: east edge at 500038: setback 2 (< 3), green 150/3600
#   dense:   40 x 30 x 4: FAR 4800/3600 = 1.333 (> 1.2), coverage 1200/3600 = 0.333 (> 0.3), setback 10, green 240/3600
EXPECTED = {
    "ok": {"max_height_m": (9.3, True), "min_setback_m": (20.0, True), "max_far": (600 / 3600, True),
           "max_site_coverage": (200 / 3600, True), "min_green_ratio": (100 / 3600, True)},
    "tall": {"max_height_m": (24.3, False), "min_setback_m": (20.0, True), "max_far": (1600 / 3600, True),
             "max_site_coverage": (200 / 3600, True), "min_green_ratio": (100 / 3600, True)},
    "setback": {"max_height_m": (9.3, True), "min_setback_m": (2.0, False), "max_far": (600 / 3600, True),
                "max_site_coverage": (200 / 3600, True), "min_green_ratio": (150 / 3600, True)},
    "dense": {"max_height_m": (12.3, True), "min_setback_m": (10.0, True), "max_far": (4800 / 3600, False),
              "max_site_coverage": (1200 / 3600, False), "min_green_ratio": (240 / 3600, True)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_buildings_pass_and_fail_exactly_as_computed(name, boxes):
    from bim_import.compliance import check_compliance

    report = check_compliance(boxes[name][0], {"rules": RULES, "parcel": {"polygon": PARCEL}})
    got = {r.rule: r for r in report.results}
    assert set(got) == set(EXPECTED[name])
    for rule, (value, passed) in EXPECTED[name].items():
        # the box models are exact by construction (IfcExtrudedAreaSolid boxes, float64 tessellation): only
        # rounding separates measured from computed values
        assert got[rule].measured == pytest.approx(value, rel=1e-9, abs=1e-9), rule
        assert got[rule].passed is passed, rule
    assert report.passed is all(p for _, p in EXPECTED[name].values())


def test_offending_elements_are_named(boxes):
    from bim_import import read_model
    from bim_import.compliance import check_compliance

    m = read_model(boxes["tall"][0])
    r = check_compliance(m, {"rules": RULES, "parcel": {"polygon": PARCEL}}).result("max_height_m")
    names = dict(zip(m.elements["global_id"], m.elements["name"]))
    assert {names[g] for g in r.offending} == {"Roof"}  # only the roof slab reaches above 24 m (24.0 .. 24.3)
    m2 = read_model(boxes["setback"][0])
    r2 = check_compliance(m2, {"rules": RULES, "parcel": {"polygon": PARCEL}}).result("min_setback_m")
    names2 = dict(zip(m2.elements["global_id"], m2.elements["name"]))
    # the east walls (x = 20 m in the model, 2 m from the boundary), the slabs and the roof reach the east edge
    assert {"Wall 1.2", "Wall 2.2", "Wall 3.2", "Roof"} <= {names2[g] for g in r2.offending}
    assert "Wall 1.4" not in {names2[g] for g in r2.offending}  # the west wall is 22 m away


def test_limits_from_the_cim_parcel(boxes, tmp_path):
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Polygon

    from bim_import.compliance import check_compliance
    from cim.store import open_store

    with open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544") as st:
        parcels = gpd.GeoDataFrame(
            {"parcel_id": ["P-1"], "zoning": ["R2"], "max_height_m": [20.0], "max_far": [2.0], "max_coverage": [0.5],
             "min_setback_m": [3.0], "min_green_ratio": [0.05]},
            geometry=[MultiPolygon([Polygon(PARCEL)])], crs="EPSG:4544")
        st.write_layer("parcels", parcels)
        report = check_compliance(boxes["tall"][0], {"rules": {}}, store=st)
        from bim_import.importer import import_ifc

        import_ifc(boxes["tall"][0], st)  # the imported building records the parcel it stands on
        assert st.read_layer("buildings")["parcel_id"].tolist() == ["P-1"]
    assert report.parcel_id == "P-1"
    got = {r.rule: (r.limit, r.passed) for r in report.results}
    assert got == {"max_height_m": (20.0, False), "min_setback_m": (3.0, True), "max_far": (2.0, True),
                   "max_site_coverage": (0.5, True), "min_green_ratio": (0.05, False)}


def test_ids_requirements_with_ifctester(boxes, fzk, tmp_path):
    import os

    from bim_import.compliance import check_compliance

    ids = os.path.join(os.path.dirname(__import__("bim_import").__file__), "rules", "permit_minimum.ids")
    ok = check_compliance(boxes["ok"][0], {"ids": ids, "parcel": {"polygon": PARCEL}})
    assert ok.passed and [r.rule for r in ok.results] == ["ids:External walls declare IsExternal",
                                                         "ids:Doors say whether they are fire exits"]
    # FZK-Haus: only Innentuer-2 has Pset_DoorCommon.FireExit, the other four doors fail
    x0, y0, x1, y1 = 458800.0, 5438700.0, 458950.0, 5438850.0
    r = check_compliance(fzk, {"ids": ids, "parcel": {"polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}},
                         twin_crs="EPSG:25832").result("ids:Doors say whether they are fire exits")
    names = dict(zip(fzk.elements["global_id"], fzk.elements["name"]))
    assert not r.passed and sorted(names[g] for g in r.offending) == ["Haustuer", "Innentuer-1", "Innentuer-3",
                                                                        "Terrassentuer"]


def test_bad_rules(tmp_path, boxes):
    from bim_import.compliance import check_compliance, load_rules

    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  max_heigth_m: 24\n")
    with pytest.raises(RuleError, match="unknown rule 'max_heigth_m'.*did you mean 'max_height_m'"):
        load_rules(p)
    p.write_text("rules:\n  max_far: lots\n")
    with pytest.raises(RuleError, match="must be a number"):
        load_rules(p)
    p.write_text("rules: [1, 2\n")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rules(p)
    p.write_text("rules:\n  max_far: 2\nids: nowhere.ids\n")
    with pytest.raises(RuleError, match="does not exist"):
        load_rules(p)
    with pytest.raises(RuleError, match="name the parcel|parcel polygon"):
        check_compliance(boxes["ok"][0], {"rules": {"max_far": 2}})



def test_rules_file_not_in_utf8_says_so_and_what_to_do(tmp_path):
    from bim_import.compliance import load_rules

    p = tmp_path / "r.yaml"
    p.write_bytes("name: 避难所住宅\nrules:\n  max_height_m: 24\n".encode("gbk"))  # saved by a GBK-locale editor
    with pytest.raises(RuleError, match=r"is not UTF-8 text \(byte 0x.. at offset 6\); save it as UTF-8"):
        load_rules(p)


def test_an_ids_file_that_is_not_xml_is_refused_naming_it(boxes, tmp_path):
    from bim_import.compliance import check_compliance

    ids = tmp_path / "cut.ids"
    ids.write_text("<ids><specifications>")  # cut short
    with pytest.raises(RuleError, match=r"the IDS file '.*cut\.ids' cannot be read: .*XML"):
        check_compliance(boxes["ok"][0], {"ids": str(ids), "parcel": {"polygon": PARCEL}})

def test_cli_check_bim(boxes, tmp_path):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"rules": RULES, "parcel": {"polygon": PARCEL}}))  # JSON is YAML
    runner = CliRunner()
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    ok = runner.invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules), "--html", str(html),
                                   "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output and "max_far" in html.read_text() and json.loads(out.read_text())["passed"] is True
    bad = runner.invoke(get_app(), ["check-bim", boxes["dense"][0], "--rules", str(rules), "--json"])
    assert bad.exit_code == 1
    d = json.loads(bad.output)
    assert {r["rule"] for r in d["results"] if not r["passed"]} == {"max_far", "max_site_coverage"}
    rules.write_text("rules:\n  max_hieght: 3\n")
    unknown = runner.invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules)])
    assert isinstance(unknown.exception, RuleError)


def test_cli_bim_import(boxes, tmp_path):
    from typer.testing import CliRunner

    from cim.store import open_store
    from twin_core.cli import get_app

    target = str(tmp_path / "c.gpkg")
    open_store(target, create=True, crs="EPSG:4544").close()
    res = CliRunner().invoke(get_app(), ["bim", "import", target, boxes["ok"][0], "--json", "-j", "1"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["elements_read"] == 19 and d["errors"] == []
    res = CliRunner().invoke(get_app(), ["bim", "import", target, boxes["nogeo"][0], "--quiet"])
    assert res.exit_code == 1 and "GeoreferenceError" in res.output
    res = CliRunner().invoke(get_app(), ["bim", "import", target, boxes["nogeo"][0], "--quiet", "-j", "1",
                                         "--anchor", "500100,3390100,500,0"])
    assert res.exit_code == 0, res.output
    with open_store(target) as st:
        assert len(st.read_layer("buildings")) == 2


def test_cli_floorplan_geojson(boxes, tmp_path):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    out = tmp_path / "plan.geojson"
    res = CliRunner().invoke(get_app(), ["bim", "floorplan", boxes["ok"][0], "0", "--crs", "EPSG:4544", "-o", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    kinds = [f["properties"]["kind"] for f in doc["features"]]
    assert kinds.count("walkable") == 1 and kinds.count("wall") == 5 and kinds.count("door") == 1
    door = [f for f in doc["features"] if f["properties"]["kind"] == "door"][0]
    assert door["properties"]["exit"] is True and doc["properties"]["crs"] == "EPSG:4544"
    assert kinds.count("exit") == 1
    res = CliRunner().invoke(get_app(), ["bim", "floorplan", boxes["ok"][0], "Level 7"])
    assert res.exception is not None and "no storey" in str(res.exception)


def test_plot_buildings_on_the_sample_city_break_exactly_their_rules(small_city, tmp_path):
    # One authored IFC4 building per variant on parcels of the small sample city; the limits come from
    # the CIM parcel the model stands on. Heights, FAR and coverage are checked against the values
    # computed by hand from each spec: height = storeys x 3.0 + 0.3 roof, FAR = storeys x w x d / parcel
    # area, coverage = w x d / parcel area, green (green variant) = the lawn strip / parcel area.
    from bim_import.compliance import check_compliance
    from bim_import.samples import VARIANTS, plot_buildings
    from cim.store import open_store

    parcels = small_city["parcels"]
    pbs = plot_buildings(parcels, tmp_path / "ifc")
    assert sorted(pb.variant for pb in pbs) == sorted(VARIANTS)
    area = dict(zip(parcels["parcel_id"], parcels.geometry.area))
    with open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544") as st:
        st.write_layer("parcels", parcels)
        for pb in pbs:
            r = check_compliance(pb.path, {"rules": {}}, store=st)
            assert r.parcel_id == pb.parcel_id
            assert {x.rule for x in r.results if not x.passed} == set(pb.breaks), pb.variant
            got = {x.rule: x for x in r.results}
            s, A = pb.spec, area[pb.parcel_id]
            assert got["max_height_m"].measured == pytest.approx(s.storeys * 3.0 + 0.3, rel=0.01)
            assert got["max_far"].measured == pytest.approx(s.storeys * s.width * s.depth / A, rel=0.01)
            assert got["max_site_coverage"].measured == pytest.approx(s.width * s.depth / A, rel=0.01)
            if pb.variant == "green":  # a 1 m lawn strip round the block: (w + 2)(d + 2) - w d
                assert got["min_green_ratio"].measured == pytest.approx((2 * (s.width + s.depth) + 4) / A, rel=0.01)
            if pb.variant == "setback":
                lim = got["min_setback_m"].limit
                assert 0.25 * lim <= got["min_setback_m"].measured <= 0.75 * lim


def test_a_prepared_building_is_not_read_again(boxes, monkeypatch):
    # the viewer's upload path: prepare_building, then check_compliance(path, ..., building=b)
    import bim_import.model as model_mod
    from bim_import.compliance import check_compliance
    from bim_import.importer import prepare_building

    b = prepare_building(boxes["tall"][0], "EPSG:4544")
    monkeypatch.setattr(model_mod, "read_model", lambda *a, **k: pytest.fail("the model was read again"))
    r = check_compliance(boxes["tall"][0], {"rules": RULES, "parcel": {"polygon": PARCEL}}, building=b)
    assert not r.result("max_height_m").passed and r.result("max_far").passed


@pytest.mark.parametrize("wkt, what", [
    ("POINT (500000 3390000)", "Point"),  # passed the height rule silently before
    ("POLYGON ((499980 3389980, 500040 3390040, 500040 3389980, 499980 3390040, 499980 3389980))",
     "Self-intersection"),  # zero area: ZeroDivisionError before
])
def test_parcel_wkt_must_be_a_valid_polygon(boxes, wkt, what):
    from bim_import.compliance import check_compliance

    with pytest.raises(RuleError, match=f"'parcel: wkt:' must be a valid polygon.*{what}"):
        check_compliance(boxes["ok"][0], {"rules": {"max_far": 2.0}, "parcel": {"wkt": wkt}})


def test_parcel_from_a_store_in_another_crs_is_reprojected(boxes, tmp_path):
    # the rules place the model in UTM 48N, the twin's parcels are in EPSG:4544: the parcel was compared in
    # the wrong CRS (setback -1336 m, every element "offending"); by hand in UTM 48N (same central meridian,
    # scale 0.9996): setback 20 m * 0.9996
    import geopandas as gpd
    from shapely.geometry import Polygon

    from bim_import.compliance import check_compliance
    from cim.store import open_store

    with open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544") as st:
        st.write_layer("parcels", gpd.GeoDataFrame({"parcel_id": ["P-1"]}, geometry=[Polygon(PARCEL)],
                                                   crs="EPSG:4544"))
        for parcel in ({"parcel_id": "P-1"}, None):  # named, or the one the model stands on
            rules = {"rules": {"min_setback_m": 3}, "crs": "EPSG:32648", **({"parcel": parcel} if parcel else {})}
            r = check_compliance(boxes["ok"][0], rules, store=st)
            assert r.parcel_id == "P-1" and r.passed
            assert r.result("min_setback_m").measured == pytest.approx(20.0 * 0.9996, abs=0.01)


def test_rules_file_anchor_places_a_model_without_georeference(boxes, tmp_path):
    # 'anchor:' was an accepted key that did nothing: the model could not be placed
    from bim_import.compliance import check_compliance, load_rules

    p = tmp_path / "r.yaml"
    p.write_text(f"rules: {{max_height_m: 24, min_setback_m: 3}}\nparcel: {{polygon: {PARCEL}}}\n"
                 "anchor: [500000, 3390000]\n")
    r = check_compliance(boxes["nogeo"][0], load_rules(p))
    assert r.passed and r.result("min_setback_m").measured == pytest.approx(20.0, abs=0.01)
    p.write_text("rules: {max_height_m: 24}\nanchor: [1, .inf]\n")
    with pytest.raises(RuleError, match="'anchor:' values must be finite"):
        load_rules(p)
    p.write_text("rules: {max_height_m: 24}\nanchor: {x: 1, y: 2, rot: 3}\n")
    with pytest.raises(RuleError, match="'anchor:' must be"):
        load_rules(p)


def test_model_without_geometry_fails_with_no_nan_in_the_report(georef_ifc):
    # no element of geographic-referencing.ifc has triangles: the height was NaN (invalid JSON) and the
    # site coverage passed at 0
    from bim_import.compliance import check_compliance

    poly = [[458600, 5438200], [458700, 5438200], [458700, 5438300], [458600, 5438300]]
    r = check_compliance(georef_ifc, {"rules": {"max_height_m": 24, "max_site_coverage": 0.5},
                                      "parcel": {"polygon": poly}, "crs": "EPSG:25832"})
    h, cov = r.result("max_height_m"), r.result("max_site_coverage")
    assert h.measured is None and not h.passed and "height is unknown" in h.note
    assert cov.measured is None and not cov.passed and cov.note == "no footprint"
    json.loads(r.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON report"))


PERMIT_IDS = os.path.join(os.path.dirname(__import__("bim_import").__file__), "rules", "permit_minimum.ids")


def test_shipped_ids_checks_the_walls_authoring_tools_write(fzk, duplex):
    """IDS 1.0 matches an entity's own class, not its subtypes (ifctester: ``by_type(..., include_subtypes=False)``).
    The shipped wall requirement named IFCWALL only, so FZK-Haus (13 IfcWallStandardCase walls, none declaring
    Pset_WallCommon.IsExternal) passed having checked nothing; it now checks them all."""
    from bim_import.compliance import check_compliance

    walls = "ids:External walls declare IsExternal"
    r = check_compliance(fzk, PERMIT_IDS).result(walls)
    assert (r.measured, r.limit, r.passed, len(r.offending)) == (0.0, 13.0, False, 13)
    assert r.reading() == "0 of 13 elements comply" and r.note == "13 of 13 applicable elements fail"
    d = check_compliance(duplex, PERMIT_IDS).result(walls)  # IFC2X3: 1 IfcWall + 56 IfcWallStandardCase
    assert (d.measured, d.limit, d.passed) == (57.0, 57.0, True) and d.note == "all 57 applicable elements comply"


def test_an_ids_file_alone_is_a_rule_set_needing_no_parcel_or_placement(fzk, tmp_path):
    """``--rules model.ids``: the information requirements only. Before, the IDS XML was read as YAML ("not valid
    YAML"); nothing is measured on a parcel, so FZK-Haus (georeferenced in Germany) needs no --crs or --anchor."""
    import shutil

    from bim_import.compliance import check_compliance, load_rules

    rs = load_rules(PERMIT_IDS)
    assert rs.ids == os.path.abspath(PERMIT_IDS) and rs.limits == {} and rs.parcel is None
    xml = shutil.copy(PERMIT_IDS, tmp_path / "permit.xml")  # recognised by its <ids> root, whatever its name
    assert load_rules(xml).ids == str(xml)
    rep = check_compliance(fzk, xml)
    assert rep.parcel_id is None and [r.rule for r in rep.results] == [
        "ids:External walls declare IsExternal", "ids:Doors say whether they are fire exits"]
    assert rep.result("ids:Doors say whether they are fire exits").reading() == "1 of 5 elements complies"
    yaml_named_xml = tmp_path / "notes.yaml"
    yaml_named_xml.write_text("<?xml version='1.0'?>\n<!-- not IDS -->\n<rules/>\n")
    with pytest.raises(RuleError, match="not valid YAML|must be a mapping"):
        load_rules(yaml_named_xml)


def test_an_ids_requirement_that_applies_to_nothing_says_nothing_was_checked(boxes, tmp_path):
    from typer.testing import CliRunner

    from bim_import.compliance import check_compliance
    from twin_core.cli import get_app

    text = open(PERMIT_IDS, encoding="utf-8").read().replace("<simpleValue>IFCDOOR</simpleValue>",
                                                             "<simpleValue>IFCRAMP</simpleValue>")
    ids = tmp_path / "ramps.ids"
    ids.write_text(text, encoding="utf-8")
    r = check_compliance(boxes["ok"][0], ids).result("ids:Doors say whether they are fire exits")
    assert r.passed and r.limit == 0.0 and r.reading() == "no applicable element"
    assert "nothing was checked" in r.note
    html = tmp_path / "r.html"
    res = CliRunner().invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(ids), "--html", str(html)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "fire exits" in x)
    assert line.strip() == "ok   ids:Doors say whether they are fire exits: no applicable element"
    assert "nothing was checked" in res.output  # printed although the requirement passed
    assert '<td colspan="2">no applicable element</td>' in html.read_text()


def test_cli_ids_lines_read_as_counts_and_say_how_many_offenders_are_not_shown(fzk, duplex):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    res = CliRunner().invoke(get_app(), ["check-bim", duplex.path, "--rules", PERMIT_IDS])
    assert res.exit_code == 1, res.output
    line = next(x for x in res.output.splitlines() if "fire exits" in x)
    assert line.startswith("  FAIL ids:Doors say whether they are fire exits: 0 of 14 elements comply offending: ")
    assert line.endswith(" and 4 more (--out / --html: all)") and line.count(", ") == 9


def _city_with_neighbours(path, boxes):
    """A GeoPackage twin round boxes['ok'] (footprint 500000..500020 x 3390000..3390010, 9.3 m: not high-rise):
    N_EAST 7 m east (30 m homes: high-rise, over 27 m), N_NORTH 10 m north (26 m homes: not), N_OLD on the
    footprint (the building the model replaces), N_FAR 40 m west (out of reach)."""
    import geopandas as gpd
    from shapely import box

    from cim.store import open_store

    st = open_store(str(path), create=True, crs="EPSG:4544")
    st.write_layer("buildings", gpd.GeoDataFrame(
        {"building_id": ["N_EAST", "N_NORTH", "N_OLD", "N_FAR"], "height_m": [30.0, 26.0, 6.0, 60.0],
         "use": ["residential", "residential", "residential", "office"]},
        geometry=[box(500027, 3390000, 500037, 3390010), box(500000, 3390020, 500010, 3390030),
                  box(500005, 3390002, 500015, 3390008), box(499940, 3390000, 499950, 3390010)], crs="EPSG:4544"))
    return st


def test_fire_separation_against_the_city_by_gb50016_and_by_a_number(boxes, tmp_path):
    """GB 50016-2014 table 5.2.2 (grades I/II): 6 m between two buildings that are not high-rise, 9 m where one
    is, 13 m where both are; high-rise above 27 m for homes, 24 m for other buildings (art. 2.1.1)."""
    from bim_import.compliance import check_compliance

    st = _city_with_neighbours(tmp_path / "c.gpkg", boxes)
    plot = {"parcel": {"polygon": PARCEL}}
    try:
        r = check_compliance(boxes["ok"][0], {**plot, "rules": {"min_fire_separation_m": "GB 50016"},
                                              "use": "residential"}, store=st).result("min_fire_separation_m")
        # N_EAST is 7 m away and high-rise: needs 9 m; N_NORTH 10 m, not high-rise: needs 6 m
        assert (r.passed, r.measured, r.limit, r.offending) == (False, 7.0, 9.0, ["N_EAST"])
        assert "N_EAST at 7.00 m, needs 9 m (GB50016 table 5.2.2, grades I/II: N_EAST high-rise)" in r.note
        assert "1 CIM building(s) half or more on the footprint left out as the ones it replaces: N_OLD" in r.note
        fixed = check_compliance(boxes["ok"][0], {**plot, "rules": {"min_fire_separation_m": 6}}, store=st)
        f = fixed.result("min_fire_separation_m")
        assert (f.passed, f.measured, f.limit) == (True, 7.0, 6.0)
        tall = check_compliance(boxes["tall"][0], {**plot, "rules": {"min_fire_separation_m": "gb50016"}}, store=st)
        t = tall.result("min_fire_separation_m")  # 24.3 m with no use given: high-rise by the stricter 24 m, so
        assert (t.passed, t.limit, t.offending) == (False, 13.0, ["N_EAST"])  # 13 m from N_EAST, 9 m from N_NORTH
        assert "the model and N_EAST high-rise" in t.note
        as_home = check_compliance(boxes["tall"][0], {**plot, "rules": {"min_fire_separation_m": "GB50016"},
                                                      "use": "residential"}, store=st)
        h = as_home.result("min_fire_separation_m")  # 24.3 m homes are not high-rise: 9 m from N_EAST only
        assert (h.limit, h.offending) == (9.0, ["N_EAST"])
        without = check_compliance(boxes["ok"][0], {**plot, "rules": {"min_fire_separation_m": 6}})
        w = without.result("min_fire_separation_m")  # no store: the neighbours are unknown, so it cannot pass
        assert not w.passed and w.measured is None and "needs the city model's buildings" in w.note
    finally:
        st.close()


def test_fire_separation_rule_refuses_bad_limits():
    from bim_import.compliance import RuleSet

    with pytest.raises(RuleError, match="must be a number or one of \\['GB50016'\\], got 'GB 50017'"):
        RuleSet.from_dict({"rules": {"min_fire_separation_m": "GB 50017"}})
    with pytest.raises(RuleError, match="must be a number"):  # only rules with a table take a name
        RuleSet.from_dict({"rules": {"max_height_m": "GB50016"}})
    with pytest.raises(RuleError, match="'use:' must be one of"):
        RuleSet.from_dict({"rules": {"min_fire_separation_m": 6}, "use": "palace"})
    rs = RuleSet.from_dict({"rules": {"min_fire_separation_m": "gb50016"}, "use": "office"})
    assert (rs.tables, rs.limits, rs.use) == ({"min_fire_separation_m": "GB50016"}, {"min_fire_separation_m": 6.0},
                                             "office")


def _fire_city(path, rows):
    """A GeoPackage twin (EPSG:4544) whose buildings are ``rows``: (building_id, (x0, y0, x1, y1), height_m, use,
    storeys), round boxes['ok'] (footprint 500000..500020 x 3390000..3390010, 9.3 m, 3 storeys)."""
    import geopandas as gpd
    import pandas as pd
    from shapely import box

    from cim.store import open_store

    st = open_store(str(path), create=True, crs="EPSG:4544")
    st.write_layer("buildings", gpd.GeoDataFrame(
        {"building_id": [r[0] for r in rows], "height_m": [r[2] for r in rows], "use": [r[3] for r in rows],
         "storeys": pd.array([r[4] for r in rows], dtype="Int64")},
        geometry=[box(*r[1]) for r in rows], crs="EPSG:4544"))
    return st


def _fire(model, st, limit="GB50016", **top):
    from bim_import.compliance import check_compliance

    rules = {"parcel": {"polygon": PARCEL}, "rules": {"min_fire_separation_m": limit}, **top}
    return check_compliance(model, rules, store=st).result("min_fire_separation_m")


def test_a_neighbour_touching_or_overlapping_the_footprint_fails_only_one_half_on_it_is_replaced(boxes, tmp_path):
    # every CIM building meeting the footprint was left out as "replaced": one sharing its east edge, or 0.1 m
    # over its west edge, passed silently. Replaced now: half or more of its own area on the footprint (N_HALF:
    # 6 of its 10 m north-south on it), as for the neighbours' sunlight (bim_import.building.replaced_buildings)
    st = _fire_city(tmp_path / "c.gpkg", [
        ("N_TOUCH", (500020, 3390000, 500030, 3390010), 9.0, "residential", 3),
        ("N_OVER", (499990.1, 3390000, 500000.1, 3390010), 9.0, "residential", 3),
        ("N_HALF", (500005, 3389996, 500015, 3390006), 9.0, "residential", 3)])
    try:
        for limit in ("GB50016", 6):
            r = _fire(boxes["ok"][0], st, limit)
            assert (r.passed, r.measured, r.limit, r.offending) == (False, 0.0, 6.0, ["N_OVER", "N_TOUCH"])
            assert "N_TOUCH, N_OVER touch(es) or overlap(s) the footprint" in r.note
            assert "a fire wall facing a neighbour (the table's notes) is not taken into account" in r.note
            assert "1 CIM building(s) half or more on the footprint left out as the ones it replaces: N_HALF" in r.note
    finally:
        st.close()


def test_replaced_buildings_is_one_decision_half_of_the_buildings_own_area():
    from shapely import box

    from bim_import.building import replaced_buildings

    fp = box(0, 0, 20, 10)
    got = replaced_buildings([box(0, 0, 20, 10), box(0, 5, 10, 15), box(0, 5.1, 10, 15.1), box(20, 0, 30, 10),
                              box(-100, 0, -90, 10), None, box(0, 0, 0, 10)], fp)
    assert got.tolist() == [True, True, False, False, False, False, False]
    bowtie = __import__("shapely").Polygon([(1, 1), (5, 5), (5, 1), (1, 5)])  # invalid: measured as repaired
    assert replaced_buildings([bowtie], fp).tolist() == [True]


def test_unknown_neighbour_height_or_storeys_is_taken_as_high_rise_and_said(boxes, tmp_path):
    # a NaN height was "not high-rise" (NaN > 27 is False): 6 m where 9 m may be due
    st = _fire_city(tmp_path / "c.gpkg", [("N_NAN", (500027, 3390000, 500037, 3390010), float("nan"), "residential", 3),
                                          ("N_FAR", (499930, 3390000, 499940, 3390010), float("nan"), "office", None)])
    try:
        r = _fire(boxes["ok"][0], st, use="residential")
        assert (r.passed, r.measured, r.limit, r.offending) == (False, 7.0, 9.0, ["N_NAN"])
        assert "taken as high-rise, the stricter, for want of data: N_NAN (height unknown)" in r.note
        assert "N_FAR" not in r.note  # 60 m away: it passes whatever its height
    finally:
        st.close()


def test_a_single_storey_hall_over_24_m_is_not_high_rise_unknown_storeys_are(boxes, tmp_path):
    """GB 50016-2014 art. 2.1.1: a non-residential building is high-rise over 24 m only with 2 storeys or more."""
    from bim_import.samples import BoxBuilding, write_box_building

    hall = [("HALL", (500027, 3390000, 500037, 3390010), 30.0, "public", 1)]
    st = _fire_city(tmp_path / "c.gpkg", hall)
    unknown = _fire_city(tmp_path / "u.gpkg", [hall[0][:4] + (None,)])
    homes = _fire_city(tmp_path / "h.gpkg", [("TOWER", (500027, 3390000, 500037, 3390010), 30.0, "residential", 10)])
    try:
        r = _fire(boxes["ok"][0], st, use="residential")  # 7 m from a 30 m single-storey hall: 6 m are due
        assert (r.passed, r.measured, r.limit) == (True, 7.0, 6.0) and "neither high-rise" in r.note
        u = _fire(boxes["ok"][0], unknown, use="residential")  # its storeys unknown: 2 or more, the stricter
        assert (u.passed, u.limit, u.offending) == (False, 9.0, ["HALL"])
        assert "for want of data: HALL (storeys unknown)" in u.note
        # the model a single-storey hall of 30.3 m: not high-rise either, so 9 m from the 30 m tower, not 13
        own = write_box_building(BoxBuilding(20, 10, 1, 30.0, 500000.0, 3390000.0, use="public"),
                                 tmp_path / "hall.ifc")
        h = _fire(own, homes, use="public")
        assert (h.passed, h.limit, h.offending) == (False, 9.0, ["TOWER"])
        assert "TOWER high-rise)" in h.note and "appendix A" not in h.note
    finally:
        for s in (st, unknown, homes):
            s.close()


def test_a_high_rise_model_is_told_its_height_is_to_the_roof_top(boxes, tmp_path):
    st = _fire_city(tmp_path / "c.gpkg", [("N1", (500030, 3390000, 500040, 3390010), 9.0, "residential", 3)])
    try:
        r = _fire(boxes["tall"][0], st)  # 24.3 m, no use given: high-rise by 24 m
        assert r.passed and r.limit == 9.0 and "the model high-rise" in r.note
        assert "is to its roof top; GB 50016 appendix A leaves out parapets and small rooftop rooms" in r.note
    finally:
        st.close()


def test_a_pair_with_an_industrial_building_is_not_passed_by_the_civil_table(boxes, tmp_path):
    """GB 50016-2014 table 5.2.2 is for civil buildings; a factory's separations are table 3.4.1's."""
    st = _fire_city(tmp_path / "c.gpkg", [("WORKS", (500032, 3390000, 500042, 3390010), 9.0, "industrial", 1),
                                          ("HOME", (500000, 3390020, 500010, 3390030), 9.0, "residential", 3)])
    try:
        r = _fire(boxes["ok"][0], st, use="residential")  # 12 m and 10 m: table 5.2.2 would pass both (6 m)
        assert not r.passed and r.offending == ["WORKS"]
        assert "the separation from the industrial WORKS needs a check by GB 50016 table 3.4.1" in r.note
        f = _fire(boxes["ok"][0], st, use="industrial")  # the model a factory: no pair is table 5.2.2's
        assert not f.passed and f.offending == ["HOME", "WORKS"] and f.limit == 10.0
        assert "the model is industrial ('use: industrial'), so its separation from" in f.note
        n = _fire(boxes["ok"][0], st, 6, use="industrial")  # a number of metres is the same for every pair
        assert n.passed and n.offending == []
    finally:
        st.close()


def test_fire_separation_note_is_printed_when_it_passes_and_the_description_names_the_worst_margin(boxes, tmp_path):
    from typer.testing import CliRunner

    from bim_import.compliance import RULES
    from twin_core.cli import get_app

    assert "each neighbouring building of the CIM; the worst margin shown" in RULES["min_fire_separation_m"][0]
    st = _fire_city(tmp_path / "c.gpkg", [("OLD", (500002, 3390002, 500012, 3390008), 6.0, "residential", 2),
                                          ("N1", (500027, 3390000, 500037, 3390010), 9.0, "residential", 3)])
    st.close()
    rules = tmp_path / "r.yaml"
    rules.write_text(f"rules: {{min_fire_separation_m: 6}}\nparcel: {{polygon: {PARCEL}}}\n")
    res = CliRunner().invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules),
                                         "--store", str(tmp_path / "c.gpkg")])
    assert res.exit_code == 0, res.output
    assert "  ok   min_fire_separation_m: 7.000 (limit 6.0 m)" in res.output
    assert "left out as the ones it replaces: OLD" in res.output  # hidden before: only a failure's note was shown


def test_an_ids_file_alone_is_checked_with_a_store_too(boxes, tmp_path):
    # Twin.check_bim and check-bim --store / --save always pass the twin's store: the IDS-only rule set went
    # looking for the parcel ("no 'parcels' layer")
    from typer.testing import CliRunner

    from bim_import.compliance import check_compliance
    from cim.store import open_store
    from twin_core.cli import get_app

    target = str(tmp_path / "t.gpkg")
    with open_store(target, create=True, crs="EPSG:4544") as st:
        rep = check_compliance(boxes["ok"][0], PERMIT_IDS, store=st)
        assert rep.passed and rep.parcel_id is None and rep.crs == "EPSG:4544"
        assert [r.rule for r in rep.results] == ["ids:External walls declare IsExternal",
                                                 "ids:Doors say whether they are fire exits"]
        with pytest.raises(RuleError, match="no 'parcels' layer"):  # a rules file naming only ids: takes the
            check_compliance(boxes["ok"][0], {"ids": PERMIT_IDS}, store=st)  # CIM parcel's limits too
    res = CliRunner().invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", PERMIT_IDS, "--store", target,
                                         "--save"])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "recorded as check" in res.output


def test_ids_readings_agree_in_number():
    from bim_import.compliance import RuleResult

    def reading(n, of):
        return RuleResult("ids:x", "", float(n), float(of), "elements", n == of).reading()

    assert [reading(1, 1), reading(0, 1), reading(1, 5), reading(3, 5)] == [
        "1 of 1 element complies", "0 of 1 element comply", "1 of 5 elements complies", "3 of 5 elements comply"]
