"""Vector import: foreign layers in Twin.create, wide Shapefile numbers, single-part multis, SUMO and
CityJSON files, and the messages of bad input (review fix_vector_in)."""

from __future__ import annotations

import json
import subprocess

import geopandas as gpd
import pytest
import shapely

from cim.io.vector import import_vector, prepare_layer, read_vector
from cim.schema import conform
from twin_core.errors import CRSError, ImportFormatError, SchemaError, StoreConnectionError
from twin_core.twin import Twin

LON, LAT = 104.065, 30.657  # central Chengdu


def _utm_gpkg(path, layer="p"):
    g = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(LON, LAT)], crs="EPSG:4326").to_crs("EPSG:32648")
    g.to_file(path, layer=layer)


def test_create_refuses_a_geopackage_with_layers_in_another_crs(tmp_path):
    path = tmp_path / "p.gpkg"
    _utm_gpkg(path)
    # the old code took layer 'p' over as EPSG:4544: its point moved ~1.4 km
    with pytest.raises(CRSError, match=r"layer 'p' \(EPSG:32648\).*twin import .*--layer p"):
        Twin.create(path)
    with pytest.raises(StoreConnectionError, match="holds no twin"):  # the refusal left the file as it was
        Twin.open(path)
    # in the layer's own (projected) CRS the twin reads it where it is
    with Twin.create(path, crs="EPSG:32648") as t:
        p = t.layer("p").to_crs("EPSG:4326").geometry.iloc[0]
    assert (p.x, p.y) == pytest.approx((LON, LAT), abs=1e-7)  # 1e-7 degrees ~ 1 cm: a round trip


def test_create_takes_over_layers_in_the_twin_crs(tmp_path):
    path = tmp_path / "q.gpkg"
    g = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(LON, LAT)], crs="EPSG:4326").to_crs("EPSG:4544")
    g.to_file(path, layer="q")
    with Twin.create(path) as t:
        assert t.layer("q").geometry.iloc[0].equals_exact(g.geometry.iloc[0], 1e-6)


def test_create_in_postgis_ignores_plain_tables(pg_dsn):
    import psycopg

    from tests.conftest import PG_DSN

    schema = pg_dsn.split("schema=")[1]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".p (id int, geom geometry(Point, 32648))')
        conn.execute(f"INSERT INTO \"{schema}\".p VALUES (1, ST_Transform(ST_SetSRID(ST_MakePoint({LON}, {LAT}), "
                     "4326), 32648))")
    with Twin.create(pg_dsn) as t:
        assert "p" not in t.layers()  # not read at all, so never in the wrong CRS


def _shapefile_with_wide_number(tmp_path, width=20, value="9007199254740993"):
    """A Shapefile whose .dbf holds ``osm`` as a dBASE number field (N) of ``width`` digits and no decimals, as
    ArcGIS writes OpenStreetMap ids: GDAL reads N fields of 19+ digits as float64."""
    src = tmp_path / "bigid_src.geojson"
    feats = [{"type": "Feature", "properties": {"osm": v, "kind": "shelter"},
              "geometry": {"type": "Point", "coordinates": [LON + i * 1e-3, LAT]}}
             for i, v in enumerate([value, "12"])]
    src.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    shp = tmp_path / "bigid.shp"
    subprocess.run(["ogr2ogr", "-f", "ESRI Shapefile", "-lco", "ENCODING=UTF-8", str(shp), str(src), "-sql",
                    f"SELECT CAST(osm AS character({width})) AS osm, kind FROM bigid_src"], check=True)
    dbf = shp.with_suffix(".dbf")
    b = bytearray(dbf.read_bytes())
    off = 32
    while b[off] != 0x0D:  # the field descriptors: make osm a number field, its text kept as written
        if b[off:off + 11].split(b"\0")[0] == b"osm":
            b[off + 11], b[off + 17] = ord("N"), 0
        off += 32
    dbf.write_bytes(bytes(b))
    return shp


def test_wide_shapefile_ids_are_read_exactly(store, tmp_path):
    shp = _shapefile_with_wide_number(tmp_path)
    import pyogrio

    assert pyogrio.read_dataframe(shp)["osm"].iloc[0] == 9007199254740992.0  # GDAL alone rounds it
    assert read_vector(shp)["osm"].tolist() == [9007199254740993, 12]
    import_vector(store, shp, "pois", field_map={"osm": "poi_id"})
    assert store.read_layer("pois")["poi_id"].tolist() == ["9007199254740993", "12"]


def test_rounded_floats_are_refused_for_ids_and_integers():
    g = gpd.GeoDataFrame({"poi_id": [9007199254740992.0, 1.0], "kind": ["shelter", "park"]},
                         geometry=[shapely.Point(0, 0)] * 2)
    with pytest.raises(SchemaError, match=r"'poi_id'.*2\*\*53.*9007199254740992"):
        conform(g, "pois")
    g = gpd.GeoDataFrame({"poi_id": ["a", "b"], "kind": ["shelter", "park"], "capacity": [2.0**60, 1.0]},
                         geometry=[shapely.Point(0, 0)] * 2)
    with pytest.raises(SchemaError, match=r"'capacity'.*2\*\*53"):
        conform(g, "pois")


def _pois(geoms):
    return gpd.GeoDataFrame({"poi_id": [f"p{i}" for i in range(len(geoms))], "kind": ["shelter"] * len(geoms)},
                            geometry=geoms, crs="EPSG:4326")


def test_single_part_multis_are_taken_as_their_part():
    g = _pois([shapely.MultiPoint([(LON, LAT)]), shapely.Point(LON + 1e-3, LAT)])
    out = prepare_layer(g, "pois", "EPSG:4544")
    assert out.geometry.geom_type.tolist() == ["Point", "Point"]
    ref = prepare_layer(_pois([shapely.Point(LON, LAT)]), "pois", "EPSG:4544")
    assert out.geometry.iloc[0].equals(ref.geometry.iloc[0])
    links = gpd.GeoDataFrame({"link_id": ["l1"], "from_node": ["a"], "to_node": ["b"], "lanes": [2],
                              "speed_limit_kmh": [50.0]},
                             geometry=[shapely.MultiLineString([[(LON, LAT), (LON + 1e-3, LAT)]])], crs="EPSG:4326")
    out = prepare_layer(links, "road_links", "EPSG:4544", allow_extra=True)
    assert out.geometry.geom_type.tolist() == ["LineString"]


def test_multi_part_multis_are_refused_with_the_fix():
    g = _pois([shapely.Point(LON, LAT), shapely.MultiPoint([(LON, LAT), (LON + 1e-3, LAT)])])
    with pytest.raises(SchemaError, match=r"feature 2 of 2 \(poi_id 'p1'\) with 2 parts.*-explodecollections"):
        prepare_layer(g, "pois", "EPSG:4544")


def test_sumo_and_cityjson_files_say_how_to_import_them(store, tmp_path):
    net = tmp_path / "chengdu.net.xml"
    net.write_text("<net/>")
    with pytest.raises(ImportFormatError, match=r"SUMO road network.*import_sumo_net"):
        import_vector(store, net, "road_links")
    cj = tmp_path / "b.city.json"
    cj.write_text('{"type": "CityJSON"}')
    with pytest.raises(ImportFormatError, match="CityJSON.*cannot import"):
        import_vector(store, cj, "buildings")


def test_booleans_and_fractions_for_integers_name_the_value():
    g = gpd.GeoDataFrame({"poi_id": ["a", "b"], "kind": ["shelter", "park"], "capacity": [3, True]},
                         geometry=[shapely.Point(0, 0)] * 2)
    with pytest.raises(SchemaError, match=r"'capacity'.*booleans.*True at feature 2"):
        conform(g, "pois")
    g["capacity"] = [12.7, 3.0]
    with pytest.raises(SchemaError) as e:
        conform(g, "pois")
    assert "12.7" in str(e.value) and "3.6" not in str(e.value)


def _shelter(x, y, crs):
    return gpd.GeoDataFrame({"poi_id": ["s1"], "kind": ["shelter"]}, geometry=[shapely.Point(x, y)], crs=crs)


def test_a_zipped_shapefile_without_its_dbf_says_so(store, tmp_path):
    import zipfile

    shelters = _shelter(LON, LAT, "EPSG:4326")
    shelters.to_file(tmp_path / "s.shp")
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as zf:
        for ext in ("shp", "shx", "prj", "cpg"):
            zf.write(tmp_path / f"s.{ext}", f"s.{ext}")
    with pytest.raises(ImportFormatError, match=r"s.zip: s.shp has no s.dbf.*inside s.zip"):
        import_vector(store, tmp_path / "s.zip", "pois")
    (tmp_path / "s.dbf").unlink()
    with pytest.raises(ImportFormatError, match=r"s.shp has no s.dbf"):
        import_vector(store, tmp_path / "s.shp", "pois")


def test_an_unknown_layer_lists_the_layers_the_file_has(tmp_path):
    path = tmp_path / "p.gpkg"
    _utm_gpkg(path, layer="roads")
    with pytest.raises(ImportFormatError, match=r"no layer 'zz'; its layers are \['roads'\]"):
        read_vector(path, "zz")


def test_swapped_lat_lon_is_named():
    with pytest.raises(CRSError, match="latitude first"):
        prepare_layer(_shelter(LAT, LON, "EPSG:4326"), "pois", "EPSG:4544")


def test_a_zone_prefixed_easting_names_the_zone_crs():
    ref = prepare_layer(_shelter(LON, LAT, "EPSG:4326"), "pois", "EPSG:4544").geometry.iloc[0]
    # EPSG:4523 (3-degree zone 35) is EPSG:4544 (CM 105E) with 35,000,000 m added to x
    g = _shelter(ref.x + 35_000_000, ref.y, None)
    with pytest.raises(CRSError, match=r"zone number 35.*--crs EPSG:4523"):
        prepare_layer(g, "pois", "EPSG:4544", source_crs="EPSG:4544")
    got = prepare_layer(g, "pois", "EPSG:4544", source_crs="EPSG:4523").geometry.iloc[0]
    assert (got.x, got.y) == pytest.approx((ref.x, ref.y), abs=1e-3)  # same projection: mm round-off
