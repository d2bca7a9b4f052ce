"""Flood adapter and `twin flood`: twin scenario -> engine -> results in both stores."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from simulation.flood import CHENGDU_STORM
from twin_core.adapters.flood import GAUGE_KINDS, exposure_tables, parse_duration, prepare_flood, run_flood
from twin_core.cli import get_app
from twin_core.errors import ParameterError, RasterError, ScenarioError
from twin_core.twin import Twin

NAMES = {"max_depth", "max_velocity", "hazard", "time_of_arrival", "depth_snapshots", "gauges", "mass_balance",
         "exposure_buildings", "exposure_road_links", "exposure_pois", "summary"}


@pytest.fixture
def city_store(store_target, small_city):
    import sample_city

    sample_city.build_into(store_target, "small", seed=0, city=small_city)
    return store_target


def test_design_storm_run_saved_in_store(city_store):
    """A 20-year, 10-minute Chengdu storm on the small city, results in the store (GeoPackage and PostGIS)."""
    with Twin.open(city_store) as twin:
        fr = run_flood(twin, storm="20y", duration="10min", until="15min", run="t1", threshold=0.05)
        saved = set(twin.results(run="t1")["name"])
        assert NAMES <= saved
        res = fr.result
        # the rain volume is the formula depth on every cell (Keifer-Chu blocks add up exactly): on the open
        # cells as rain, on the roofs as roof runoff onto the cells along their walls (the default,
        # roof_runoff="adjacent"; until it, the rain on roofs was dropped); none is dropped
        depth_mm = CHENGDU_STORM.intensity_mm_min(20, 10) * 10
        open_cells = int((~fr.setup.blocked).sum())
        mb = fr.setup.model.mass_balance()
        assert mb["rain"] == pytest.approx(depth_mm / 1000 * open_cells * fr.setup.model.area, rel=1e-9)
        all_cells = fr.setup.blocked.size
        assert mb["rain"] + mb["roof_runoff"] == pytest.approx(depth_mm / 1000 * all_cells * fr.setup.model.area, rel=1e-9)
        assert mb["rain_on_blocked"] == 0.0 and fr.summary["roof_runoff_m3"] == mb["roof_runoff"] > 0
        assert abs(mb["relative_error"]) < 1e-12
        # rasters round-trip (float32 with nodata for blocked cells)
        r = twin.load_result("base", "t1", "max_depth")
        assert r.data.shape == res.max_depth.shape
        got = np.where(r.data == -9999.0, np.nan, r.data)
        np.testing.assert_allclose(got, res.max_depth, rtol=1e-6, atol=1e-6, equal_nan=True)
        snaps = twin.load_result("base", "t1", "depth_snapshots")
        assert snaps.shape == (3,) + res.max_depth.shape  # t = 0, 10, 15 min
        # gauges are the twin's rain and river sensors, sampled every minute
        g = twin.load_result("base", "t1", "gauges")
        sensors = twin.layer("sensors")
        expect = set(sensors.loc[sensors["kind"].isin(GAUGE_KINDS), "sensor_id"])
        assert set(g["sensor_id"]) == expect and len(expect) > 0
        assert len(g) == len(expect) * 16
        mbt = twin.load_result("base", "t1", "mass_balance")
        assert set(mbt["quantity"]) >= {"rain", "roof_runoff", "inflow", "boundary_out", "drainage", "storage", "error"}
        # exposure: every listed feature is above the threshold; the depth is what the raster says around it
        expo = twin.load_result("base", "t1", "exposure_road_links")
        assert (expo["max_depth_m"] > 0.05).all()
        assert set(expo.columns) >= {"link_id", "max_depth_m", "time_of_arrival_s", "flooded_fraction"}
        assert twin.load_result("base", "t1", "summary")["exposed_road_links"] == len(expo)
        # the first step (numba's compile or cache load) is timed on its own, beside the run's whole time
        stored = twin.load_result("base", "t1", "summary")
        assert stored["first_step_s"] == res.first_step_s and 0 < stored["first_step_s"] <= stored["engine_wall_s"]


def test_exposure_by_hand(small_city):
    """Exposure of a road link and a POI against depths sampled by hand from a synthetic max-depth grid."""
    import geopandas as gpd
    from affine import Affine

    class R:  # the two arrays exposure_tables reads
        max_depth = np.zeros((10, 10))
        time_of_wetting = np.full((10, 10), np.nan)

    R.max_depth[4, 2:6] = 0.4  # a strip of water along row 4 (y = 45..50)
    R.time_of_wetting[4, 2:6] = 120.0
    tr = Affine(5.0, 0, 0.0, 0, -5.0, 50.0)
    roads = gpd.GeoDataFrame({"link_id": ["wet", "dry"]},
                             geometry=[shapely.LineString([(0, 27.5), (50, 27.5)]),
                                       shapely.LineString([(0, 2.5), (50, 2.5)])])
    pois = gpd.GeoDataFrame({"poi_id": ["p"]}, geometry=[shapely.Point(12.0, 22.0)])
    out = exposure_tables(R, tr, {"road_links": roads, "pois": pois}, threshold=0.2)
    assert list(out["road_links"]["link_id"]) == ["wet"]
    assert out["road_links"]["max_depth_m"].iloc[0] == pytest.approx(0.4)
    assert out["road_links"]["time_of_arrival_s"].iloc[0] == pytest.approx(120.0)
    assert list(out["pois"]["poi_id"]) == ["p"]  # next to the wet cells (3 x 3 neighbourhood)
    assert len(out["buildings"]) == 0


def test_scenario_pond_floods_deeper(small_city_gpkg):
    """A scenario that lowers the ground by 1 m in a block holds deeper water there than the base."""
    with Twin.open(small_city_gpkg) as twin:
        dem = twin.raster("dem")
        x0, y0, x1, y1 = dem.bounds
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        box = (cx - 40, cy - 40, cx + 40, cy + 40)
        twin.scenarios.create("pond").patch_raster("dem", box, delta=-1.0)
        kw = dict(storm="10y", duration="10min", buildings="none", save=False)
        base = run_flood(twin, None, "b", **kw)
        pond = run_flood(twin, "pond", "p", **kw)
        win = dem.window_from_bounds(box)
        rs, cs = win.slices()
        assert np.nanmax(pond.result.max_depth[rs, cs]) > np.nanmax(base.result.max_depth[rs, cs]) + 0.1
        assert np.nansum(pond.result.depth[rs, cs]) > 1.5 * np.nansum(base.result.depth[rs, cs])
        with pytest.raises(ScenarioError, match="does not exist"):
            run_flood(twin, "nope", "x", **kw)


def test_building_modes(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        blk = prepare_flood(twin, duration="5min", buildings="block")
        none = prepare_flood(twin, duration="5min", buildings="none")
        raised = prepare_flood(twin, duration="5min", buildings="raise")
        assert blk.blocked.sum() > 100 and none.blocked.sum() == 0 and raised.blocked.sum() == 0
        lift = raised.model.dem - none.model.dem
        assert np.nanmax(lift) > 5.0 and (lift[blk.blocked] > 0).mean() > 0.9
        with pytest.raises(ParameterError, match="buildings must be one of"):
            prepare_flood(twin, buildings="melt")
        with pytest.raises(ParameterError, match="duration"):
            prepare_flood(twin, duration="soon")


def test_roof_runoff_adjacent_keeps_the_storm_on_the_small_city(small_city_gpkg):
    """The rain on the roofs (16 % of the grid) was dropped; with roof_runoff="adjacent" (the default) it runs
    off onto the open cells along the walls: rain + roof runoff = the design storm depth on the whole grid (the
    small city has no nodata cells), and the water can only get deeper and wider. "none" keeps the old
    behaviour: the roofs' rain is dropped and reported as rain_on_blocked."""
    depth = CHENGDU_STORM.intensity_mm_min(50, 30) * 30 / 1000  # m: Keifer-Chu blocks add up to the formula
    with Twin.open(small_city_gpkg) as twin:
        kw = dict(storm="50y", duration="30min", save=False)
        adj = run_flood(twin, **kw)
        none = run_flood(twin, roof_runoff="none", **kw)
    m = adj.setup.model
    assert int((adj.setup.roof_runoff.roof > 0).sum()) == int(adj.setup.blocked.sum())  # every blocked cell a roof
    whole = m.shape[0] * m.shape[1] * m.area
    roofs = float(adj.setup.blocked.sum()) * m.area
    assert 0.1 < roofs / whole < 0.3
    s, s0 = adj.summary, none.summary
    assert s["rain_m3"] + s["roof_runoff_m3"] == pytest.approx(depth * whole, rel=1e-9)
    assert s["roof_runoff_m3"] == pytest.approx(depth * roofs, rel=1e-9) and s["rain_on_blocked_m3"] == 0.0
    assert s0["roof_runoff_m3"] == 0.0 and s0["rain_on_blocked_m3"] == pytest.approx(depth * roofs, rel=1e-9)
    assert s0["rain_m3"] == pytest.approx(s["rain_m3"], rel=1e-12)
    assert none.setup.roof_runoff is None and adj.setup.roof_runoff.n_roofs > 100
    assert s["max_depth_m"] >= s0["max_depth_m"] and s["flooded_area_m2"] > s0["flooded_area_m2"]
    assert abs(s["mass_balance_relative_error"]) < 1e-12 and abs(s0["mass_balance_relative_error"]) < 1e-12


def test_roof_outlets_by_hand():
    """roof_outlets: the open cells sharing an edge with a roof, one pair per (roof, cell), equal shares; a cell
    between two buildings serves both; a roof walled in by nodata drains to the nearest open cells."""
    from twin_core.adapters.flood import roof_outlets

    roofs = np.zeros((6, 7), dtype=bool)
    roofs[1:3, 1:3] = True  # roof A (2 x 2)
    roofs[1:3, 4] = True  # roof B, column 3 between them is open
    rr = roof_outlets(roofs, ~roofs)
    assert rr.n_roofs == 2 and rr.roof.shape == roofs.shape
    a, b = rr.roof[1, 1], rr.roof[1, 4]
    got = {(int(k), divmod(int(c), 7)) for k, c in rr.outlets.T}
    ring_a = {(0, 1), (0, 2), (3, 1), (3, 2), (1, 0), (2, 0), (1, 3), (2, 3)}
    ring_b = {(0, 4), (3, 4), (1, 3), (2, 3), (1, 5), (2, 5)}
    assert got == {(a, rc) for rc in ring_a} | {(b, rc) for rc in ring_b}
    assert np.all(rr.share == 1.0)
    # a roof walled in by nodata (neither roof nor open): each of its cells drains to its nearest open cell
    roofs = np.zeros((5, 9), dtype=bool)
    roofs[2, 1:3] = True
    nodata = np.zeros_like(roofs)
    nodata[:, 0:4] = True  # the four west columns
    nodata &= ~roofs
    rr = roof_outlets(roofs, ~roofs & ~nodata)
    assert {(divmod(int(c), 9)) for c in rr.outlets[1]} == {(2, 4)}  # (2, 1) and (2, 2) are both nearest to (2, 4)
    assert rr.share.tolist() == [2.0]
    assert roof_outlets(np.zeros((3, 3), bool), np.ones((3, 3), bool)) is None
    with pytest.raises(ParameterError, match="roof cell cannot be open"):
        roof_outlets(roofs, np.ones_like(roofs))


def test_roof_runoff_modes_and_bad_value(small_city_gpkg):
    """Only buildings="block" has roofs that carry no water: with "raise" and "none" the rain falls on the
    building cells, so there is nothing to route."""
    with Twin.open(small_city_gpkg) as twin:
        with pytest.raises(ParameterError, match=r"roof_runoff must be one of \['adjacent', 'none'\], got 'gutter'"):
            prepare_flood(twin, duration="5min", roof_runoff="gutter")
        for mode in ("raise", "none"):
            s = prepare_flood(twin, duration="5min", buildings=mode)
            assert s.roof_runoff is None and not s.blocked.any()
        blk = prepare_flood(twin, duration="5min")
        assert blk.roof_runoff is not None
        w = blk.model.rain_weight
        assert w[blk.blocked].max() == 0.0 and w[~blk.blocked].min() == 1.0
        assert (w[~blk.blocked] - 1.0).sum() == pytest.approx(blk.blocked.sum(), rel=1e-12)


def test_nodata_cells_are_not_roofs(tmp_path):
    """A building over nodata cells: only its cells with ground are a roof; the rain on nodata is dropped."""
    import geopandas as gpd

    z = np.zeros((8, 10))
    z[:, 8:] = -9999.0  # the two east columns have no ground
    with _tiny_twin(str(tmp_path / "n.gpkg"), z, nodata=-9999.0) as twin:
        # a building over columns 6..8 (x 1030..1045) and rows 3..4 (y 1975..1985): 4 cells of roof, 2 of nodata
        bld = gpd.GeoDataFrame({"building_id": ["b1"], "height_m": [12.0]},
                               geometry=[shapely.box(1030.0, 1975.0, 1045.0, 1985.0)], crs="EPSG:4544")
        twin.store.write_layer("buildings", bld)
        with pytest.warns(Warning, match="nodata"):
            fr = run_flood(twin, storm="10y", duration="10min", save=False)
    depth = CHENGDU_STORM.intensity_mm_min(10, 10) * 10 / 1000
    s = fr.summary
    assert int((fr.setup.roof_runoff.roof > 0).sum()) == 4
    assert s["roof_runoff_m3"] == pytest.approx(depth * 4 * 25.0, rel=1e-9)
    assert s["rain_on_blocked_m3"] == pytest.approx(depth * 16 * 25.0, rel=1e-9)  # the 16 nodata cells
    assert s["rain_m3"] + s["roof_runoff_m3"] == pytest.approx(depth * (80 - 16) * 25.0, rel=1e-9)


def test_mismatched_manning_raster(small_city_gpkg):
    from cim.raster import Raster

    with Twin.open(small_city_gpkg) as twin:
        m = twin.raster("manning")
        twin.store.write_raster("manning", Raster(m.data[:50, :60].copy(), m.transform, m.crs))
        with pytest.raises(RasterError, match="same grid"):
            prepare_flood(twin)


def test_cli_flood(small_city_gpkg):
    runner = CliRunner()
    r = runner.invoke(get_app(), ["flood", small_city_gpkg, "--storm", "10y", "--duration", "10min", "--run", "cli1",
                                  "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["run"] == "cli1" and s["scenario"] == "base" and s["storm"]["return_period_y"] == 10.0
    assert abs(s["mass_balance_relative_error"]) < 1e-12
    assert s["roof_runoff_m3"] > 0 and s["rain_on_blocked_m3"] == 0.0  # the default: --roof-runoff adjacent
    with Twin.open(small_city_gpkg) as twin:
        assert NAMES <= set(twin.results(run="cli1")["name"])
    r = runner.invoke(get_app(), ["flood", small_city_gpkg, "--storm", "10y", "--duration", "10min", "--run", "cli2",
                                  "--roof-runoff", "none", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    s2 = json.loads(r.output)
    assert s2["roof_runoff_m3"] == 0.0 and s2["rain_on_blocked_m3"] == pytest.approx(s["roof_runoff_m3"], rel=1e-9)
    r = runner.invoke(get_app(), ["flood", small_city_gpkg, "--roof-runoff", "gutter", "--quiet"])
    assert r.exit_code != 0 and "roof_runoff must be one of" in str(r.exception)
    r = runner.invoke(get_app(), ["flood", small_city_gpkg, "--duration", "forever", "--quiet"])
    assert r.exit_code != 0 and isinstance(r.exception, ParameterError)
    assert parse_duration("2h") == 7200.0


def test_adapter_docstring_examples_run():
    import doctest

    import twin_core.adapters.flood as mod

    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0


# ----------------------------------------------------------------------------- bug hunt: hostile input
def _tiny_twin(target, dem, manning=None, transform=None, nodata=None):
    """A twin of just a 'dem' and a 'manning' raster (no layers)."""
    from affine import Affine

    from cim.raster import Raster

    tr = transform or Affine(5.0, 0, 1000.0, 0, -5.0, 2000.0)
    dem = np.asarray(dem, dtype="float32")
    man = np.full(dem.shape, 0.03, "float32") if manning is None else np.asarray(manning, dtype="float32")
    twin = Twin.create(target, crs="EPSG:4544")
    twin.store.write_raster("dem", Raster(dem, tr, "EPSG:4544", nodata=nodata))
    twin.store.write_raster("manning", Raster(man, tr, "EPSG:4544"))
    return twin


def test_run_id_reuse_replaces_the_flood_results_atomically(store_target, monkeypatch):
    """A save that failed half-way left new rasters next to the old summary. Now the run's flood results are
    replaced in one transaction (both stores); other engines' results under the id stay."""
    with _tiny_twin(store_target, np.zeros((6, 8))) as twin:
        run_flood(twin, storm="5y", duration="5min", run="r1")
        twin.save_result("base", "r1", "old_extra", {"left": "over"})
        old_sum = twin.load_result("base", "r1", "summary")
        old_max = twin.load_result("base", "r1", "max_depth").data.copy()
        real = twin.save_result

        def failing(scen, run, name, obj, **kw):
            if name == "gauges":
                raise RuntimeError("disk full")
            return real(scen, run, name, obj, **kw)

        monkeypatch.setattr(twin, "save_result", failing)
        with pytest.raises(RuntimeError, match="disk full"):
            run_flood(twin, storm="100y", duration="5min", run="r1")
        monkeypatch.setattr(twin, "save_result", real)
        assert twin.load_result("base", "r1", "summary") == old_sum  # the old run, whole
        np.testing.assert_array_equal(twin.load_result("base", "r1", "max_depth").data, old_max)
        assert "old_extra" in set(twin.results(run="r1")["name"])
        twin.save_result("base", "r1", "exposure_pois", {"stale": True})  # an old flood result the new run replaces
        fr = run_flood(twin, storm="100y", duration="5min", run="r1")
        # the old flood results are replaced; another engine's result under the same id stays
        assert set(twin.results(run="r1")["name"]) == NAMES | {"old_extra"}
        assert isinstance(twin.load_result("base", "r1", "exposure_pois"), pd.DataFrame)
        assert twin.load_result("base", "r1", "summary")["storm"]["return_period_y"] == 100.0
        assert fr.summary["max_depth_m"] > old_sum["max_depth_m"]


def test_bad_run_id_and_threshold_fail_before_the_run(tmp_path, monkeypatch):
    """A bad run id used to fail only when saving, after the whole simulation (lost); a bad threshold likewise
    when params were given."""
    from simulation.flood import FloodModel, FloodParameters

    def no_run(*a, **k):
        raise AssertionError("the engine ran")

    with _tiny_twin(str(tmp_path / "t.gpkg"), np.zeros((4, 4))) as twin:
        monkeypatch.setattr(FloodModel, "run", no_run)
        with pytest.raises(Exception, match="run id 'bad id' is not valid"):
            run_flood(twin, duration="5min", run="bad id")
        for bad in (0.0, -1.0, float("nan")):
            with pytest.raises(ParameterError, match="threshold"):
                run_flood(twin, duration="5min", run="ok", threshold=bad, params=FloodParameters())


def test_cli_threshold_error_names_the_option(small_city_gpkg):
    r = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--threshold", "0", "--quiet"])
    assert r.exit_code != 0 and isinstance(r.exception, ParameterError)
    assert "--threshold" in str(r.exception)


def test_bad_manning_and_dem_values_are_reported(tmp_path):
    """Manning nodata or n <= 0 was replaced by 0.03 silently; an all-nodata DEM gave 'every cell is blocked';
    an undeclared -9999 nodata was taken as a 10 km deep pit without a word."""
    import warnings

    from twin_core.errors import TwinWarning

    man = np.full((5, 5), 0.03)
    man[1, 1], man[2, 2] = 0.0, -1.0
    with _tiny_twin(str(tmp_path / "m.gpkg"), np.zeros((5, 5)), manning=man) as twin:
        with pytest.warns(TwinWarning, match="2 open cells with nodata or n <= 0"):
            setup = prepare_flood(twin, duration="5min")
        assert setup.model.n2[1, 1] == pytest.approx(0.03 ** 2)
    with _tiny_twin(str(tmp_path / "a.gpkg"), np.full((4, 4), -9999.0), nodata=-9999.0) as twin:
        with pytest.raises(RasterError, match="no valid cells"):
            prepare_flood(twin, duration="5min")
    z = np.zeros((5, 5))
    z[2, 2] = -9999.0
    with _tiny_twin(str(tmp_path / "p.gpkg"), z) as twin:
        with pytest.warns(TwinWarning, match="below -1000 m"):
            prepare_flood(twin, duration="5min")
    with _tiny_twin(str(tmp_path / "ok.gpkg"), np.zeros((5, 5))) as twin:
        with warnings.catch_warnings():
            warnings.simplefilter("error", TwinWarning)
            prepare_flood(twin, duration="5min")  # clean inputs: no warning


def test_exposure_samples_every_cell_on_non_square_grids():
    """Road links were sampled every dx along the line; on 20 x 5 m cells a north-south road skipped three of every
    four rows (the 3 x 3 neighbourhood covers one), so a flooded one-row strip across it was missed."""
    import geopandas as gpd
    from affine import Affine

    class R:
        max_depth = np.zeros((10, 10))
        time_of_wetting = np.full((10, 10), np.nan)

    R.max_depth[2, :] = 0.5  # one row of water, y = 35..40 (rows are 5 m)
    R.time_of_wetting[2, :] = 60.0
    tr = Affine(20.0, 0, 0.0, 0, -5.0, 50.0)
    # a north-south road along column 3; samples every 20 m from y = 48 fall in rows 0, 4 and 8
    roads = gpd.GeoDataFrame({"link_id": ["ns"]}, geometry=[shapely.LineString([(70.0, 48.0), (70.0, 8.0)])])
    out = exposure_tables(R, tr, {"road_links": roads}, threshold=0.2)
    assert list(out["road_links"]["link_id"]) == ["ns"]
    assert out["road_links"]["time_of_arrival_s"].iloc[0] == pytest.approx(60.0)


def test_user_hyetograph_longer_than_the_run_warns(tmp_path):
    """A 3-hour user hyetograph under the default duration ('1h') was cut after an hour without a word, while
    the summary reported the whole storm's depth."""
    from simulation.flood import Hyetograph
    from twin_core.errors import TwinWarning

    rain = Hyetograph([0.0, 3600.0, 10800.0], [10.0, 20.0])
    with _tiny_twin(str(tmp_path / "h.gpkg"), np.zeros((4, 4))) as twin:
        with pytest.warns(TwinWarning, match="rain goes on to 10800 s"):
            run_flood(twin, rain=rain, until="10min", save=False)


# ------------------------------------------------------------------ observed rain from the rain gauges
#: the clock the readings below are checked on (12:00 Beijing time on 2026-07-01, after the last of them):
#: append_readings refuses readings more than cim.sensors.MAX_AGE behind its clock, so on the real clock these
#: fixed dates would be refused from 2027-07-01 on
FEED_NOW = datetime(2026, 7, 1, 4, tzinfo=timezone.utc)
#: the clock a measured-rain window without an end is checked on (10:05 Beijing time, just after the feed's
#: last reading): rain_from_sensors refuses a default window that ended long before the clock (fix_ops)
RAIN_NOW = datetime(2026, 7, 1, 2, 5, tzinfo=timezone.utc)


def _feed(twin, gauges: dict, hours=((8, 10.0), (9, 40.0)), skip=()):
    """Readings every 5 min on 2026-07-01 (Beijing time): per gauge, an intensity per hour (scaled)."""
    from cim.sensors import append_readings

    rows = []
    for gid, scale in gauges.items():
        for h, v in hours:
            for m in range(0, 60, 5):
                if (h, m) in skip:
                    continue
                rows.append({"sensor_id": gid, "time": f"2026-07-01T{h:02d}:{m:02d}:00+08:00", "value": v * scale})
    append_readings(twin.store, rows, now=FEED_NOW)


def _rain_gauges(twin) -> list[str]:
    """The city's rain gauges, with a second one 300 m east of the first (the small city has one)."""
    s = twin.layer("sensors")
    rg = s[s["kind"] == "rain_gauge"]
    if len(rg) < 2:
        extra = rg.iloc[:1].copy()
        extra["sensor_id"] = "RG99"
        extra["geometry"] = extra.geometry.translate(300.0, 0.0)
        twin.store.write_layer("sensors", pd.concat([s, extra], ignore_index=True))
        rg = pd.concat([rg, extra])
    return sorted(rg["sensor_id"].astype(str))


def test_rain_from_the_gauges_is_the_mean_of_what_each_measured(small_city_gpkg):
    # two gauges, 10 and 20 mm/h from 08:00, 40 and 80 mm/h from 09:00, a reading every 5 min: the city gets
    # their mean, 15 mm/h then 60 mm/h; 2 h of it is 15 + 60 = 75 mm
    from twin_core.adapters.flood import rain_from_sensors

    with Twin.open(small_city_gpkg) as twin:
        g = _rain_gauges(twin)
        assert len(g) >= 2
        _feed(twin, {g[0]: 1.0, g[1]: 2.0})
        hy, info = rain_from_sensors(twin, "2h", until="2026-07-01T10:00:00+08:00")
        assert info["gauges"] == sorted(g[:2]) and info["unknown_blocks"] == 0
        assert info["start"] == "2026-07-01T00:00:00+00:00" and info["end"] == "2026-07-01T02:00:00+00:00"
        assert hy.intensity.tolist() == [15.0] * 12 + [60.0] * 12
        assert hy.total_mm() == pytest.approx(75.0) and info["peak_mm_h"] == 60.0
        # by default the window ends where the latest reading (09:55) stops holding, one reading interval on
        # (10:00): 09:00-10:00 at 60 mm/h. (It used to end at 09:55, so the newest reading counted for nothing:
        # fix_ops changed this assertion, from 08:55-09:55 = 15 * 5 / 60 + 60 * 55 / 60 mm.) The clock is 10:05.
        hy, info = rain_from_sensors(twin, "1h", now=RAIN_NOW)
        assert info["end"] == "2026-07-01T02:00:00+00:00"
        assert hy.total_mm() == pytest.approx(60.0)
        # 10-minute blocks average the 5-minute readings; a gauge reading every 5 min held 15 min covers a
        # block it reported in only once
        hy, _ = rain_from_sensors(twin, "2h", until="2026-07-01T10:00:00+08:00", step="10min")
        assert hy.intensity.tolist() == [15.0] * 6 + [60.0] * 6


def test_gaps_in_the_feed_are_refused_or_taken_as_dry(small_city_gpkg):
    from twin_core.adapters.flood import rain_from_sensors

    with Twin.open(small_city_gpkg) as twin:
        g = _rain_gauges(twin)
        # both gauges silent from 09:05 to 09:40: the 09:00 reading holds to 09:15, so 09:15-09:40 is unknown
        _feed(twin, {g[0]: 1.0, g[1]: 1.0}, skip={(9, m) for m in range(5, 40, 5)})
        with pytest.raises(ParameterError, match=r"no rain gauge reported from 2026-07-01T01:15:00\+00:00 to "
                                                 r"2026-07-01T01:40:00\+00:00 .* 5 of 24 blocks are unknown"):
            rain_from_sensors(twin, "2h", until="2026-07-01T10:00:00+08:00")
        hy, info = rain_from_sensors(twin, "2h", until="2026-07-01T10:00:00+08:00", gaps="dry")
        assert info["unknown_blocks"] == 5 and hy.intensity[15:20].tolist() == [0.0] * 5
        assert hy.total_mm() == pytest.approx(10.0 + 40.0 * 7 / 12)
        hy, info = rain_from_sensors(twin, "2h", until="2026-07-01T10:00:00+08:00", hold="40min")  # held over it
        assert info["unknown_blocks"] == 0 and hy.total_mm() == pytest.approx(50.0)


def test_observed_rain_bad_input(small_city_gpkg):
    from cim.sensors import append_readings
    from twin_core.adapters.flood import rain_from_sensors

    with Twin.open(small_city_gpkg) as twin:
        g = _rain_gauges(twin)
        with pytest.raises(ParameterError, match="no reading from any of the .* rain gauges"):
            rain_from_sensors(twin, "1h")
        with pytest.raises(ParameterError, match="has no offset"):
            rain_from_sensors(twin, "1h", until="2026-07-01T10:00:00")
        _feed(twin, {g[0]: 1.0})
        for kw, match in [({"last": "0min"}, "last must be a finite time > 0 s"),
                          ({"last": "30d"}, "more than 7 days"),
                          ({"last": "10min", "step": "1h"}, "longer than the window"),
                          ({"gaps": "zero"}, "gaps must be"),
                          ({"until": "2026-06-01T00:00:00+08:00"}, "no rain gauge reported between")]:
            with pytest.raises(ParameterError, match=match):
                rain_from_sensors(twin, **{"last": "1h", **kw})
        # a gauge whose own range lets a negative reading in (append_readings refuses it by default): the flood
        # adapter still refuses negative rain
        s = twin.layer("sensors")
        s.loc[s["sensor_id"] == g[0], "min_value"] = -10.0
        twin.store.write_layer("sensors", s)
        append_readings(twin.store, [{"sensor_id": g[0], "time": "2026-07-01T10:00:00+08:00", "value": -3.0}],
                        now=FEED_NOW)
        with pytest.raises(ParameterError, match="cannot be negative"):
            rain_from_sensors(twin, "1h", now=RAIN_NOW)  # fix_ops: now= (the feed is months behind the clock)
        s = twin.layer("sensors")
        s.loc[s["sensor_id"] == g[0], "unit"] = "mm"
        twin.store.write_layer("sensors", s)
        with pytest.raises(ParameterError, match=r"report in \['mm'\], not mm/h"):
            rain_from_sensors(twin, "1h", now=RAIN_NOW)
        with pytest.raises(ParameterError, match="rain_until needs rain_from_sensors"):
            run_flood(twin, rain_until="2026-07-01T10:00:00+08:00", save=False)
        # --rain-spatial / --rain-gaps on a design storm were silently ignored (and never checked)
        with pytest.raises(ParameterError, match="rain_spatial='nearest' needs rain_from_sensors"):
            run_flood(twin, rain_spatial="nearest", save=False)
        with pytest.raises(ParameterError, match="rain_gaps='dry' needs rain_from_sensors"):
            run_flood(twin, rain_gaps="dry", save=False)


def test_a_flood_on_the_rain_that_fell(small_city_gpkg):
    # what the last half hour of measured rain (60 mm/h: 30 mm) does, from Python and the CLI
    with Twin.open(small_city_gpkg) as twin:
        g = _rain_gauges(twin)
        _feed(twin, {g[0]: 1.0, g[1]: 2.0})
        fr = run_flood(twin, run="obs1", rain_from_sensors="30min", rain_until="2026-07-01T10:00:00+08:00")
        st = fr.summary["storm"]
        assert st["formula"] == "observed rain (rain gauges)" and st["total_mm"] == pytest.approx(30.0)
        assert st["start"] == "2026-07-01T01:30:00+00:00" and st["gauges"] == sorted(g[:2])
        assert fr.summary["sim_time_s"] == pytest.approx(1800.0)
        # the rain volume is 30 mm on every cell (open or roof), as for a design storm of that depth
        area = fr.summary["grid"][0] * fr.summary["grid"][1] * fr.summary["cell_size_m"] ** 2
        fell = fr.summary["rain_m3"] + fr.summary["roof_runoff_m3"] + fr.summary["rain_on_blocked_m3"]
        assert fell == pytest.approx(0.030 * area, rel=0.02)  # nodata cells get none
        assert twin.load_result("base", "obs1", "summary")["storm"]["formula"].startswith("observed rain")
        with pytest.raises(ParameterError, match="give rain= or rain_from_sensors="):
            from simulation.flood import Hyetograph

            run_flood(twin, rain_from_sensors="30min", rain=Hyetograph.uniform(10, 600), save=False)
    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--rain-from-sensors", "30min", "--rain-until",
                                         "2026-07-01T10:00:00+08:00", "--until", "45min", "--json", "--run", "obs2"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["storm"]["total_mm"] == pytest.approx(30.0) and s["sim_time_s"] == pytest.approx(2700.0)
    # 3 h back from 10:00 reaches before the feed began (08:00): refused, or with --rain-gaps dry run as dry
    args = ["flood", small_city_gpkg, "--rain-from-sensors", "3h", "--rain-until", "2026-07-01T10:00:00+08:00",
            "--until", "3h", "--json"]
    res = CliRunner().invoke(get_app(), args)
    assert res.exit_code != 0 and "--rain-gaps dry" in str(res.exception)
    res = CliRunner().invoke(get_app(), args + ["--rain-gaps", "dry", "--run", "obs3"])
    assert res.exit_code == 0, res.output
    st = json.loads(res.stdout)["storm"]
    assert st["unknown_blocks"] == 12 and st["total_mm"] == pytest.approx(15.0 + 60.0)


def test_each_cell_gets_its_nearest_gauges_rain(small_city_gpkg):
    # a storm over one district: RG99 (300 m east of RG01) measures 8 times RG01's rain. With spatial="nearest"
    # each DEM cell gets the rain of its nearest gauge (Thiessen polygons): the cells nearer RG99 get 80 mm/h
    # from 09:00, the others 10; the city's mean depth is the area-weighted mean of the two
    from simulation.flood import RainSeries
    from twin_core.adapters.flood import rain_from_sensors

    with Twin.open(small_city_gpkg) as twin:
        g = _rain_gauges(twin)
        _feed(twin, {g[0]: 1.0, g[1]: 8.0})
        rain, info = rain_from_sensors(twin, "1h", until="2026-07-01T10:00:00+08:00", spatial="nearest")
        assert isinstance(rain, RainSeries) and rain.grids.shape[0] == 12
        dem = twin.raster("dem")
        assert rain.shape == dem.shape
        s = twin.layer("sensors").set_index("sensor_id").geometry
        inv = ~dem.transform
        for gid, want in ((g[0], 40.0), (g[1], 320.0)):
            c, r = inv * (s[gid].x, s[gid].y)
            assert rain.grids[0, int(r), int(c)] == want  # a gauge's own cell gets its reading
        share = info["area_share"]
        assert set(share) == set(g) and sum(share.values()) == pytest.approx(1.0)
        assert info["total_mm"] == pytest.approx(40.0 * share[g[0]] + 320.0 * share[g[1]])
        # the mean spread over the city is the same total when both gauges measure the same
        _feed(twin, {g[0]: 1.0, g[1]: 1.0}, hours=((10, 20.0),))
        near, _ = rain_from_sensors(twin, "1h", until="2026-07-01T11:00:00+08:00", spatial="nearest")
        mean, _ = rain_from_sensors(twin, "1h", until="2026-07-01T11:00:00+08:00")
        assert np.allclose(near.grids, 20.0) and mean.total_mm() == pytest.approx(20.0)
        with pytest.raises(ParameterError, match="spatial must be one of"):
            rain_from_sensors(twin, "1h", spatial="idw")
        fr = run_flood(twin, run="thiessen", rain_from_sensors="30min", rain_until="2026-07-01T10:00:00+08:00",
                       rain_spatial="nearest")
        assert fr.summary["storm"]["spatial"] == "nearest"
        area = fr.summary["grid"][0] * fr.summary["grid"][1] * fr.summary["cell_size_m"] ** 2
        fell = fr.summary["rain_m3"] + fr.summary["roof_runoff_m3"] + fr.summary["rain_on_blocked_m3"]
        assert fell == pytest.approx(fr.summary["storm"]["total_mm"] / 1000 * area, rel=0.02)


def test_cli_design_storm_options_with_measured_rain_are_refused(small_city_gpkg):
    # `twin flood --rain-from-sensors 2h --storm 100y` ran the gauges' rain and dropped the 100-year storm silently
    from twin_core.errors import ParameterError

    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--rain-from-sensors", "2h", "--storm", "100y",
                                         "--duration", "30min"])
    assert isinstance(res.exception, ParameterError), res.output
    assert "--storm, --duration shape a design storm" in str(res.exception)
    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--duration", "5min", "--rain-spatial", "nearest"])
    assert isinstance(res.exception, ParameterError) and "needs rain_from_sensors" in str(res.exception)
