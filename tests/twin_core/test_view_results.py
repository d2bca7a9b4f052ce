"""twin.view(result=...) puts a stored result on the offline map, and twin.snapshots() gives a run's stack of
grids with its times and grid in one call."""

from __future__ import annotations

import base64
import inspect
import io
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from PIL import Image

from cim.raster import Raster, RasterStack
from twin_core.errors import LayerNotFoundError, ParameterError, RasterError, TwinWarning
from twin_core.twin import Twin
from twin_core.view import CLOSED, NO_VALUE

CRS = "EPSG:4544"
T = Affine(5.0, 0.0, 410000.0, 0.0, -5.0, 3395100.0)


@pytest.fixture
def city(tmp_path, two_roads, save_crowd_density):
    path = str(tmp_path / "c.gpkg")
    with Twin.create(path, name="view-results", crs=CRS) as t:
        links = two_roads
        t.store.write_layer("road_links", links)
        bld = gpd.GeoDataFrame({"building_id": ["B1", "B2"], "height_m": [10.0, 30.0], "use": ["office", "school"]},
                               geometry=[shapely.box(410005, 3395010, 410015, 3395020),
                                         shapely.box(410030, 3395010, 410040, 3395020)], crs=CRS)
        t.store.write_layer("buildings", bld)
        depth = np.arange(12, dtype="float32").reshape(3, 4) / 10
        t.save_result("base", "flood-1", "max_depth", Raster(depth, T, CRS, nodata=None, unit="m"))
        t.save_result("base", "flood-1", "hazard", Raster(depth * 3, T, CRS, nodata=None, unit="m2/s"))
        snaps = np.stack([depth * 0, depth * 0.5, depth])
        t.save_result("base", "flood-1", "depth_snapshots", snaps,
                      meta={"snapshot_times_s": [0.0, 600.0, 1200.0], "transform": list(T)[:6], "crs": CRS})
        t.save_result("base", "flood-1", "exposure_road_links",
                      pd.DataFrame({"link_id": ["b", "gone"], "max_depth_m": [0.4, 0.2]}))
        t.save_result("base", "flood-1", "mass_balance", pd.DataFrame({"quantity": ["rain"], "value": [1.5]}))
        t.save_result("base", "flood-1", "summary", {"max_depth_m": 1.1})
        t.save_result("base", "flood-1", "loose", np.ones((2, 2, 2)))
        loads = links[["link_id", "geometry"]].copy()
        loads["vc"] = [0.0, 1.5]
        loads["closed"] = [False, False]
        loads.loc[len(loads)] = ["c", shapely.LineString([(410000, 3395000), (410000, 3395100)]), np.nan, True]
        loads = gpd.GeoDataFrame(loads, geometry="geometry", crs=CRS)
        t.save_result("base", "traffic-1", "link_loads", loads)
        t.save_result("base", "access-1", "access_buildings",
                      pd.DataFrame({"building_id": ["B1", "B2"], "time_s": [60.0, np.nan], "within": [True, False]}))
        save_crowd_density(t)  # density rows from the south, its grid in the summary
        t.scenarios.create("works")
        t.save_result("works", "flood-2", "max_depth", Raster(depth * 2, T, CRS, nodata=None, unit="m"))
    return path


def _layer(deck, prefix="result:"):
    hits = [layer for layer in deck.layers if layer.id.startswith(prefix)]
    assert len(hits) == 1, [layer.id for layer in deck.layers]
    return hits[0]


def _png(layer) -> np.ndarray:
    url = str(layer.image)
    url = url[url.index("base64,") + len("base64,"):].rstrip('"')
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url))).convert("RGBA"))


def _colours(layer) -> dict:
    feats = layer.data["features"]
    key = next(k for k in ("link_id", "building_id") if k in feats[0]["properties"])
    return {f["properties"][key]: f["properties"]["_colour"] for f in feats}


def test_raster_result_is_a_coloured_bitmap_with_a_legend(city):
    with Twin.open(city) as twin:
        deck = twin.view(result="flood-1", hillshade=False)  # the run's main result: max_depth
    layer = _layer(deck)
    assert layer.type == "BitmapLayer" and layer.id == "result:flood-1:max_depth"
    assert [layer.id for layer in deck.layers] == ["result:flood-1:max_depth"]  # no buildings unless asked
    west, south, east, north = layer.bounds
    assert 104 < west < east < 106 and 29 < south < north < 32  # lon/lat of the Chengdu grid
    img = _png(layer)
    assert img[..., 3].max() > 0  # water shows
    leg = deck.legend
    assert leg["style"] == "depth" and leg["unit"] == "m" and (leg["vmin"], leg["vmax"]) == (0.01, 2.0)
    assert len(leg["stops"]) == 5 and leg["stops"][-1][0] == 2.0
    page = deck.to_html(as_string=True)
    assert 'id="legend"' in page and "max_depth (base/flood-1)" in page and "linear-gradient" in page
    assert "<script src=" not in page and "legend" not in deck.to_json()  # offline; the legend is not a deck prop


def test_value_raster_on_its_own_range_or_given_one(city):
    with Twin.open(city) as twin:
        leg = twin.view(result=("flood-1", "hazard"), hillshade=False).legend
        assert leg["style"] == "value" and leg["unit"] == "m2/s"
        assert leg["vmin"] == 0.0 and leg["vmax"] == pytest.approx(3.3)
        leg = twin.view(result=("flood-1", "hazard"), vmin=0, vmax=5, hillshade=False).legend
        assert (leg["vmin"], leg["vmax"]) == (0.0, 5.0)
        with pytest.raises(ParameterError, match="below vmax"):
            twin.view(result=("flood-1", "hazard"), vmin=5, vmax=1, hillshade=False)


def test_flood_depth_at_a_time_is_the_nearest_snapshot(city):
    with Twin.open(city) as twin:
        dry = twin.view(result=("flood-1", "depth_snapshots"), time=0, hillshade=False)
        wet = twin.view(result="flood-1", time="9min", hillshade=False)  # time=: the run's depth snapshots
    assert _png(_layer(dry))[..., 3].max() == 0  # t=0: all dry, nothing drawn
    assert _layer(wet).id == "result:flood-1:depth_snapshots"
    assert wet.legend["time_s"] == 600.0 and wet.legend["time_asked_s"] == 540.0
    assert "nearest" in wet.legend["note"] and "not interpolated" in wet.legend["note"]
    assert _png(_layer(wet))[..., 3].max() > 0


def test_crowd_density_at_a_time(city):
    with Twin.open(city) as twin:
        deck = twin.view(result=("crowd-1", "density"), time=2, hillshade=False)
    assert deck.legend["time_s"] == 2.0 and deck.legend["unit"] == "persons/m2"
    assert deck.legend["vmax"] == 2.0  # the stack's range over all its times
    img = _png(_layer(deck))
    assert img[..., 3].max() > 0


def test_time_errors(city):
    with Twin.open(city) as twin:
        with pytest.raises(ParameterError, match="outside .* 0 to 1200 s"):
            twin.view(result=("flood-1", "depth_snapshots"), time="2h", hillshade=False)
        with pytest.raises(ParameterError, match="3 snapshots.*pass time="):
            twin.view(result=("flood-1", "depth_snapshots"), hillshade=False)
        with pytest.raises(ParameterError, match="no times: leave time out"):
            twin.view(result=("flood-1", "max_depth"), time=600, hillshade=False)
        with pytest.raises(ParameterError, match="apply to a result"):
            twin.view(time=600, hillshade=False)


def test_link_loads_coloured_by_vc(city):
    with Twin.open(city) as twin:
        deck = twin.view(result="traffic-1", hillshade=False)
    layer = _layer(deck)
    assert layer.id == "result:traffic-1:link_loads" and layer.type == "GeoJsonLayer"
    c = _colours(layer)
    assert c["a"] == [40, 200, 60, 255]  # V/C 0: green, as the map page's vcColour
    assert c["b"] == [255, 30, 60, 255]  # V/C 1.5 (>= 1.2): red
    assert c["c"] == CLOSED
    assert deck.legend["field"] == "V/C" and deck.legend["high"] == "1.2 and over"
    with Twin.open(city) as twin, pytest.raises(ParameterError, match="do not apply to V/C"):
        twin.view(result="traffic-1", vmax=2, hillshade=False)


def test_exposure_table_on_its_features(city):
    with Twin.open(city) as twin:
        with pytest.warns(TwinWarning, match="1 of 2 rows"):  # "gone" is no longer a link
            deck = twin.view("buildings", result=("flood-1", "exposure_road_links"), hillshade=False)
    assert [layer.id for layer in deck.layers] == ["buildings", "result:flood-1:exposure_road_links"]
    c = _colours(_layer(deck))
    assert list(c) == ["b"] and c["b"][3] > 0 and c["b"] != NO_VALUE
    assert deck.legend["field"] == "max_depth_m" and deck.legend["style"] == "depth" and deck.legend["unit"] == "m"
    geom = _layer(deck).data["features"][0]["geometry"]
    assert geom["type"] == "LineString" and 104 < geom["coordinates"][0][0] < 106  # lon/lat


def test_access_table_coloured_by_time(city):
    with Twin.open(city) as twin:
        deck = twin.view(result="access-1", hillshade=False)
    c = _colours(_layer(deck))
    assert c["B2"] == NO_VALUE and c["B1"] != NO_VALUE  # unreachable: grey
    assert deck.legend["field"] == "time_s" and deck.legend["unit"] == "s" and deck.legend["note"] == "grey: no value"
    # the buildings stand as tall as they are, and the plain buildings layer leaves them to the result
    layer = _layer(deck)
    assert layer.extruded and {f["properties"]["height_m"] for f in layer.data["features"]} == {10.0, 30.0}
    with Twin.open(city) as twin:
        both = twin.view("buildings", result="access-1", hillshade=False)
    assert [f["properties"]["building_id"] for f in both.layers[0].data["features"]] == []
    assert len(_layer(both).data["features"]) == 2


def test_scenario_picks_the_run(city):
    with Twin.open(city) as twin:
        deck = twin.view(result="flood-2", hillshade=False)  # under "works": found there
        assert deck.legend["title"] == "max_depth (works/flood-2)"
        with pytest.raises(LayerNotFoundError, match="under scenario 'works'"):
            twin.view(result="flood-2", scenario="base", hillshade=False)


def test_clear_errors(city):
    with Twin.open(city) as twin:
        with pytest.raises(LayerNotFoundError, match="no run 'flod-1'.*flood-1"):
            twin.view(result="flod-1")
        with pytest.raises(LayerNotFoundError, match="no result 'max_dept'.*max_depth"):
            twin.view(result=("flood-1", "max_dept"))
        with pytest.raises(ParameterError, match="nothing to draw"):
            twin.view(result=("flood-1", "summary"), hillshade=False)
        with pytest.raises(ParameterError, match="no place on the map"):
            twin.view(result=("flood-1", "mass_balance"), hillshade=False)
        with pytest.raises(RasterError, match="without a grid"):
            twin.view(result=("flood-1", "loose"), time=0, hillshade=False)
        with pytest.raises(ParameterError, match="run id or \\(run id, result name\\)"):
            twin.view(result=("flood-1",))
        with pytest.raises(LayerNotFoundError, match="name one: result=\\('crowd-1', NAME\\)"):
            twin.view(result="crowd-1")  # no main result without time=


def test_view_signature_offers_result_and_time():
    params = inspect.signature(Twin.view).parameters
    assert {"result", "time", "vmin", "vmax", "scenario"} <= set(params)


def test_snapshots_flood(city):
    with Twin.open(city) as twin:
        s = twin.snapshots("flood-1")
    assert isinstance(s, RasterStack) and s.name == "depth_snapshots" and s.unit == "m"
    assert s.shape == (3, 3, 4) and s.transform == T and s.crs == CRS
    np.testing.assert_allclose(s.times_s, [0.0, 600.0, 1200.0])
    np.testing.assert_allclose(s.data[2], np.arange(12).reshape(3, 4) / 10, rtol=1e-6)
    assert s.meta == {"scenario": "base", "run": "flood-1"}


def test_snapshots_crowd_rows_turned_north_up(city):
    with Twin.open(city) as twin:
        s = twin.snapshots("crowd-1")
    assert s.name == "density" and s.unit == "persons/m2"
    assert s.transform == Affine(1.0, 0.0, 410000.0, 0.0, -1.0, 3395003.0)
    np.testing.assert_allclose(s.times_s, [0.0, 2.0])
    assert (s.data[1, -1, :] == 2.0).all() and s.data[1, :-1].sum() == 0  # the southern row is the last


def test_snapshots_to_xarray(city):
    pytest.importorskip("xarray")
    with Twin.open(city) as twin:
        da = twin.snapshots("crowd-1").to_xarray()
    assert da.dims == ("time", "y", "x") and da.attrs["units"] == "persons/m2"
    # the southernmost cells' centre is 0.5 m north of y0
    assert da.sel(time=2.0, y=3395000.5).values.tolist() == [2.0] * 4
    np.testing.assert_allclose(da["x"], [410000.5, 410001.5, 410002.5, 410003.5])


def test_snapshots_errors(city):
    with Twin.open(city) as twin:
        with pytest.raises(LayerNotFoundError, match="no stack of snapshots"):
            twin.snapshots("traffic-1")
        with pytest.raises(RasterError, match="without a grid"):
            twin.snapshots("flood-1", "loose")
        with pytest.raises(RasterError, match="raster stored without a grid"):
            twin.snapshots("flood-1", "max_depth")
        with pytest.raises(LayerNotFoundError, match="no run 'nope'"):
            twin.snapshots("nope")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no stray warnings on the happy path
            twin.snapshots("flood-1", "depth_snapshots", scenario="base")


@pytest.mark.browser
@pytest.mark.slow
def test_result_view_renders_offline_in_chromium(city, tmp_path, offline_page):
    """The flood's depth and its legend are drawn with every network request refused."""
    with Twin.open(city) as twin:
        deck = twin.view(result="flood-1", hillshade=False, pitch=0)
    path = tmp_path / "view.html"
    deck.to_html(str(path))
    with offline_page(path, settle_ms=3000) as (page, asked, errors):
        legend = page.locator("#legend")
        assert legend.is_visible() and "max_depth" in legend.inner_text()
        box = legend.bounding_box()
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    assert not asked, f"the offline page asked the network for {asked[:5]}"
    assert not errors, errors[:3]
    shot[int(box["y"]) - 2:, : int(box["x"] + box["width"]) + 2] = 0  # the legend's own blue ramp aside
    water = (shot[..., 2] - shot[..., 0] > 60)  # the depth ramp is blue; the page's background is not
    assert water.sum() > 50, water.sum()
