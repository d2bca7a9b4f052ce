"""Import fixes from a GIS engineer's review: inputs that state no CRS (a GeoJSON without a crs member, a
GeoPackage's undefined srs_id 0/-1), CGCS2000 declared on WGS 84 lon/lat, a conflicting --crs on a raster, a twin CRS
that distorts (Web Mercator), and road_turns left naming links a GIS import replaced."""

from __future__ import annotations

import json
import sqlite3
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from cim.io.raster import import_raster
from cim.io.vector import import_vector
from cim.store import open_store
from twin_core.errors import CRSError, TwinWarning

X, Y = 409907.0, 3393657.0  # Tianfu Square in EPSG:4544
LON, LAT = 104.0665, 30.6574
POI = {"poi_id": "s1", "kind": "shelter"}


@pytest.fixture
def gstore(tmp_path):
    s = open_store(str(tmp_path / "t.gpkg"), create=True, crs="EPSG:4544")
    yield s
    s.close()


def _geojson(path, x, y, crs_member=None):
    doc = {"type": "FeatureCollection",
           "features": [{"type": "Feature", "properties": POI, "geometry": {"type": "Point", "coordinates": [x, y]}}]}
    if crs_member:
        doc["crs"] = {"type": "name", "properties": {"name": crs_member}}
    path.write_text(json.dumps(doc))
    return path


def _gpkg_undefined(tmp_path, srs_id):
    """A GeoPackage whose layer has srs_id 0 (undefined geographic, as `ogr2ogr -f GPKG out.gpkg nocrs.shp` writes)
    or -1 (undefined Cartesian)."""
    p = tmp_path / f"undef{srs_id}.gpkg"
    g = gpd.GeoDataFrame([POI], geometry=[shapely.Point(X, Y)], crs="EPSG:4544")
    g.to_file(p, layer="pois")
    con = sqlite3.connect(p)
    con.execute("UPDATE gpkg_geometry_columns SET srs_id = ?", (srs_id,))
    con.execute("UPDATE gpkg_contents SET srs_id = ?", (srs_id,))
    con.commit()
    con.close()
    return p


def test_geojson_without_crs_member_in_metres_takes_crs(gstore, tmp_path):
    p = _geojson(tmp_path / "m.geojson", X, Y)
    # without --crs: says the file states no CRS and to pass --crs (it said 'outside EPSG:4326, check --crs')
    with pytest.raises(CRSError, match=r"states no CRS.*RFC 7946.*--crs"):
        import_vector(gstore, p, "pois")
    # with --crs: used (it said 'the input says its CRS is EPSG:4326 ... drop the argument'), with a note
    with pytest.warns(TwinWarning, match="no crs member.*RFC 7946"):
        assert import_vector(gstore, p, "pois", crs="EPSG:4544") == 1
    got = gstore.read_layer("pois")
    assert got.geometry.x.iloc[0] == pytest.approx(X) and got.geometry.y.iloc[0] == pytest.approx(Y)


def test_geojson_lonlat_without_crs_member(gstore, tmp_path):
    p = _geojson(tmp_path / "ll.geojson", LON, LAT)
    assert import_vector(gstore, p, "pois") == 1  # RFC 7946: lon/lat WGS 84, as before
    assert import_vector(gstore, p, "pois", crs="EPSG:4490") == 1  # CGCS2000 declared: allowed


def test_geojson_with_crs_member_still_refuses_conflict(gstore, tmp_path):
    p = _geojson(tmp_path / "c.geojson", X, Y, crs_member="urn:ogc:def:crs:EPSG::4544")
    assert import_vector(gstore, p, "pois") == 1
    with pytest.raises(CRSError, match="says its CRS is EPSG:4544.*drop the argument"):
        import_vector(gstore, p, "pois", crs="EPSG:32648")


def test_wgs84_file_declared_cgcs2000(gstore, tmp_path):
    p = tmp_path / "ll.gpkg"
    gpd.GeoDataFrame([POI], geometry=[shapely.Point(LON, LAT)], crs="EPSG:4326").to_file(p)
    assert import_vector(gstore, p, "pois", crs="EPSG:4490") == 1
    with pytest.raises(CRSError, match="says its CRS is EPSG:4326"):  # a real conflict stays refused
        import_vector(gstore, p, "pois", crs="EPSG:4544")


@pytest.mark.parametrize("srs_id", [0, -1])
def test_gpkg_undefined_srs_takes_crs(gstore, tmp_path, srs_id):
    p = _gpkg_undefined(tmp_path, srs_id)
    with pytest.raises(CRSError, match=r"states no CRS.*--crs"):  # was 'not finite' (0) / a raw ProjError (-1)
        import_vector(gstore, p, "pois")
    assert import_vector(gstore, p, "pois", crs="EPSG:4544") == 1
    assert gstore.read_layer("pois").geometry.x.iloc[0] == pytest.approx(X)


def test_twin_crs_web_mercator_refused(tmp_path):
    from twin_core.twin import Twin

    with pytest.raises(CRSError, match=r"distorts distances.*EPSG:4544"):
        Twin.create(str(tmp_path / "wm.gpkg"), crs="EPSG:3857")
    for ok in ("EPSG:4544", "EPSG:32648", "EPSG:25832", "EPSG:27700"):
        Twin.create(str(tmp_path / f"{ok[5:]}.gpkg"), crs=ok).close()


def _tif(path, crs):
    x0, y0 = (X, Y) if crs != "EPSG:32648" else (404000.0, 3392000.0)
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32", crs=crs,
                       transform=Affine(10, 0, x0, 0, -10, y0)) as ds:
        ds.write(np.full((1, 4, 4), 500.0, dtype="float32"))
    return path


def test_raster_conflicting_crs_refused(gstore, tmp_path):
    p = _tif(tmp_path / "dem_32648.tif", "EPSG:32648")
    with pytest.raises(CRSError, match="says its CRS is EPSG:32648.*EPSG:4544.*drop the argument"):
        import_raster(gstore, p, "d", crs="EPSG:4544")
    assert not gstore.has_raster("d")
    import_raster(gstore, p, "d", crs="EPSG:32648")  # the same CRS given again: fine
    assert gstore.has_raster("d")


def _links(ids, x0=410000.0):
    return gpd.GeoDataFrame(
        {"link_id": ids, "from_node": [f"n{i}" for i in range(len(ids))],
         "to_node": [f"n{i + 1}" for i in range(len(ids))], "lanes": [2] * len(ids),
         "speed_limit_kmh": [50.0] * len(ids), "capacity_vph": [1800.0] * len(ids)},
        geometry=[shapely.LineString([(x0 + 100 * i, 3395000), (x0 + 100 * (i + 1), 3395000)])
                  for i in range(len(ids))], crs="EPSG:4544")


def test_gis_road_links_replace_drops_stale_turns(store, tmp_path):
    gstore = store  # both backends: the table is dropped inside the import's transaction
    import pandas as pd

    from cim.io.sumo import TURNS_TABLE

    gstore.write_layer("road_links", _links(["a", "b"]))
    turns = pd.DataFrame({"from_link": ["a", "b:r"], "to_link": ["b", "a:r"], "dir": ["s", "s"]})
    gstore.write_table(TURNS_TABLE, turns)
    same = tmp_path / "same.gpkg"
    _links(["a", "b"]).to_file(same)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        import_vector(gstore, same, "road_links")  # the turns' links are all still there: kept, no warning
    assert gstore.has_table(TURNS_TABLE)
    other = tmp_path / "other.gpkg"
    _links(["x", "y", "z"]).to_file(other)
    with pytest.warns(TwinWarning, match=r"turn rules \(road_turns, 2 turns\).*dropped"):
        import_vector(gstore, other, "road_links")
    assert not gstore.has_table(TURNS_TABLE)
