"""``twin check-bim --store S --anchor X,Y`` puts the model on the twin's ground (its DEM at X,Y), as
``twin bim import --anchor X,Y`` does; a given height (X,Y,Z) wins, and a twin without a DEM keeps height 0."""

from __future__ import annotations

import json

import numpy as np
import pytest

CRS = "EPSG:4544"
# a 10 x 10 grid of 10 m cells from (500000, 3390000) to (500100, 3390100); cell (row r from the north, col c)
# holds 400 + 10 r + c, so the anchor (500034, 3390057) lies in row 4 (3390060 > y > 3390050), col 3: 443 m
DEM_T = (10.0, 0.0, 500000.0, 0.0, -10.0, 3390100.0)
ANCHOR = "500034,3390057"
ANCHOR_DEM_Z = 443.0
# a 60 m plot around the anchor, and a rule the 2-storey 20 x 10 m block passes
RULES = {"name": "plot", "rules": {"max_height_m": 24},
         "parcel": {"polygon": [[500010.0, 3390030.0], [500070.0, 3390030.0], [500070.0, 3390090.0],
                                [500010.0, 3390090.0]], "parcel_id": "P-1"}}


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    """An unplaced 20 x 10 m block of 2 storeys: an anchor places it."""
    from bim_import.samples import BoxBuilding, write_box_building

    return str(write_box_building(BoxBuilding(20, 10, 2, 3.0, 0.0, 0.0, georeferenced=False),
                                  tmp_path_factory.mktemp("fixedits") / "block.ifc"))


def _twin(tmp_path, dem: bool) -> str:
    from cim.raster import Raster
    from cim.store import open_store

    target = str(tmp_path / ("dem.gpkg" if dem else "flat.gpkg"))
    with open_store(target, create=True, crs=CRS) as st:
        if dem:
            data = (400.0 + 10.0 * np.arange(10)[:, None] + np.arange(10)[None, :]).astype("float32")
            st.write_raster("dem", Raster(data, DEM_T, CRS, unit="m"))
    return target


def _check(block, tmp_path, target, anchor, *extra):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    rules = tmp_path / "plot.yaml"
    rules.write_text(json.dumps(RULES))
    res = CliRunner().invoke(get_app(), ["check-bim", block, "--rules", str(rules), "--store", target,
                                         "--anchor", anchor, *extra])
    assert res.exit_code == 0, res.output
    return res


def _ground(placement_text: str) -> float:
    return float(placement_text.rsplit("ground ", 1)[1].split(" m")[0])


def test_check_bim_anchor_xy_stands_on_the_dem(block, tmp_path):
    from bim_import.checks import get_check
    from cim.store import open_store

    target = _twin(tmp_path, dem=True)
    d = json.loads(_check(block, tmp_path, target, ANCHOR, "--save", "--json").stdout)
    assert d["placement"]["how"] == "anchor"
    assert _ground(d["placement"]["text"]) == pytest.approx(ANCHOR_DEM_Z)  # was ground 0.00 m
    with open_store(target) as st:
        assert get_check(st, d["check_id"])["ground_elev_m"] == pytest.approx(ANCHOR_DEM_Z)
    # the unrecorded HTML report says the same placement
    html = tmp_path / "r.html"
    _check(block, tmp_path, target, ANCHOR, "--html", str(html))
    assert f"ground {ANCHOR_DEM_Z:.2f} m" in html.read_text()


def test_check_bim_anchor_height_given_wins_and_no_dem_keeps_zero(block, tmp_path):
    target = _twin(tmp_path, dem=True)
    d = json.loads(_check(block, tmp_path, target, f"{ANCHOR},12.5", "--save", "--json").stdout)
    assert _ground(d["placement"]["text"]) == pytest.approx(12.5)
    flat = _twin(tmp_path, dem=False)
    d = json.loads(_check(block, tmp_path, flat, ANCHOR, "--save", "--json").stdout)
    assert _ground(d["placement"]["text"]) == pytest.approx(0.0)
