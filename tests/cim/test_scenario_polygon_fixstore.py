"""A raise-ground edit's polygon: a self-intersecting ("bow-tie") one is refused, saying where it crosses itself
and what to do (shapely would have made it valid its own way: not the area drawn); one outside the city (lon/lat
taken through the wrong CRS, web-map metres) says where it is and where the city is, not only "bounds
(-13043421, ...) do not overlap the raster (409220, ...)". Nothing is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from cim.raster import Raster
from twin_core.errors import RasterError, ScenarioError
from twin_core.twin import Twin

from .test_store_contract import X0, Y0

TOP = Y0 + 200  # the DEM: 40 x 50 cells of 5 m, its north-west corner at (X0, TOP)


@pytest.fixture
def twin(tmp_path):
    t = Twin.create(tmp_path / "c.gpkg", name="polygons")
    data = np.full((40, 50), 500.0, dtype="float32")
    t.store.write_raster("dem", Raster(data, Affine(5.0, 0, X0, 0, -5.0, TOP), "EPSG:4544", unit="m"))
    yield t
    t.close()


def test_a_bow_tie_polygon_is_refused_where_it_crosses_itself(twin):
    s = twin.scenarios.create("levee")
    # corners 2 and 3 swapped: the outline crosses itself at (X0 + 100, TOP - 100)
    bow = shapely.Polygon([(X0 + 50, TOP - 150), (X0 + 150, TOP - 50), (X0 + 150, TOP - 150), (X0 + 50, TOP - 50)])
    assert not bow.is_valid
    with pytest.raises(ScenarioError) as err:
        s.patch_raster("dem", bow, delta=2.0)
    msg = str(err.value)
    assert f"self-intersection at ({X0 + 100:.10g}, {TOP - 100:.10g})" in msg
    assert "crosses itself" in msg and "nothing was recorded" in msg
    assert "give the corners in order" in msg and "shapely.make_valid(polygon)" in msg
    assert len(s.edits()) == 0
    ok = shapely.Polygon([(X0 + 50, TOP - 150), (X0 + 150, TOP - 150), (X0 + 150, TOP - 50), (X0 + 50, TOP - 50)])
    w = s.patch_raster("dem", ok, delta=2.0)  # the same corners in order: the edit the user meant
    assert (w.height, w.width) == (20, 20) and len(s.edits()) == 1


def test_a_polygon_that_is_not_a_polygon_is_refused(twin):
    s = twin.scenarios.create("levee")
    with pytest.raises(ScenarioError, match="needs a non-empty Polygon or MultiPolygon, got a LineString"):
        s.patch_raster("dem", shapely.LineString([(X0, TOP - 10), (X0 + 100, TOP - 10)]), delta=2.0)
    assert len(s.edits()) == 0


def test_a_polygon_far_off_the_city_says_where_both_are_and_what_to_do(twin):
    s = twin.scenarios.create("levee")
    # lon/lat of the city given as web-map metres (EPSG:3857) by mistake: x -13043421 ...
    far = shapely.box(-13043421.0, 3390000.0, -13043000.0, 3390500.0)
    with pytest.raises(RasterError) as err:
        s.patch_raster("dem", far, delta=2.0)
    msg = str(err.value)
    assert "the polygon's bounds (-13043421, 3390000, -13043000, 3390500), lon/lat (" in msg
    assert f"do not overlap the raster 'dem' ({X0:.10g}, {TOP - 200:.10g}, {X0 + 250:.10g}, {TOP:.10g})" in msg
    assert "in the twin's CRS EPSG:4544, lon/lat (104.0" in msg  # where the city is, in degrees
    assert "the polygon of the edit lies outside the city; nothing was recorded" in msg
    assert "EPSG:3857" in msg and "Transformer.from_crs(SOURCE_CRS, 'EPSG:4544'" in msg
    assert "longitude" not in msg  # not degrees: no lon/lat hint
    assert len(s.edits()) == 0


def test_a_lonlat_polygon_keeps_the_lonlat_hint(twin):
    s = twin.scenarios.create("levee")
    with pytest.raises(RasterError) as err:
        s.patch_raster("dem", shapely.box(104.06, 30.66, 104.07, 30.67), delta=2.0)
    msg = str(err.value)
    assert "do not overlap the raster 'dem'" in msg and "outside the city" in msg
    assert "look like longitude/latitude: transform them first" in msg
    assert "Transformer.from_crs('EPSG:4326', 'EPSG:4544'" in msg
    assert len(s.edits()) == 0
