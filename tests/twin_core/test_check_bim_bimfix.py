"""check-bim review fixes: the stricter of the parcel's and the rules file's limit applies and the report says
where each came from; a lon/lat --anchor is refused with the point in metres (check-bim and bim import); an
empty Z in --anchor takes the terrain's height; recorded check times say UTC; an IDS check that checked nothing
is listed as "PASS (nothing checked)"."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

CRS = "EPSG:4544"
# the 60 x 60 m plot (3600 m2) of tests/bim_import/conftest.py
PARCEL = [[499980.0, 3389980.0], [500040.0, 3389980.0], [500040.0, 3390040.0], [499980.0, 3390040.0]]
# a 40 x 33 m block 10 m in from the plot's south-west corner: coverage 1320 / 3600 = 0.3667, setback 10 m
COVERAGE = 1320.0 / 3600.0
# the plot's zoning is stricter than the rules file on coverage and setback, looser on height
ZONING = {"max_height_m": 60.0, "min_setback_m": 12.0, "max_coverage": 0.35}
FILE_RULES = {"max_height_m": 24, "min_setback_m": 3, "max_site_coverage": 0.4}
GEOREF_IFC = "/work/shared/data/ifc/geographic-referencing.ifc"


@pytest.fixture(scope="module")
def ifcs(tmp_path_factory):
    from bim_import.samples import BoxBuilding, write_box_building

    d = tmp_path_factory.mktemp("bimfix")
    return {"block": str(write_box_building(BoxBuilding(40, 33, 2, 3.0, 499990.0, 3389990.0), d / "block.ifc")),
            "nogeo": str(write_box_building(BoxBuilding(20, 10, 2, 3.0, 0.0, 0.0, georeferenced=False),
                                            d / "nogeo.ifc"))}


def _zoned_twin(tmp_path, dem: bool = False) -> str:
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Polygon

    from cim.raster import Raster
    from cim.store import open_store

    target = str(tmp_path / "zoned.gpkg")
    with open_store(target, create=True, crs=CRS) as st:
        st.write_layer("parcels", gpd.GeoDataFrame({"parcel_id": ["P00001"], **{k: [v] for k, v in ZONING.items()}},
                                                   geometry=[MultiPolygon([Polygon(PARCEL)])], crs=CRS))
        if dem:  # 10 m cells over the plot, all at 480 m
            st.write_raster("dem", Raster(np.full((10, 10), 480.0, "float32"),
                                          (10.0, 0.0, 499970.0, 0.0, -10.0, 3390050.0), CRS, unit="m"))
    return target


def _rules(tmp_path, rules: dict, **more) -> str:
    p = tmp_path / "r2.yaml"
    p.write_text(json.dumps({"name": "r2", "rules": rules, **more}))  # JSON is YAML
    return str(p)


def _cli(*args):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    return CliRunner().invoke(get_app(), list(args))


def test_the_stricter_of_parcel_and_rules_file_applies(ifcs, tmp_path):
    from bim_import.compliance import check_compliance
    from cim.store import open_store

    target = _zoned_twin(tmp_path)
    with open_store(target) as st:
        report = check_compliance(ifcs["block"], {"rules": FILE_RULES}, store=st)
    got = {r.rule: (r.limit, r.passed) for r in report.results}
    # the file's 0.4 and 3 m let the block pass on a plot zoned 0.35 and 12 m (it overrode the parcel); the file's
    # 24 m is stricter than the parcel's 60 m and stays
    assert got == {"max_height_m": (24.0, True), "min_setback_m": (12.0, False), "max_site_coverage": (0.35, False)}
    cov = report.result("max_site_coverage")
    assert cov.measured == pytest.approx(COVERAGE)
    assert cov.limit_source == "parcel P00001: 0.35; rules file: 0.4; applied 0.35 (stricter)"
    assert report.result("min_setback_m").limit_source == "parcel P00001: 12; rules file: 3; applied 12 (stricter)"
    assert report.result("max_height_m").limit_source == "parcel P00001: 60; rules file: 24; applied 24 (stricter)"
    # a limit only one of them names says which
    with open_store(target) as st:
        alone = check_compliance(ifcs["block"], {"rules": {"max_far": 2.0}}, store=st)
    assert alone.result("max_far").limit_source == "rules file"
    assert alone.result("max_site_coverage").limit_source == "parcel P00001"


def test_check_bim_report_names_the_parcel_and_each_limits_source(ifcs, tmp_path):
    target = _zoned_twin(tmp_path)
    rules = _rules(tmp_path, FILE_RULES)
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    res = _cli("check-bim", ifcs["block"], "--rules", rules, "--store", target, "--out", str(out), "--html", str(html))
    assert res.exit_code == 1, res.output  # it passed: 0.367 against the file's 0.4
    assert res.stdout.splitlines()[0] == "block.ifc: FAIL (parcel P00001)"
    assert "limit: parcel P00001: 0.35; rules file: 0.4; applied 0.35 (stricter)" in res.stdout
    doc = json.loads(out.read_text())
    cov = next(r for r in doc["results"] if r["rule"] == "max_site_coverage")
    assert (cov["limit"], cov["passed"]) == (0.35, False)
    assert cov["limit_source"] == "parcel P00001: 0.35; rules file: 0.4; applied 0.35 (stricter)"
    page = html.read_text()
    assert "<th>limit from</th>" in page and "parcel P00001: 0.35; rules file: 0.4; applied 0.35 (stricter)" in page


def test_a_report_recorded_before_the_limit_source_reads_back():
    from bim_import.compliance import ComplianceReport

    old = {"model": "m.ifc", "building_id": "b", "parcel_id": "P1", "crs": CRS, "results": [
        {"rule": "max_far", "description": "", "measured": 1.0, "limit": 2.0, "unit": "1", "passed": True,
         "offending": [], "note": ""}]}
    assert ComplianceReport.from_dict(old).results[0].limit_source == ""


@pytest.mark.parametrize("cmd", ["check-bim", "bim import"])
def test_a_lonlat_anchor_is_refused_with_the_point_in_metres(ifcs, tmp_path, cmd):
    target = _zoned_twin(tmp_path)
    if cmd == "check-bim":
        res = _cli("check-bim", ifcs["nogeo"], "--rules", _rules(tmp_path, FILE_RULES), "--store", target,
                   "--anchor", "104.06,30.635")
    else:
        res = _cli("bim", "import", target, ifcs["nogeo"], "--anchor", "104.06,30.635")
    assert res.exit_code != 0 and res.exception is not None, res.output
    msg = " ".join(str(res.exception).split())
    # it warned off the terrain, then said the model stands on no parcel (or imported it 500 km away)
    assert "--anchor (104.06, 30.635) lies outside the area the twin's CRS EPSG:4544 covers" in msg
    assert "look like longitude/latitude" in msg and "409883.9,3390884.8 in EPSG:4544" in msg
    assert "stands on no parcel" not in msg and "outside the twin's terrain" not in msg


def test_anchor_with_an_empty_z_takes_the_terrain_height(ifcs, tmp_path):
    from twin_core.cli.bim import _anchor
    from twin_core.errors import GeoreferenceError

    a = _anchor("500000,3390000,,45")
    assert (a.x, a.y, a.z_given, a.rotation_deg) == (500000.0, 3390000.0, False, 45.0)
    assert _anchor("500000,3390000,12.5,45").z == 12.5
    for bad, why in (("500000,3390000,x,45", "numbers"), ("500000,,1", "numbers"), ("1,2,3,4,5", "got 5 values"),
                     ("500000,3390000,3,", "numbers")):
        with pytest.raises(GeoreferenceError, match=why):
            _anchor(bad)
    target = _zoned_twin(tmp_path, dem=True)
    res = _cli("check-bim", ifcs["nogeo"], "--rules", _rules(tmp_path, {"max_height_m": 24}), "--store", target,
               "--anchor", "500000,3390000,,45", "--json")
    assert res.exit_code == 0, res.output  # was: --anchor must be X,Y[,Z[,ROTATION_DEG]] numbers
    assert json.loads(res.stdout)["anchor_z"]["source"] == "dem"
    assert json.loads(res.stdout)["anchor_z"]["z"] == pytest.approx(480.0)


def test_recorded_check_times_say_utc():
    from twin_core.cli.bim import _utc

    assert _utc("2026-12-05T15:24:41.123456+00:00") == "2026-12-05 15:24:41 UTC"
    assert _utc("2026-12-05T23:24:41+08:00") == "2026-12-05 15:24:41 UTC"  # a store that gives local time back


def test_an_ids_check_that_checked_nothing_is_listed_so(ifcs, tmp_path):
    if not os.path.isfile(GEOREF_IFC):
        pytest.skip("no geographic-referencing.ifc in /work/shared/data/ifc")
    from bim_import.checks import list_checks
    from cim.store import open_store

    ids = os.path.join(os.path.dirname(__file__), "..", "..", "bim_import", "rules", "permit_minimum.ids")
    target = str(tmp_path / "t.gpkg")
    open_store(target, create=True, crs=CRS).close()
    res = _cli("check-bim", GEOREF_IFC, "--rules", ids, "--store", target, "--save")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "geographic-referencing.ifc: PASS (nothing checked)"
    # a check that did check something is a plain PASS
    res = _cli("check-bim", ifcs["block"], "--rules", _rules(tmp_path, {"max_height_m": 24},
                                                              parcel={"polygon": PARCEL}), "--store", target, "--save")
    assert res.exit_code == 0, res.output
    listed = _cli("bim", "checks", target)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert "PASS (nothing checked)  geographic-referencing.ifc" in lines[2]
    assert "  PASS  block.ifc" in lines[1]
    with open_store(target) as st:
        rows, _ = list_checks(st)
    assert [(r["filename"], r["passed"], r["nothing_checked"]) for r in rows] == [
        ("block.ifc", True, False), ("geographic-referencing.ifc", True, True)]  # the IDS verdict stays PASS
    one = _cli("bim", "checks", target, rows[1]["check_id"])
    assert one.stdout.startswith(f"check {rows[1]['check_id']}: PASS (nothing checked), ")
