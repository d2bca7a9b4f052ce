"""The map server on a PostGIS store: ST_AsMVT tiles agree with the GeoPackage encoder."""

from __future__ import annotations

import mapbox_vector_tile
import pytest

from test_viewer_api import city_tiles

pytestmark = pytest.mark.postgis


@pytest.fixture
def pg_client(pg_dsn):
    import sample_city
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    sample_city.build_into(pg_dsn, "small", seed=0)
    with TestClient(create_app(Settings(store=pg_dsn)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c


def _tile_contents(client, layer, z, bounds, scenario="base"):
    out = {}
    for zz, x, y in city_tiles(bounds, z):
        r = client.get(f"/tiles/{layer}/{zz}/{x}/{y}.pbf?scenario={scenario}")
        assert r.status_code == 200, r.text
        if r.content:
            for f in mapbox_vector_tile.decode(r.content)[layer]["features"]:
                out.setdefault(f["properties"]["building_id"], []).append(f)
    return out


def test_postgis_tiles_match_geopackage_tiles(pg_client, shared_client):
    assert pg_client.get("/api/health").json()["store"] == "postgis"
    bounds = pg_client.get("/api/scene").json()["bounds"]
    pg = _tile_contents(pg_client, "buildings", 15, bounds)
    gp = _tile_contents(shared_client, "buildings", 15, bounds)
    common = set(pg) & set(gp)
    # same buildings (the GeoPackage city also holds the imported BIM box), same attributes
    assert set(pg) == set(gp) - {"BIM-TEST"}
    for bid in list(common)[:200]:
        a, b = pg[bid][0]["properties"], gp[bid][0]["properties"]
        assert a["height_m"] == b["height_m"] and a.get("use") == b.get("use")
    # same geometry to within a tile pixel or two (both quantise to the 4096 grid)
    bid = sorted(common)[0]
    ra = pg[bid][0]["geometry"]["coordinates"][0]
    rb = gp[bid][0]["geometry"]["coordinates"][0]
    xa = sorted(p[0] for p in ra)
    xb = sorted(p[0] for p in rb)
    assert abs(xa[0] - xb[0]) <= 2 and abs(xa[-1] - xb[-1]) <= 2


def test_postgis_features_and_scenario_tiles(pg_client):
    fc = pg_client.get("/api/layers/buildings/features", params={"filter": "height_m>=50", "limit": 10000}).json()
    assert fc["numberReturned"] > 0 and all(f["properties"]["height_m"] >= 50 for f in fc["features"])
    bid = fc["features"][0]["properties"]["building_id"]
    pg_client.post("/api/scenarios", json={"name": "removed"})
    r = pg_client.post("/api/scenarios/removed/edits", json={"op": "remove", "layer": "buildings", "ids": [bid]})
    assert r.status_code == 201, r.text
    bounds = pg_client.get("/api/scene").json()["bounds"]
    base = _tile_contents(pg_client, "buildings", 15, bounds)
    edited = _tile_contents(pg_client, "buildings", 15, bounds, scenario="removed")
    assert bid in base and bid not in edited and len(edited) == len(base) - 1
