"""A raise-ground box that reaches past the DEM is clipped: say so, and by how much."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine

from cim.raster import Raster
from twin_core.errors import TwinWarning
from twin_core.twin import Twin

from .test_store_contract import X0, Y0


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="test")
    dem = np.full((100, 120), 500.0, dtype="float32")  # 600 m x 500 m from (X0, Y0 + 1500) to (X0 + 600, Y0 + 2000)
    t.store.write_raster("dem", Raster(dem, Affine(5, 0, X0, 0, -5, Y0 + 2000), "EPSG:4544", unit="m"))
    yield t
    t.close()


def test_box_half_outside_warns_with_the_share(twin):
    s = twin.scenarios.create("levee")
    box = (X0 + 500, Y0 + 1600, X0 + 700, Y0 + 1700)  # x 500-700 on a DEM ending at 600: half outside
    with pytest.warns(TwinWarning, match=r"50\.0 % of it .* is outside"):
        w = s.patch_raster("dem", box, delta=2.0)
    assert (w.height, w.width) == (20, 20)
    assert float(s.raster("dem").data.max()) == 502.0


def test_box_inside_gives_no_warning(twin):
    s = twin.scenarios.create("levee")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.patch_raster("dem", (X0 + 100, Y0 + 1600, X0 + 200, Y0 + 1700), delta=2.0)
