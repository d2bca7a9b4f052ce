"""A thin levee drawn in Python (review fix_flood, item 5): ``patch_raster`` with a 2 m wide diagonal strip on a
5 m grid raised only the cells whose centre it covers, a chain with gaps water flowed through. A polygon
narrower than 1.5 cells is widened to every cell it touches (8-connected: no face left open), with a warning.
And a Manning edit to n <= 0 is refused (item 6)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage
from shapely import LineString, box

from cim.raster import Raster
from twin_core.errors import ScenarioError, TwinWarning
from twin_core.twin import Twin

X0, Y0 = 409000.0, 3390000.0


@pytest.fixture
def twin(tmp_path):
    t = Twin.create(str(tmp_path / "t.gpkg"), name="test", crs="EPSG:4544")
    tr = Affine(5, 0, X0, 0, -5, Y0 + 500)  # 120 x 100 cells of 5 m
    t.store.write_raster("dem", Raster(np.full((100, 120), 500.0, dtype="float32"), tr, "EPSG:4544", unit="m"))
    t.store.write_raster("manning", Raster(np.full((100, 120), 0.03, dtype="float32"), tr, "EPSG:4544",
                                           unit="s/m^(1/3)"))
    yield t
    t.close()


def _sides(twin, scen):
    """The 4-connected regions of the cells the edit did not raise, and the labels of a point either side."""
    raised = twin.raster("dem", scenario=scen).data > 501.0
    lab, n = ndimage.label(~raised)  # 4-connected: water moves between cells through their faces
    below = lab[90, 100]  # (X0 + 502, Y0 + 47): south-east of the levee
    above = lab[10, 10]  # (X0 + 52, Y0 + 447): north-west of it
    return raised, n, below, above


def test_a_diagonal_2_m_levee_leaves_no_gap_water_can_cross(twin):
    s = twin.scenarios.create("thin")
    line = LineString([(X0, Y0 + 100), (X0 + 600, Y0 + 550)])  # across the grid, 0.75 slope as in the review
    with pytest.warns(TwinWarning, match=r"narrower than 1.5 cells \(7.5 m\) .* widened .* every cell"):
        s.patch_raster("dem", line.buffer(1.0, cap_style="flat"), delta=3.0)
    raised, n, below, above = _sides(twin, "thin")
    assert below and above and below != above, "water can go round or through the levee"
    assert n == 2
    assert ndimage.label(raised, structure=np.ones((3, 3)))[1] == 1  # one 8-connected wall


def test_a_wide_polygon_changes_its_centres_only_without_a_word(twin):
    s = twin.scenarios.create("wide")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.patch_raster("dem", box(X0 + 101, Y0 + 101, X0 + 149, Y0 + 119), delta=2.0)  # 48 x 18 m
    raised = twin.raster("dem", scenario="wide").data > 501.0
    assert int(raised.sum()) == 10 * 4  # centres at x 102.5..147.5, y 102.5..117.5


def test_a_manning_edit_to_n_at_or_below_zero_is_refused(twin):
    s = twin.scenarios.create("negman")
    with pytest.raises(ScenarioError, match=r"Manning's n <= 0 in 200 cell\(s\) .*0.03 -> -0.97"):
        s.patch_raster("manning", (X0 + 100, Y0 + 100, X0 + 150, Y0 + 200), delta=-1.0)
    s.patch_raster("manning", (X0 + 100, Y0 + 100, X0 + 150, Y0 + 200), delta=0.02)  # rougher: fine
    assert float(twin.raster("manning", scenario="negman").data.max()) == pytest.approx(0.05)
