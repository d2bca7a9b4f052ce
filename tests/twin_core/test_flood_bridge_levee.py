"""A bridge over a river with a dry raised strip (a levee) inside the water polygon under its span: the water
under the bridge is the river's surface, read from the wet cells only (the review found a 50y storm put a bridge
"1.77 m under water" from a dry levee's ground, 501.80 m, against a deck at 499.82 m). The same reading closes
roads for traffic's ``flooded_by``. And what a flood comparison's ``deeper_m2`` / ``shallower_m2`` count."""

from __future__ import annotations

from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from shapely import LineString, box

from twin_core.adapters.flood import FLOOD_EXTENT, exposure_tables, link_point_depths
from twin_core.errors import ParameterError

# 5 x 10 cells of 5 m: banks at 10 m (cols 0-2 and 8-9), a river bed at 6 m (cols 3-6) and a levee raised to
# 12 m (col 7); the water polygon covers cols 3-7, so the levee lies inside it (as a scenario's patch_raster
# puts one). A road crosses along row 2 on a bridge: its deck is at the lower bank, 10 m, + 0.5 m = 10.5 m.
X0, Y0, CELL = 410000.0, 3395025.0, 5.0
TR = Affine(CELL, 0.0, X0, 0.0, -CELL, Y0)
GROUND = np.full((5, 10), 10.0)
GROUND[:, 3:7] = 6.0
GROUND[:, 7] = 12.0
WATER = np.zeros(GROUND.shape, dtype=bool)
WATER[:, 3:8] = True
RIVER = box(X0 + 3 * CELL, Y0 - 5 * CELL, X0 + 8 * CELL, Y0)
ROAD = LineString([(X0 + 0.5 * CELL, Y0 - 2.5 * CELL), (X0 + 9.5 * CELL, Y0 - 2.5 * CELL)])
FILM = 0.002  # the rain left on the levee's top: wet to the engine (> hmin, 1 mm) but no river


def _depth(river_depth: float, land: float = 0.0) -> np.ndarray:
    d = np.where(WATER, river_depth, land)
    d[:, 7] = FILM
    return d


def _expo(depth, threshold=0.15):
    res = SimpleNamespace(max_depth=depth, time_of_wetting=np.where(depth > threshold, 60.0, np.nan))
    road = gpd.GeoDataFrame({"link_id": ["L1"]}, geometry=[ROAD])
    return exposure_tables(res, TR, {"road_links": road}, threshold, water_mask=WATER, ground=GROUND)["road_links"]


def test_a_dry_levee_under_the_span_is_no_water_surface():
    # the river 3 m deep: its surface at 9 m, 1.5 m under the deck. Read over every cell, the levee's
    # 12.002 m made it 1.502 m over the deck
    assert len(_expo(_depth(3.0))) == 0
    # the river 5 m deep: its surface at 11 m, 0.5 m over the deck, whatever the levee's ground (12 m)
    e = _expo(_depth(5.0))
    assert e["max_depth_m"].iloc[0] == pytest.approx(11.0 - 10.5, abs=1e-12)
    # a point per cell: the span (cols 3-7, the levee's included) 0.5 m under water, the dry banks none
    pts = np.array([[X0 + (c + 0.5) * CELL, Y0 - 2.5 * CELL] for c in range(10)])
    d = link_point_depths(_depth(5.0), TR, pts, np.zeros(10, int), WATER, GROUND)
    np.testing.assert_allclose(d, [0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 0], atol=1e-12)


def test_wet_is_the_runs_threshold():
    """A cell counts as water under the span when deeper than the flood run's threshold (its engine's
    wet_threshold): a levee top under 0.2 m of ponded water is water at 12.2 m to a run that counts 0.1 m as
    wet, and ground to one that counts 0.3 m; a river shallower than the threshold is no water surface."""
    pts = np.array([[X0 + (c + 0.5) * CELL, Y0 - 2.5 * CELL] for c in range(10)])
    ponded = _depth(3.0)
    ponded[:, 7] = 0.2
    idx = np.zeros(10, int)
    assert link_point_depths(ponded, TR, pts, idx, WATER, GROUND, wet_threshold=0.1).max() == pytest.approx(1.7)
    assert link_point_depths(ponded, TR, pts, idx, WATER, GROUND, wet_threshold=0.3).max() == 0.0
    assert link_point_depths(_depth(0.1), TR, pts, idx, WATER, GROUND).max() == 0.0
    for bad in (0.0, -0.1, float("nan"), "deep"):
        with pytest.raises(ParameterError, match="threshold"):
            link_point_depths(ponded, TR, pts, idx, WATER, GROUND, wet_threshold=bad)


def _twin(tmp_path):
    from cim.raster import Raster
    from twin_core import Twin

    twin = Twin.create(str(tmp_path / "bridge.gpkg"), crs="EPSG:4544")
    twin.store.write_raster("dem", Raster(GROUND.astype("float32"), TR, "EPSG:4544", unit="m"))
    twin.store.write_layer("water", gpd.GeoDataFrame({"water_id": ["R"], "kind": ["river"]}, geometry=[RIVER],
                                                     crs="EPSG:4544"))
    twin.store.write_layer("road_links", gpd.GeoDataFrame({"link_id": ["L1"]}, geometry=[ROAD], crs="EPSG:4544"))
    return twin


def test_flooded_by_closes_a_bridge_link_when_its_land_floods_not_for_the_levee(tmp_path):
    """traffic ``flooded_by`` (timed): the link's land floods past 0.3 m between the snapshots at 600 s
    (0.2 m) and 1200 s (0.4 m), at 900 s; the span over the river (surface 9 m, deck 10.5 m) is never under
    water. Read from every cell under the span, the levee's ground closed it from 0 s."""
    from twin_core.adapters.traffic import flood_closure_windows

    twin = _twin(tmp_path)
    times = np.array([0.0, 600.0, 1200.0])
    snaps = np.stack([_depth(3.0) for _ in times])
    snaps[:, 2, 1] = [0.0, 0.2, 0.4]  # a puddle beside the road on the west bank
    meta = {"engine": "simulation.flood"}
    twin.save_result("base", "f", "depth_snapshots", snaps.astype("float32"),  # as run_flood stores them
                     meta={**meta, "snapshot_times_s": times.tolist(), "transform": list(TR)[:6], "crs": "EPSG:4544"})
    twin.save_result("base", "f", "exposure_road_links",
                     pd.DataFrame({"link_id": ["L1"], "max_depth_m": [0.4], "time_of_arrival_s": [300.0],
                                   "flooded_fraction": [0.3]}), meta={**meta, "threshold_m": 0.15})
    win = flood_closure_windows(twin, None, "f", depth=0.3)
    assert win["link_id"].tolist() == ["L1"]
    assert win["closed_from_s"].iloc[0] == pytest.approx(900.0)
    assert win["closed_until_s"].iloc[0] == np.inf  # still under water when the run ended
    twin.close()


def _flood_run(twin, scenario, run, depth):
    from cim.raster import Raster

    meta = {"engine": "simulation.flood"}
    twin.save_result(scenario, run, "max_depth", Raster(np.asarray(depth, "float32"), TR, "EPSG:4544",
                                                        nodata=-9999.0, unit="m"), meta=meta)
    twin.save_result(scenario, run, "summary", {"engine": "flood", "threshold_m": 0.15, "flood_extent": FLOOD_EXTENT,
                                                "max_depth_m": 0.3}, meta=meta)


def test_the_comparison_says_what_deeper_and_shallower_count(tmp_path):
    """The review: max_depth_diff changed 529 cells (down to -0.876 m) and the summary said deeper_m2 0,
    shallower_m2 0. Both count land flooded in both runs; the river under a levee and land flooded in neither
    run are in the difference raster only, and the comparison now says so and how much area that is."""
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    twin.scenarios.create("levee")
    a = _depth(3.0)
    a[:, 0] = 0.3  # land flooded in both runs, the same depth
    b = a.copy()
    b[:, 3] = 3.0 - 0.876  # the river 0.876 m lower in one column of 5 cells
    b[0, 9] = 0.1  # land flooded in neither run (0 -> 0.1 m)
    _flood_run(twin, None, "fa", a)
    _flood_run(twin, "levee", "fb", b)
    c = compare_runs(twin, "fa", "fb")
    s = c.summary
    assert (s["deeper_m2"], s["shallower_m2"], s["newly_flooded_m2"], s["no_longer_flooded_m2"]) == (0, 0, 0, 0)
    assert s["deeper_shallower_of"] == ("land cells flooded (deeper than 0.15 m) in both runs whose max depth "
                                        "changed by at least 0.05 m")
    assert s["depth_changed_not_flooded_m2"] == (5 + 1) * CELL * CELL
    assert "rivers and lakes" in s["depth_changed_not_flooded_of"]
    lines = c.lines()
    assert "  depth_changed_not_flooded_m2: 150" in lines
    assert any(x.startswith("  deeper_shallower_of: land cells flooded (deeper than 0.15 m) in both runs")
               for x in lines)
    assert c.to_dict()["deeper_shallower_of"] == s["deeper_shallower_of"]
    twin.close()
