"""``twin compare`` on features that cross the exposure threshold (review fix_flood, item 1): an exposure table
lists only the features deeper than the threshold, and the comparison took a feature missing from one run's
table as 0 m deep. A building at 0.1488 m in A and 0.1528 m in B was "newly flooded, +0.153 m"; one at
0.1726 -> 0.1494 m "no longer flooded, -0.173 m". Its depth is now read from that run's max_depth, as the flood
adapter reads it (:func:`twin_core.adapters.flood.feature_depths`)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from shapely import Point, box

X0, Y0 = 410000.0, 3395000.0
GRID = Affine(5.0, 0.0, X0, 0.0, -5.0, Y0 + 30.0)  # 6 x 12 cells of 5 m


def _depth(left: float, right: float) -> np.ndarray:
    d = np.zeros((6, 12), dtype="float32")
    d[:, :6], d[:, 6:] = left, right
    return d


def _save(twin, scenario, run, depth, buildings: dict, pois: dict):
    from cim.raster import Raster

    meta = {"engine": "simulation.flood"}
    twin.save_result(scenario, run, "max_depth", Raster(depth, GRID, "EPSG:4544", nodata=-9999.0, unit="m"), meta=meta)
    twin.save_result(scenario, run, "exposure_buildings", pd.DataFrame(
        {"building_id": list(buildings), "max_depth_m": list(buildings.values()),
         "time_of_arrival_s": [600.0] * len(buildings)}), meta=meta)
    twin.save_result(scenario, run, "exposure_pois", pd.DataFrame(
        {"poi_id": list(pois), "max_depth_m": list(pois.values()), "time_of_arrival_s": [600.0] * len(pois)}),
        meta=meta)
    twin.save_result(scenario, run, "summary", {"engine": "flood", "threshold_m": 0.15, "max_depth_m":
                                                float(depth.max()), "exposed_buildings": len(buildings)}, meta=meta)


def test_a_building_crossing_the_threshold_by_millimetres_changes_by_millimetres(tmp_path):
    from twin_core import Twin
    from twin_core.adapters.compare import compare_runs

    twin = Twin.create(str(tmp_path / "t.gpkg"), crs="EPSG:4544")
    twin.store.write_layer("buildings", gpd.GeoDataFrame(
        {"building_id": ["B1", "B2"], "height_m": [10.0, 10.0]},
        geometry=[box(X0 + 6, Y0 + 11, X0 + 9, Y0 + 14), box(X0 + 46, Y0 + 11, X0 + 49, Y0 + 14)], crs="EPSG:4544"))
    twin.store.write_layer("pois", gpd.GeoDataFrame({"poi_id": ["school"], "kind": ["school"]},
                                                    geometry=[Point(X0 + 52, Y0 + 17)], crs="EPSG:4544"))
    twin.scenarios.create("lev3")
    # A: B1 (left) 0.1488 m, under the threshold; B2 and the school (right) 0.6360 m. B: B1 0.1528 m, B2 0.1494 m
    _save(twin, "lev3", "rain", _depth(0.1488, 0.636), {"B2": 0.636}, {"school": 0.636})
    _save(twin, "lev3", "fed", _depth(0.1528, 0.1494), {"B1": 0.1528}, {})
    c = compare_runs(twin, "rain", "fed")
    t = c.tables["exposure_buildings_change"].set_index("building_id")
    assert t.loc["B1", "change"] == "newly flooded" and t.loc["B2", "change"] == "no longer flooded"
    assert t.loc["B1", "max_depth_m_a"] == pytest.approx(0.1488, abs=1e-6)  # was NaN, taken as 0
    assert t.loc["B1", "max_depth_change_m"] == pytest.approx(0.004, abs=1e-6)  # was +0.1528
    assert t.loc["B2", "max_depth_m_b"] == pytest.approx(0.1494, abs=1e-6)
    assert t.loc["B2", "max_depth_change_m"] == pytest.approx(0.1494 - 0.636, abs=1e-6)  # was -0.636
    p = c.tables["exposure_pois_change"].set_index("poi_id")
    assert p.loc["school", "change"] == "no longer flooded"
    assert p.loc["school", "max_depth_change_m"] == pytest.approx(0.1494 - 0.636, abs=1e-6)
    assert (c.summary["buildings_newly_flooded"], c.summary["buildings_no_longer_flooded"]) == (1, 1)


def test_feature_depths_are_the_exposure_tables_depths_on_a_real_run(small_city_gpkg):
    """The one reading of a feature's depth: feature_depths on the stored max_depth gives the flooded features
    the depths of the run's own exposure tables (float32 storage aside), and the others depths <= threshold."""
    from twin_core import Twin
    from twin_core.adapters.flood import feature_depths, water_context

    with Twin.open(small_city_gpkg) as twin:
        twin.flood(None, storm="50y", duration="10min", run="fa", threshold=0.05)
        md = twin.load_result("base", "fa", "max_depth")
        wm, ground = water_context(twin, None, md.shape, md.transform)
        exposed = 0
        for layer, key in (("buildings", "building_id"), ("road_links", "link_id"), ("pois", "poi_id")):
            expo = twin.load_result("base", "fa", f"exposure_{layer}").set_index(key)["max_depth_m"]
            got = feature_depths(md.masked(), md.transform, layer, twin.layer(layer), 0.05, water_mask=wm,
                                 ground=ground).set_index(key)["max_depth_m"]
            exposed += len(expo)
            np.testing.assert_allclose(got.loc[expo.index].to_numpy(), expo.to_numpy(), atol=1e-5)
            rest = got.drop(index=expo.index)
            assert (rest.fillna(0.0) <= 0.05 + 1e-5).all(), layer
        assert exposed > 0
