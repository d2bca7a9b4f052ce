"""Flood runs and water bodies: rivers start at their normal level, flooding is judged over land, bridges
are not under the river; a Manning grid on another grid is snapped onto the DEM's; depth snapshots export
with nodata and unit; a run's label says its drainage and infiltration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from shapely import LineString, box
from typer.testing import CliRunner

from twin_core.adapters.flood import exposure_tables, run_flood
from twin_core.cli import get_app
from twin_core.errors import ParameterError, RasterError
from twin_core.twin import Twin, describe_run


# ------------------------------------------------------------------ 1. water bodies
def test_water_grid_depth_is_level_minus_ground_inside_polygons():
    """Initial depth = normal level - ground where positive, inside the polygons only; none without a level."""
    import geopandas as gpd

    from twin_core.adapters.flood import water_grid

    ground = np.array([[9.0, 9.5, 8.0, 5.0],
                       [8.0, 10.5, 9.0, 5.0]])
    tr = Affine(1, 0, 0, 0, -1, 2)
    w = gpd.GeoDataFrame({"water_id": ["R", "P"], "normal_level_m": [10.0, np.nan]},
                         geometry=[box(0, 0, 2, 2), box(3, 0, 4, 2)])
    mask, depth, info = water_grid(w, ground.shape, tr, ground)
    assert mask.tolist() == [[True, True, False, True], [True, True, False, True]]
    # cell (0, 2) at 8 m is outside the polygon: dry although below the level; the pond has no level: dry
    np.testing.assert_array_equal(depth, [[1.0, 0.5, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    assert info["without_level"] == ["P"] and info["wet_cells"] == 3


@pytest.fixture(scope="module")
def river_runs(tmp_path_factory, small_city):
    """One short storm on the small sample city, with the river at its normal level and dry."""
    import sample_city

    path = str(tmp_path_factory.mktemp("river") / "c.gpkg")
    sample_city.build_into(path, city=small_city)
    with Twin.open(path) as twin:
        wet = run_flood(twin, storm="50y", duration="10min", run="wet")
        dry = run_flood(twin, storm="50y", duration="10min", run="dry", initial_water=False, save=False)
        water = twin.layer("water")
        dem = twin.raster("dem")
        links = twin.layer("road_links")
    return path, wet, dry, water, dem, links


def test_river_starts_at_its_normal_level(river_runs):
    from twin_core.adapters.flood import water_grid

    path, wet, dry, water, dem, _ = river_runs
    level = float(water["normal_level_m"].iloc[0])
    ground = np.asarray(dem.data, dtype=float)
    mask, _, _ = water_grid(water, ground.shape, dem.transform, ground)
    h0 = wet.setup.initial_depth
    inside = mask & ~wet.setup.blocked
    np.testing.assert_allclose(h0[inside], np.maximum(level - ground[inside], 0.0), rtol=0, atol=1e-9)
    assert (h0[~mask] == 0).all() and h0.max() > 1.0  # the sample's bed lies 1 m and more below its level
    # the mass balance holds the initial water as initial storage, not as rain
    mb = wet.setup.model.mass_balance()
    area = wet.setup.model.area
    assert mb["initial_storage"] == pytest.approx(h0.sum() * area, rel=1e-9)  # summation order only
    assert wet.summary["initial_storage_m3"] == mb["initial_storage"] > 0
    assert wet.summary["rain_m3"] == pytest.approx(dry.summary["rain_m3"], rel=1e-12)  # the same storm
    assert abs(wet.summary["mass_balance_relative_error"]) < 1e-9
    assert dry.summary["initial_storage_m3"] == 0.0 and dry.summary["initial_water"] is False
    table = Twin.open(path).load_result("base", "wet", "mass_balance")
    note = table.set_index("quantity").loc["initial_storage", "note"]
    assert "not rain" in note
    # the river is deeper than any rain puddle at the start, but flooding is counted on land only
    md = wet.result.max_depth
    land = ~mask
    thr = wet.summary["threshold_m"]
    assert wet.summary["flooded_area_m2"] == pytest.approx((np.nan_to_num(md[land]) > thr).sum() * area)
    assert wet.summary["max_depth_m"] == pytest.approx(np.nanmax(np.where(land, md, np.nan)))
    assert wet.summary["water_bodies"]["max_depth_m"] > wet.summary["max_depth_m"]


def test_bridges_over_the_river_are_not_flooded(river_runs):
    """The links that cross the river are not exposed by the river under them (the review found 13 of 37
    "exposed" links were bridges under 1 m of river)."""
    _, wet, _, water, dem, links = river_runs
    river = water.geometry.iloc[0]
    crossing = links[links.intersects(river)]
    assert len(crossing) > 3
    expo = wet.exposure["road_links"]
    # no link of the run is exposed as deep as the river is below its level (>= 1 m): that would be the bed
    assert (expo["max_depth_m"] < 0.9).all()
    # read as before (every point sampled at the cell under it, river included) they were under the river
    old = exposure_tables(wet.result, wet.setup.transform, {"road_links": crossing}, 0.15)["road_links"]
    deep = old[old["max_depth_m"] >= 1.0]  # the river's upstream end is shallower (one level, a sloping bed)
    assert len(deep) >= 3
    assert (expo.set_index("link_id").reindex(deep["link_id"])["max_depth_m"].fillna(0.0) < 0.9).all()


def test_bridge_deck_floods_only_when_the_river_rises_over_it():
    """A synthetic grid: banks at 10 m, a river bed at 6 m; the road crosses on a bridge."""
    from types import SimpleNamespace

    import geopandas as gpd

    ground = np.full((5, 9), 10.0)
    ground[:, 3:6] = 6.0
    wm = np.zeros_like(ground, dtype=bool)
    wm[:, 3:6] = True
    tr = Affine(1, 0, 0, 0, -1, 5)
    road = gpd.GeoDataFrame({"link_id": ["L1"]}, geometry=[LineString([(0.5, 2.5), (8.5, 2.5)])])

    def expo(depth):
        res = SimpleNamespace(max_depth=depth, time_of_wetting=np.where(depth > 0.15, 60.0, np.nan))
        return exposure_tables(res, tr, {"road_links": road}, 0.15, water_mask=wm, ground=ground)["road_links"]

    river = np.where(wm, 3.0, 0.0)  # 3 m of water in the bed (surface at 9 m), land dry
    assert len(expo(river)) == 0
    # without the water mask (the old behaviour) the bridge reads as under 3 m of water
    res = SimpleNamespace(max_depth=river, time_of_wetting=np.full(river.shape, np.nan))
    assert exposure_tables(res, tr, {"road_links": road}, 0.15)["road_links"]["max_depth_m"].iloc[0] == 3.0
    # the river at 11 m: 0.5 m over a deck at the bank (10 m) + 0.5 m; the banks are also under 1 m
    high = np.where(wm, 5.0, 1.0)
    e = expo(high)
    assert e["max_depth_m"].iloc[0] == pytest.approx(1.0)  # the banks' water is the deepest
    only_river = np.where(wm, 5.0, 0.0)
    e = expo(only_river)
    assert e["max_depth_m"].iloc[0] == pytest.approx(0.5) and e["flooded_fraction"].iloc[0] == pytest.approx(3 / 9)


def test_initial_water_must_be_a_bool(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin, pytest.raises(ParameterError, match="initial_water"):
        twin.flood(storm="2y", duration="10min", initial_water="no", save=False)


# ------------------------------------------------------------------ 2. manning on another grid
def _write_tif(path, data, transform, nodata=None):
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1], count=1,
                       dtype="float32", crs="EPSG:4544", transform=transform, nodata=nodata) as ds:
        ds.write(data.astype("float32"), 1)


def _classes_file(tmp_path, dem):
    """Manning n on 10 m cells, offset 3 m from the DEM's 5 m grid, three land-cover classes by column."""
    tr = dem.transform
    x0, y0 = tr.c + 3.0, tr.f - 3.0
    n = np.tile(np.array([0.015, 0.035, 0.10])[np.arange(40) % 3], (40, 1))
    path = tmp_path / "man_other.tif"
    _write_tif(path, n, Affine(10, 0, x0, 0, -10, y0))
    return path, n, Affine(10, 0, x0, 0, -10, y0)


def test_import_manning_on_another_grid_snaps_to_the_dem(small_city_gpkg, tmp_path):
    with Twin.open(small_city_gpkg) as twin:
        dem = twin.raster("dem")
    path, n, ftr = _classes_file(tmp_path, dem)
    out = CliRunner().invoke(get_app(), ["import-raster", small_city_gpkg, str(path), "--name", "manning", "-q"])
    assert out.exit_code == 0, out.output
    assert "onto the DEM's grid" in out.output and "nearest neighbour" in out.output
    with Twin.open(small_city_gpkg) as twin:
        man = twin.raster("manning")
        assert man.shape == dem.shape and tuple(man.transform)[:6] == tuple(dem.transform)[:6]
        m = man.masked()
        # every DEM cell takes the n of the file's cell its centre lies in: no blend of two classes
        rows, cols = np.indices(m.shape)
        xs = dem.transform.c + (cols + 0.5) * dem.transform.a
        ys = dem.transform.f + (rows + 0.5) * dem.transform.e
        fc = np.floor((xs - ftr.c) / 10).astype(int)
        fr = np.floor((ftr.f - ys) / 10).astype(int)
        inside = (fc >= 0) & (fc < n.shape[1]) & (fr >= 0) & (fr < n.shape[0])
        np.testing.assert_allclose(m[inside], n[fr[inside], fc[inside]], rtol=1e-6)  # float32 storage
        assert np.isnan(m[~inside]).all()
        twin.flood(storm="2y", duration="10min", save=False)  # runs (it was refused: not on the same grid)


def test_import_manning_own_grid_then_flood_says_what_to_do(small_city_gpkg, tmp_path):
    with Twin.open(small_city_gpkg) as twin:
        dem = twin.raster("dem")
    path, _, _ = _classes_file(tmp_path, dem)
    out = CliRunner().invoke(get_app(), ["import-raster", small_city_gpkg, str(path), "--name", "manning",
                                         "--own-grid", "-q"])
    assert out.exit_code == 0, out.output
    with Twin.open(small_city_gpkg) as twin:
        assert twin.raster("manning").shape == (40, 40)
        with pytest.raises(RasterError, match="twin import-raster .* --name manning"):
            twin.flood(storm="2y", duration="10min", save=False)
    out = CliRunner().invoke(get_app(), ["import-raster", small_city_gpkg, str(path), "--name", "manning",
                                         "--match-dem", "--resolution", "5", "-q"])
    assert out.exit_code != 0 and "not both" in str(out.exception)


def test_import_manning_with_resolution_keeps_classes(small_city_gpkg, tmp_path):
    """--resolution resamples manning by nearest neighbour: only the file's n values come out."""
    from cim.io.raster import import_raster

    with Twin.open(small_city_gpkg) as twin:
        dem = twin.raster("dem")
        path, n, _ = _classes_file(tmp_path, dem)
        r = import_raster(twin.store, path, "manning", resolution=5.0, match_dem=False)
    vals = np.unique(np.asarray(r.data)[np.isfinite(r.data)])
    np.testing.assert_allclose(vals, np.unique(n), rtol=1e-6)


# ------------------------------------------------------------------ 3. snapshots export
def test_depth_snapshots_export_nodata_and_unit(small_city_gpkg, tmp_path):
    import rasterio

    path = small_city_gpkg
    with Twin.open(path) as twin:
        wet = twin.flood(run="wet", storm="20y", duration="10min")
    out = tmp_path / "snaps.tif"
    md_out = tmp_path / "md.tif"
    res = CliRunner().invoke(get_app(), ["export", path, "depth_snapshots", str(out), "--run", "wet"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(get_app(), ["export", path, "max_depth", str(md_out), "--run", "wet"])
    assert res.exit_code == 0, res.output
    with rasterio.open(md_out) as md, rasterio.open(out) as ds:
        mdd = md.read(1)
        assert ds.nodata == md.nodata == -9999.0
        assert set(ds.units) == {"m"} and md.units == ("m",)
        snaps = ds.read()
        blocked = mdd == md.nodata
        assert blocked.any()
        assert (snaps[:, blocked] == -9999.0).all()  # buildings: no data in every band, as in max_depth
        assert (snaps[:, ~blocked] >= 0).all()
        np.testing.assert_allclose(snaps[-1][~blocked], wet.result.snapshots[-1][~blocked], rtol=0, atol=0)


# ------------------------------------------------------------------ 4. drainage in the label, CLI
def test_about_tells_drainage_apart(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        g = np.full(twin.raster("dem").shape, 50.0)
        g[:, g.shape[1] // 2:] = 0.0  # sewers blocked in the east half
        twin.flood(run="d50", storm="50y", duration="10min", drainage_mm_h=50.0)
        twin.flood(run="dgrid", storm="50y", duration="10min", drainage_mm_h=g, infiltration_mm_h=5)
        about = twin.runs().set_index("run")["about"]
    assert about["d50"] != about["dgrid"]
    assert "drainage 50 mm/h" in about["d50"]
    assert "drainage per cell (0-50, mean 25 mm/h)" in about["dgrid"] and "infiltration 5 mm/h" in about["dgrid"]


def test_describe_run_old_summary_without_losses():
    s = {"storm": {"return_period_y": 50, "duration_s": 3600, "total_mm": 74.2}}
    assert describe_run("flood", s) == "50-year storm, 1 h, 74 mm"
    assert describe_run("flood", {**s, "drainage_mm_h": 0.0}) == "50-year storm, 1 h, 74 mm"  # none: the default
    assert describe_run("flood", {**s, "drainage_mm_h": 20.0, "initial_water": False}) == \
        "50-year storm, 1 h, 74 mm, drainage 20 mm/h, water bodies started dry"


def test_cli_drainage_raster_and_infiltration(small_city_gpkg, tmp_path):
    with Twin.open(small_city_gpkg) as twin:
        dem = twin.raster("dem")
    g = np.full(dem.shape, 40.0)
    g[:, : dem.shape[1] // 2] = 0.0
    _write_tif(tmp_path / "sewers.tif", g, dem.transform)
    app = get_app()
    out = CliRunner().invoke(app, ["import-raster", small_city_gpkg, str(tmp_path / "sewers.tif"), "--name",
                                   "sewers", "--unit", "mm/h", "-q"])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["flood", small_city_gpkg, "--duration", "10min", "--run", "blocked",
                                   "--drainage", "sewers", "--infiltration", "3", "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["drainage_mm_h"] == "per cell" and s["drainage_mm_h_grid"]["raster"] == "sewers"
    assert s["drainage_mm_h_grid"]["mean_mm_h"] == pytest.approx(20.0) and s["infiltration_mm_h"] == 3.0
    assert s["drainage_m3"] > 0
    with Twin.open(small_city_gpkg) as twin:
        about = twin.runs().set_index("run")["about"]["blocked"]
    assert "drainage per cell 'sewers' (0-40, mean 20 mm/h)" in about and "infiltration 3 mm/h" in about
    # a name that is no raster, and a raster on another grid: said, with what to do
    out = CliRunner().invoke(app, ["flood", small_city_gpkg, "--duration", "10min", "--drainage", "sewerz"])
    assert out.exit_code != 0 and "or the name of a raster of the twin" in str(out.exception) and "sewers" in str(out.exception)
    _write_tif(tmp_path / "coarse.tif", np.full((10, 10), 20.0), Affine(50, 0, dem.transform.c, 0, -50,
                                                                            dem.transform.f))
    out = CliRunner().invoke(app, ["import-raster", small_city_gpkg, str(tmp_path / "coarse.tif"), "--name",
                                   "coarse", "--unit", "mm/h", "-q"])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["flood", small_city_gpkg, "--duration", "10min", "--drainage", "coarse"])
    assert out.exit_code != 0 and isinstance(out.exception, RasterError)
    assert "another grid than the DEM" in str(out.exception) and "--match-dem" in str(out.exception)
    assert "--infiltration" in CliRunner().invoke(app, ["flood", "--help"]).output


def test_traffic_closure_of_a_bridge_link_starts_when_its_land_floods(river_runs):
    """A road exposed on land that also crosses the river is closed when the land water rises, not from the
    start because of the river under its bridge (the closure timing read every point at the bed)."""
    from twin_core.adapters.traffic import flood_closure_windows

    path, wet, _, water, _, links = river_runs
    crossing = set(links.loc[links.intersects(water.geometry.iloc[0]), "link_id"].astype(str))
    with Twin.open(path) as twin:
        win = flood_closure_windows(twin, None, "wet", depth=0.15)
    over = win[win["link_id"].isin(crossing)]
    assert len(over) >= 1  # the sample has kerbed streets beside the river that pond in this storm
    # the river is at its level from 0 s; the land water needs the rain first
    assert (over["closed_from_s"] > 0).all()
