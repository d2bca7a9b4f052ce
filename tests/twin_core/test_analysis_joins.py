"""Spatial joins for the twin equal geopandas.sjoin; the twin runners save their results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

gpd = pytest.importorskip("geopandas")

from twin_core.adapters import analysis as A  # noqa: E402
from twin_core.errors import CRSError, GeometryError, ParameterError, SchemaError  # noqa: E402


def _pairs(df, a, b):
    return sorted(zip(df[a].tolist(), df[b].tolist()))


@pytest.mark.parametrize("predicate", ["within", "intersects"])
def test_points_to_parcels_equals_sjoin(small_city, predicate):
    parcels = small_city["parcels"]
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = parcels.total_bounds
    xy = np.vstack([np.column_stack([rng.uniform(x0, x1, 3000), rng.uniform(y0, y1, 3000)]),
                    shapely.get_coordinates(parcels.geometry.values)[:300]])  # parcel corners: boundary cases
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=parcels.crs)
    ours = A.points_to_parcels(pts, parcels, predicate=predicate)
    ref = gpd.sjoin(pts, parcels.reset_index(drop=True), predicate=predicate, how="inner")
    assert _pairs(ours, "point", "parcel") == sorted(zip(ref.index.tolist(), ref["index_right"].tolist()))
    assert (ours["parcel_id"].to_numpy() == parcels["parcel_id"].to_numpy()[ours["parcel"]]).all()


def test_buildings_to_parcels(small_city):
    b, p = small_city["buildings"], small_city["parcels"]
    inter = A.buildings_to_parcels(b, p, how="intersects")
    ref = gpd.sjoin(b.reset_index(drop=True), p.reset_index(drop=True), predicate="intersects", how="inner")
    assert _pairs(inter, "building", "parcel") == sorted(zip(ref.index.tolist(), ref["index_right"].tolist()))
    best = A.buildings_to_parcels(b, p)
    assert best["building"].is_unique
    # largest overlap agrees with a brute-force overlay
    ov = gpd.overlay(b[["building_id", "geometry"]], p[["parcel_id", "geometry"]], how="intersection")
    ov["a"] = ov.area
    brute = ov.sort_values("a", ascending=False).drop_duplicates("building_id").set_index("building_id")["parcel_id"]
    got = best.set_index("building_id")["parcel_id"]
    assert (got.sort_index() == brute.reindex(got.index).sort_index()).all()
    # the generator put each building on a parcel: the centroid rule finds the same one
    cen = A.buildings_to_parcels(b, p, how="centroid").set_index("building_id")["parcel_id"]
    known = b.set_index("building_id")["parcel_id"].dropna()
    common = cen.index.intersection(known.index)
    assert len(common) > 0.9 * len(b)
    assert (cen[common] == known[common]).mean() > 0.99


def test_within_distance_equals_dwithin(small_city):
    sensors, b = small_city["sensors"], small_city["buildings"]
    ours = A.within_distance(sensors, b, 25.0)
    ref = gpd.sjoin(sensors.reset_index(drop=True), b.reset_index(drop=True), predicate="dwithin", distance=25.0)
    assert _pairs(ours, "left", "right") == sorted(zip(ref.index.tolist(), ref["index_right"].tolist()))
    assert (ours["distance"] <= 25.0).all()


def test_join_bad_input():
    a = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs="EPSG:4544")
    p = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326")
    with pytest.raises(CRSError, match="reproject"):
        A.points_to_parcels(a, p)
    with pytest.raises(SchemaError, match="GeoDataFrame"):
        A.points_to_parcels(pd.DataFrame({"x": [1]}), p)
    with pytest.raises(ParameterError, match="how must be one of"):
        A.buildings_to_parcels(a, p.set_crs("EPSG:4544", allow_override=True), how="nearest")
    with pytest.raises(ParameterError, match="distance"):
        A.within_distance(a, a, -1)
    with pytest.raises(ValueError, match="predicate"):
        A.points_to_parcels(a, p.set_crs("EPSG:4544", allow_override=True), predicate="touches")
    with pytest.raises(GeometryError, match="buildings_to_parcels"):
        A.points_to_parcels(p.set_crs("EPSG:4544", allow_override=True), p.set_crs("EPSG:4544", allow_override=True))
    # missing and empty points match nothing; the others keep their row positions
    pts = gpd.GeoDataFrame(geometry=[None, shapely.Point(), shapely.Point(0.5, 0.5)], crs="EPSG:4326")
    assert A.points_to_parcels(pts, p)[["point", "parcel"]].values.tolist() == [[2, 0]]
    # empty inputs give empty frames
    e = A.points_to_parcels(a.iloc[:0], p.set_crs("EPSG:4544", allow_override=True))
    assert len(e) == 0 and list(e.columns[:2]) == ["point", "parcel"]


def test_twin_runners_save_results(small_city_gpkg):
    from twin_core import Twin

    twin = Twin.open(small_city_gpkg)
    try:
        x0, y0, x1, y1 = twin.extent
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ras, run = A.run_sunlight(twin, bounds=(cx - 60, cy - 60, cx + 60, cy + 60), spacing=10, step_minutes=30,
                                  solar_time=True)
        assert ras.shape == (12, 12) and np.nanmax(ras.data) <= 8.0 + 1e-6
        back = twin.load_result(None, run, "sunlight_hours")
        np.testing.assert_allclose(back.data, ras.data, equal_nan=True)
        vs, run2 = A.run_viewshed(twin, (cx, cy), radius=100, observer_height=30)
        assert np.nansum(vs.data) > 0
        assert twin.load_result(None, run2, "viewshed").shape == vs.shape
    finally:
        twin.close()


def test_centroid_rule_skips_missing_footprints_without_shifting_the_rest():
    # a missing footprint (None) used to shift every later building onto the wrong parcel: A -> P2, B -> P1
    parcels = gpd.GeoDataFrame({"parcel_id": ["P1", "P2"]}, geometry=[shapely.box(0, 0, 10, 10),
                                                                      shapely.box(10, 0, 20, 10)], crs="EPSG:4544")
    b = gpd.GeoDataFrame({"building_id": ["A", "B", "C"]},
                         geometry=[None, shapely.box(12, 2, 14, 4), shapely.box(1, 1, 3, 3)], crs="EPSG:4544")
    for how in ("centroid", "largest_overlap", "intersects"):
        df = A.buildings_to_parcels(b, parcels, how=how)
        assert _pairs(df, "building_id", "parcel_id") == [("B", "P2"), ("C", "P1")], how


def test_invalid_parcel_in_largest_overlap_names_the_row():
    parcels = gpd.GeoDataFrame({"parcel_id": ["OK", "BOW"]},
                               geometry=[shapely.box(20, 0, 30, 10),
                                         shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])], crs="EPSG:4544")
    b = gpd.GeoDataFrame(geometry=[shapely.box(1, 1, 9, 9)], crs="EPSG:4544")
    with pytest.raises(GeometryError, match=r"parcels rows \[1\] are invalid.*Self-intersection.*make_valid"):
        A.buildings_to_parcels(b, parcels)  # a raw GEOSException TopologyException before
