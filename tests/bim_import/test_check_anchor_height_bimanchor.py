"""A compliance check places a model without georeference on the twin's ground whichever way its anchor comes:
``twin check-bim --anchor X,Y``, a rules file's ``anchor: [x, y]`` and ``Twin.check_bim(anchor=(x, y))`` all take
the height from the twin's DEM at x, y (they put it at height 0, sea level, but for the first), and say so; a
height given (x, y, z) is kept; a twin without a DEM keeps 0 and says so. The neighbours' sunlight rule then
measures the model where it was placed (it put the model back on the DEM, whatever height was given)."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely

CRS = "EPSG:4544"
# a 10 x 10 grid of 10 m cells from (500000, 3390000) to (500100, 3390100); cell (row r from the north, col c)
# holds 400 + 10 r + c, so (500034, 3390057) lies in row 4 (3390060 > y > 3390050), col 3: 443 m
DEM_T = (10.0, 0.0, 500000.0, 0.0, -10.0, 3390100.0)
AX, AY = 500034.0, 3390057.0
ANCHOR_DEM_Z = 443.0
PLOT = {"polygon": [[500010.0, 3390030.0], [500070.0, 3390030.0], [500070.0, 3390090.0], [500010.0, 3390090.0]],
        "parcel_id": "P-1"}


def _rules(anchor=None):
    d = {"name": "plot", "rules": {"max_height_m": 24}, "parcel": PLOT}
    if anchor is not None:
        d["anchor"] = anchor
    return d


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    """An unplaced 20 x 10 m block of 2 storeys (6.3 m): an anchor places it."""
    from bim_import.samples import BoxBuilding, write_box_building

    return str(write_box_building(BoxBuilding(20, 10, 2, 3.0, 0.0, 0.0, georeferenced=False),
                                  tmp_path_factory.mktemp("bimanchor") / "block.ifc"))


def _twin(tmp_path, dem: bool) -> str:
    from cim.raster import Raster
    from cim.store import open_store

    target = str(tmp_path / ("dem.gpkg" if dem else "flat.gpkg"))
    with open_store(target, create=True, crs=CRS) as st:
        if dem:
            data = (400.0 + 10.0 * np.arange(10)[:, None] + np.arange(10)[None, :]).astype("float32")
            st.write_raster("dem", Raster(data, DEM_T, CRS, unit="m"))
    return target


def _cli(args):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    res = CliRunner().invoke(get_app(), args)
    assert res.exit_code == 0, res.output
    return res


def test_rules_anchor_python_anchor_and_cli_anchor_agree_on_the_dem_height(block, tmp_path):
    from bim_import import check_compliance
    from bim_import.checks import get_check, record_check
    from cim.store import open_store
    from twin_core.twin import Twin

    target = _twin(tmp_path, dem=True)
    # the CLI's --anchor X,Y (grounded before this change too) ...
    rules = tmp_path / "plot.yaml"
    rules.write_text(json.dumps(_rules()))
    cli = json.loads(_cli(["check-bim", block, "--rules", str(rules), "--store", target, "--anchor", f"{AX},{AY}",
                           "--save", "--json"]).stdout)
    assert cli["anchor_z"]["source"] == "dem" and cli["anchor_z"]["z"] == pytest.approx(ANCHOR_DEM_Z)
    assert f"ground {ANCHOR_DEM_Z:.2f} m, the twin's DEM at the anchor" in cli["placement"]["text"]
    # ... the rules file's anchor: [x, y] through the CLI (it stood at ground 0.00 m) ...
    with_anchor = tmp_path / "plot_anchor.yaml"
    with_anchor.write_text(json.dumps(_rules([AX, AY])))
    res = _cli(["check-bim", block, "--rules", str(with_anchor), "--store", target, "--save", "--json"])
    d = json.loads(res.stdout)
    assert d["placement"]["how"] == "rules_anchor" and d["placement"]["height_source"] == "dem"
    assert f"ground {ANCHOR_DEM_Z:.2f} m, the twin's DEM at the anchor" in d["placement"]["text"]
    with open_store(target) as st:
        assert get_check(st, d["check_id"])["ground_elev_m"] == pytest.approx(ANCHOR_DEM_Z)  # was 0
        # ... record_check and check_compliance with the rules' anchor, in Python ...
        rec = record_check(st, block, _rules([AX, AY]), ruleset="plot")
        assert rec["ground_elev_m"] == pytest.approx(ANCHOR_DEM_Z) and rec["report"]["anchor_z"]["source"] == "dem"
        rep = check_compliance(block, _rules([AX, AY]), store=st)
        assert rep.anchor_z["z"] == pytest.approx(ANCHOR_DEM_Z) and "DEM" in rep.anchor_z["text"]
    # ... and Twin.check_bim(anchor=(x, y)), which raised AttributeError on the tuple
    with Twin.open(target) as twin:
        rep = twin.check_bim(block, _rules(), anchor=(AX, AY))
        assert rep.anchor_z["source"] == "dem" and rep.anchor_z["z"] == pytest.approx(ANCHOR_DEM_Z)
        assert json.loads(rep.to_json())["anchor_z"]["z"] == pytest.approx(ANCHOR_DEM_Z)
        # the height limit is of the building itself (roof above its 0.00 level), wherever it stands
        assert rep.result("max_height_m").measured == pytest.approx(6.3)
        # the same through the rules file's anchor
        assert twin.check_bim(block, _rules([AX, AY])).anchor_z["z"] == pytest.approx(ANCHOR_DEM_Z)
    # the plain CLI check (not saved) prints where the height came from
    res = _cli(["check-bim", block, "--rules", str(with_anchor), "--store", target])
    assert f"placed at the anchor, height {ANCHOR_DEM_Z:.2f} m, the twin's DEM at the anchor" in res.stdout


def test_a_given_height_is_kept_and_a_twin_without_dem_keeps_zero_and_says_so(block, tmp_path):
    from bim_import.checks import record_check
    from cim.store import open_store
    from twin_core.twin import Twin

    target = _twin(tmp_path, dem=True)
    with Twin.open(target) as twin:
        rep = twin.check_bim(block, _rules([AX, AY, 12.5]))
        assert rep.anchor_z == {"z": 12.5, "source": "anchor"}
        rep = twin.check_bim(block, _rules(), anchor=(AX, AY, 7.0, 90.0))
        assert rep.anchor_z == {"z": 7.0, "source": "anchor"}
        rec = record_check(twin.store, block, _rules({"x": AX, "y": AY, "z": 12.5}), ruleset="plot")
        assert rec["ground_elev_m"] == pytest.approx(12.5)
        assert rec["placement"]["text"].endswith("ground 12.50 m, the height given with the anchor")
    flat = _twin(tmp_path, dem=False)
    with Twin.open(flat) as twin:
        rep = twin.check_bim(block, _rules(), anchor=(AX, AY))
        assert rep.anchor_z["source"] == "default" and rep.anchor_z["z"] == 0.0
        assert "no DEM" in rep.anchor_z["text"]
    with open_store(flat) as st:
        rec = record_check(st, block, _rules([AX, AY]), ruleset="plot")
        assert rec["ground_elev_m"] == 0.0 and rec["placement"]["height_source"] == "default"
        assert "ground 0.00 m, height 0 (the twin has no DEM" in rec["placement"]["text"]


def test_an_anchor_off_the_dem_warns_and_a_malformed_anchor_says_what_to_give(block, tmp_path):
    from twin_core.errors import GeoreferenceError, RuleError, TwinWarning
    from twin_core.twin import Twin

    target = _twin(tmp_path, dem=True)
    with Twin.open(target) as twin:
        with pytest.warns(TwinWarning, match="outside the twin's terrain"):
            rep = twin.check_bim(block, _rules(), anchor=(AX + 500.0, AY))
        assert rep.anchor_z["source"] == "default" and "outside the twin's DEM" in rep.anchor_z["text"]
        with pytest.raises(GeoreferenceError, match=r"anchor must be \[x, y, z, rotation_deg\] numbers"):
            twin.check_bim(block, _rules(), anchor=(AX,))
        with pytest.raises(RuleError, match=r"'anchor:' must be \[x, y, z, rotation_deg\]"):
            twin.check_bim(block, _rules([AX]))
        # a georeferenced model is placed by its own georeference: no anchor height to report
        from bim_import.samples import BoxBuilding, write_box_building

        geo = write_box_building(BoxBuilding(20, 10, 2, 3.0, AX, AY), tmp_path / "geo.ifc")
        with warnings.catch_warnings():
            warnings.simplefilter("error", TwinWarning)
            assert twin.check_bim(geo, _rules()).anchor_z is None


# -- the neighbours' sunlight at the placed height ----------------------------------------------------------
X, Y = 500000.0, 3390000.0  # where the new block's south-west corner (its model origin) goes


@pytest.fixture
def sun_city(tmp_path):
    """A twin on flat ground at 500 m (its DEM) with one 20 x 10 m home, 12 m tall, 5 m north of the site."""
    from cim.raster import Raster
    from twin_core.twin import Twin

    path = str(tmp_path / "sun.gpkg")
    with Twin.create(path, crs=CRS) as twin:
        twin.store.write_raster("dem", Raster(np.full((40, 50), 500.0, "float32"),
                                              (10.0, 0.0, X - 200.0, 0.0, -10.0, Y + 200.0), CRS, unit="m"))
        twin.store.write_layer("buildings", gpd.GeoDataFrame(
            {"building_id": ["H1"], "height_m": [12.0], "use": ["residential"], "ground_elev_m": [500.0]},
            geometry=[shapely.MultiPolygon([shapely.box(X + 20, Y + 25, X + 40, Y + 35)])], crs=CRS))
    return path


def test_the_neighbours_sunlight_rule_measures_the_model_at_its_anchors_height(sun_city, tmp_path):
    from bim_import.samples import BoxBuilding, write_box_building
    from twin_core.twin import Twin

    # 60 m wide, 6 storeys (18.3 m), 5 m south of the home: standing on the ground (500 m) its top is 74 degrees
    # up from the middle of the home's south wall (atan(17.4 / 5)), above the Major Cold day's sun (at most about
    # 39 degrees at 30.6 N): those sills lose all their sun (cf. tests/twin_core/test_neighbour_sunlight.py)
    ifc = write_box_building(BoxBuilding(60, 20, 6, 3.0, 0.0, 0.0, use="office", georeferenced=False),
                             tmp_path / "block.ifc")
    rules = {"rules": {"min_neighbour_sunlight_h": 2},
             "parcel": {"polygon": [[X - 20, Y - 20], [X + 80, Y - 20], [X + 80, Y + 22], [X - 20, Y + 22]]}}
    with Twin.open(sun_city) as twin:
        on_dem = twin.check_bim(ifc, rules, anchor=(X, Y)).result("min_neighbour_sunlight_h")
        assert not on_dem.passed and on_dem.measured == 0.0 and on_dem.offending == ["H1"]
        assert "0.00 level at 500.00 m, the twin's DEM at its anchor" in on_dem.note
        # the same block with its 0.00 level given 20 m below that ground (a sunken site): its top at 498.3 m stays
        # below the sills (500.9 m), so it shades none; the rule put it back on the DEM and failed it as above
        sunk = twin.check_bim(ifc, rules, anchor=(X, Y, 480.0)).result("min_neighbour_sunlight_h")
        assert sunk.passed and sunk.offending == [] and "0 of them lose it" in sunk.note
        assert "0.00 level at 480.00 m, its anchor's height" in sunk.note
