"""API tests of the map server on the small sample city (GeoPackage store)."""

from __future__ import annotations

import io
import json
import math
import time

import mapbox_vector_tile
import numpy as np
import pytest

from viewer.geo import tile_bounds_3857


def lonlat_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def city_tiles(bounds, z):
    w, s, e, n = bounds
    x0, y0 = lonlat_tile(w, n, z)
    x1, y1 = lonlat_tile(e, s, z)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


# ------------------------------------------------------------------ layers
def test_layers_list_and_schema(shared_client):
    layers = {d["name"]: d for d in shared_client.get("/api/layers").json()}
    assert {"buildings", "road_links", "sensors", "parcels"} <= set(layers)
    assert not any(n.startswith("res_") for n in layers)
    w, s, e, n = layers["buildings"]["bounds_wgs84"]
    assert 103 < w < e < 105 and 30 < s < n < 31  # central Chengdu
    sch = shared_client.get("/api/layers/buildings/schema").json()
    assert sch["id_field"] == "building_id"
    assert any(f["name"] == "height_m" and f["unit"] == "m" for f in sch["feature_class"]["fields"])


def test_features_filters_and_paging(shared_client, city_template):
    from cim.store import open_store

    with open_store(city_template["path"]) as st:
        base = st.read_layer("buildings")
    tall = int((base["height_m"] >= 30).sum())
    r = shared_client.get("/api/layers/buildings/features", params={"filter": "height_m>=30", "limit": 10000})
    assert r.status_code == 200
    fc = r.json()
    assert fc["numberReturned"] == tall and all(f["properties"]["height_m"] >= 30 for f in fc["features"])
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 103 < lon < 105 and 30 < lat < 31
    two = shared_client.get("/api/layers/buildings/features",
                            params=[("filter", "use=school,office"), ("filter", "height_m<100")]).json()
    assert {f["properties"]["use"] for f in two["features"]} <= {"school", "office"}
    assert two["numberReturned"] == int((base["use"].isin(["school", "office"]) & (base["height_m"] < 100)).sum())
    p1 = shared_client.get("/api/layers/buildings/features", params={"limit": 5, "offset": 0, "columns": "building_id"}).json()
    p2 = shared_client.get("/api/layers/buildings/features", params={"limit": 5, "offset": 5, "columns": "building_id"}).json()
    ids1 = [f["properties"]["building_id"] for f in p1["features"]]
    ids2 = [f["properties"]["building_id"] for f in p2["features"]]
    assert len(ids1) == len(ids2) == 5 and not set(ids1) & set(ids2) and p1["next_offset"] == 5
    assert set(p1["features"][0]["properties"]) == {"building_id"}


def test_features_bbox_in_both_crs(shared_client, city_template):
    from cim.store import open_store

    with open_store(city_template["path"]) as st:
        x0, y0, x1, y1 = st.layer_info("buildings")["bounds"]
        box = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)
        expect = len(st.read_layer("buildings", bbox=box))
    r = shared_client.get("/api/layers/buildings/features",
                          params={"bbox": ",".join(map(str, box)), "bbox_crs": "twin", "limit": 10000, "crs": "twin"})
    fc = r.json()
    assert fc["numberReturned"] == expect > 0
    assert x0 - 1 < fc["features"][0]["geometry"]["coordinates"][0][0][0][0] < x1 + 1


@pytest.mark.parametrize("url, status, words", [
    ("/api/layers/nope/features", 404, "no layer 'nope'"),
    ("/api/layers/buildings/features?bbox=1,2,3", 400, "4 numbers"),
    ("/api/layers/buildings/features?bbox=a,b,c,d", 400, "numbers"),
    ("/api/layers/buildings/features?bbox=5,5,1,1", 400, "xmin <= xmax"),
    ("/api/layers/buildings/features?bbox=400000,3000000,400100,3000100", 400, "longitude/latitude"),
    ("/api/layers/buildings/features?filter=height_m~3", 400, "field<op>value"),
    ("/api/layers/buildings/features?filter=colour=red", 400, "no field 'colour'"),
    ("/api/layers/buildings/features?filter=height_m>=tall", 400, "not a float64"),
    ("/api/layers/buildings/features?columns=nope", 400, "no field(s) ['nope']"),
    ("/api/layers/buildings/features?limit=0", 422, "limit"),
    ("/api/layers/buildings/features?scenario=nosuch", 404, "no scenario 'nosuch'"),
    ("/api/layers/buildings/features/NOPE", 404, "no feature"),
    ("/tiles/nope/15/0/0.pbf", 404, "no layer"),
    ("/tiles/buildings/3/8/1.pbf", 400, "does not exist"),
    ("/tiles/buildings/30/1/1.pbf", 422, "z"),
    ("/api/rasters/nope/meta", 404, "no raster 'nope'"),
    ("/api/rasters/dem/image.png?style=plaid", 400, "style must be one of"),
    ("/api/rasters/dem/value?lon=500&lat=30", 422, "lon"),
    ("/api/results/base/r1/nope/meta", 404, "no result 'nope'"),
    ("/api/results/base/r1/flood_depth/image.png?step=7", 400, "out of range"),
    ("/api/results/base/r1/flood_depth/trajectories", 400, "not a trajectory table"),
    ("/api/meshes/glb/secret.txt", 404, "no mesh"),
    ("/api/meshes/glb/bim/none/building.glb", 404, "no mesh"),
    ("/api/jobs/job-999", 404, "no job"),
    ("/api/bim/checks/zzz", 404, "no BIM check"),
    ("/api/layers/buildings/features?filter=year>=99999999999999999999999", 400, "64-bit range"),
    ("/api/layers/buildings/features?filter=height_m>=inf", 400, "not a float64"),
    ("/tiles/buildings.json?scenario=nosuch", 404, "no scenario 'nosuch'"),
    ("/api/scene?scenario=nosuch", 404, "no scenario 'nosuch'"),
    ("/api/rasters/dem/image.png?vmin=5&vmax=1", 400, "must be below vmax"),
])
def test_bad_requests_get_4xx_with_a_message(shared_client, url, status, words):
    r = shared_client.get(url)
    assert r.status_code == status, r.text
    body = r.json()
    assert words in body["detail"], body
    assert "Traceback" not in r.text


# ------------------------------------------------------------------ tiles
def test_tiles_carry_every_building_compactly(shared_client, city_template):
    """Every building reaches the tiles of one zoom level, with its id, height and use, in <= 60 bytes each."""
    from cim.store import open_store

    with open_store(city_template["path"]) as st:
        n_buildings = st.layer_info("buildings")["count"]
        ids = set(st.read_layer("buildings", columns=["building_id"])["building_id"])
    bounds = shared_client.get("/api/scene").json()["bounds"]
    seen, total = set(), 0
    for z, x, y in city_tiles(bounds, 15):
        r = shared_client.get(f"/tiles/buildings/{z}/{x}/{y}.pbf", headers={"accept-encoding": "identity"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        total += len(r.content)
        if r.content:
            layer = mapbox_vector_tile.decode(r.content)["buildings"]
            assert layer["extent"] == 4096
            for f in layer["features"]:
                # use may be missing (null): the imported BIM building has none
                assert {"building_id", "height_m"} <= set(f["properties"]) <= {"building_id", "height_m", "use"}
                seen.add(f["properties"]["building_id"])
    assert seen == ids
    assert total / n_buildings <= 60, f"{total / n_buildings:.1f} bytes per building"


def test_tile_geometry_matches_the_layer(shared_client, city_template):
    """A building's tile polygon lies where its footprint is (within one tile pixel)."""
    import shapely

    from viewer.geo import reproject_geoms

    from cim.store import open_store

    with open_store(city_template["path"]) as st:
        b = st.read_layer("buildings", where={"building_id": "B000010"})
    g = reproject_geoms(b.geometry.values, "EPSG:4544", "EPSG:3857")[0]
    c = g.centroid
    z = 17
    n = 2 ** z
    half = 20037508.342789244
    x = int((c.x + half) / (2 * half) * n)
    y = int((half - c.y) / (2 * half) * n)
    feats = mapbox_vector_tile.decode(shared_client.get(f"/tiles/buildings/{z}/{x}/{y}.pbf").content,
                                      default_options={"y_coord_down": True})["buildings"]["features"]
    mine = [f for f in feats if f["properties"]["building_id"] == "B000010"]
    assert len(mine) == 1
    xmin, ymin, xmax, ymax = tile_bounds_3857(z, x, y)
    px = (xmax - xmin) / 4096
    poly = shapely.geometry.shape(mine[0]["geometry"])
    back = shapely.transform(poly, lambda a: np.column_stack([xmin + a[:, 0] * px, ymax - a[:, 1] * px]))
    clipped = g.intersection(shapely.box(xmin, ymin, xmax, ymax))
    assert back.symmetric_difference(clipped).area < clipped.length * px * 1.5


def test_tilejson(shared_client):
    tj = shared_client.get("/tiles/buildings.json").json()
    assert tj["tiles"][0].startswith("/tiles/buildings/{z}/{x}/{y}.pbf")
    assert set(tj["vector_layers"][0]["fields"]) == {"building_id", "height_m", "use"}


# ------------------------------------------------------------------ rasters and results
def test_hillshade_png_and_point_value(shared_client, city_template):
    from PIL import Image

    from cim.store import open_store
    from pyproj import Transformer

    meta = shared_client.get("/api/rasters/dem/meta").json()
    assert meta["style"] == "hillshade"
    img = Image.open(io.BytesIO(shared_client.get(meta["image"]).content))
    assert img.mode == "RGBA" and min(img.size) > 50
    a = np.asarray(img)
    assert a[..., 3].mean() > 200 and a[..., 0].std() > 1  # opaque and shaded, not flat
    with open_store(city_template["path"]) as st:
        dem = st.read_raster("dem")
    r, c = 37, 120
    x, y = dem.xy(r, c)
    lon, lat = Transformer.from_crs("EPSG:4544", "EPSG:4326", always_xy=True).transform(float(x), float(y))
    v = shared_client.get("/api/rasters/dem/value", params={"lon": lon, "lat": lat}).json()
    assert (v["row"], v["col"]) == (r, c)
    assert v["value"] == pytest.approx(float(dem.data[r, c]), abs=1e-4)
    assert meta["min"] == pytest.approx(float(np.nanmin(dem.data)), abs=1e-3)


def test_flood_steps_change_the_bitmap_and_values(shared_client):
    cat = {(e["scenario"], e["name"]): e for e in shared_client.get("/api/results").json()}
    assert cat[("base", "flood_depth")]["steps"] == [0, 600, 1200]
    m = shared_client.get("/api/results/base/r1/flood_depth/meta").json()
    assert m["steps"] == 3 and m["style"] == "depth"
    imgs = [shared_client.get(f"/api/results/base/r1/flood_depth/image.png?step={k}").content for k in range(3)]
    assert len(set(imgs)) == 3
    lon = (m["bounds"][0] + m["bounds"][2]) / 2
    lat = (m["bounds"][1] + m["bounds"][3]) / 2
    got = [shared_client.get("/api/results/base/r1/flood_depth/value",
                             params={"lon": lon, "lat": lat, "step": k}).json() for k in range(3)]
    rows, cols = shared_client.get("/api/rasters").json()[0]["height"], shared_client.get("/api/rasters").json()[0]["width"]
    # the fixture's pond (conftest._add_results): depth = (radius - distance from the centre in cells) / 20
    for k, radius in enumerate((10.0, 50.0, 90.0)):
        dist = math.hypot(got[k]["row"] - rows / 2, got[k]["col"] - cols / 2)
        assert dist < 3  # the point asked for is near the centre
        assert got[k]["value"] == pytest.approx((radius - dist) / 20, abs=1e-5)


def test_trajectories_rows_and_link_layer(shared_client):
    tr = shared_client.get("/api/results/base/r2/vehicle_trips/trajectories").json()
    assert tr["count"] == 30
    trip = tr["trips"][0]
    assert len(trip["path"]) == len(trip["timestamps"]) >= 2
    assert trip["timestamps"] == sorted(trip["timestamps"])
    assert 103 < trip["path"][0][0] < 105
    rows = shared_client.get("/api/results/base/r2/vehicle_trips/rows?limit=3").json()
    assert rows["columns"] == ["vehicle_id", "t", "x", "y"] and len(rows["rows"]) == 3
    links = next(e for e in shared_client.get("/api/results").json() if e["name"] == "link_flows")
    tile_feats = 0
    bounds = shared_client.get("/api/scene").json()["bounds"]
    for z, x, y in city_tiles(bounds, 14):
        c = shared_client.get(f"/tiles/{links['ref']}/{z}/{x}/{y}.pbf").content
        if c:
            fs = mapbox_vector_tile.decode(c)[links["ref"]]["features"]
            assert all(0.0 < f["properties"]["vc"] <= 1.3 for f in fs)
            tile_feats += len(fs)
    assert tile_feats >= 60


def test_meshes_are_glb(shared_client):
    ms = shared_client.get("/api/meshes").json()
    whole = [m for m in ms if m["building_id"] == "BIM-TEST" and m["storey"] is None]
    assert len(whole) == 1 and whole[0]["ground_elev_m"] == pytest.approx(500.0, abs=1)
    assert 103 < whole[0]["origin"][0] < 105
    r = shared_client.get(whole[0]["url"])
    assert r.status_code == 200 and r.content[:4] == b"glTF"
    assert len([m for m in ms if m["storey"]]) == 3


def test_sensors_latest(shared_client):
    fc = shared_client.get("/api/sensors/latest").json()
    assert len(fc["features"]) > 0
    for f in fc["features"]:
        p = f["properties"]
        assert p["value"] is not None and p["status"] in ("ok", "warn", "alarm")
        assert p["simulated"] is True


def test_sensor_readings_table_wins_over_simulation(client, city):
    import pandas as pd

    from cim.store import open_store

    with open_store(city) as st:
        sid = st.read_layer("sensors")["sensor_id"].iloc[0]
        alarm = st.read_layer("sensors")["alarm_threshold"].iloc[0]
    # the app holds its own store; write through it
    state = client.app.state.twin_state
    state.store.write_table("sensor_readings", pd.DataFrame({
        "sensor_id": [sid, sid], "time": ["2026-07-01T08:00:00+08:00", "2026-07-01T08:05:00+08:00"],
        "value": [1.0, float(alarm) + 1.0]}))
    f = next(f for f in client.get("/api/sensors/latest").json()["features"] if f["properties"]["sensor_id"] == sid)
    assert f["properties"]["value"] == float(alarm) + 1.0 and f["properties"]["status"] == "alarm"
    assert f["properties"]["simulated"] is False


# ------------------------------------------------------------------ scenarios
def test_scenario_create_edit_diff_and_tiles(client):
    r = client.post("/api/scenarios", json={"name": "tower", "description": "a taller block"})
    assert r.status_code == 201
    assert client.post("/api/scenarios", json={"name": "tower"}).status_code == 409  # exists already
    assert client.post("/api/scenarios", json={"name": "bad name!"}).status_code == 422
    feat = client.get("/api/layers/buildings/features/B000010").json()
    old_h = feat["properties"]["height_m"]
    edit = {"op": "modify", "layer": "buildings", "features": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"building_id": "B000010", "height_m": 150.0}, "geometry": None}]}}
    r = client.post("/api/scenarios/tower/edits", json=edit)
    assert r.status_code == 201, r.text
    assert client.get("/api/layers/buildings/features/B000010?scenario=tower").json()["properties"]["height_m"] == 150.0
    assert client.get("/api/layers/buildings/features/B000010").json()["properties"]["height_m"] == old_h
    d = client.get("/api/scenarios/diff?a=base&b=tower").json()
    assert d["changes"] == [{"target": "buildings", "feature_id": "B000010", "change": "modified", "fields": "height_m"}]
    # the scenario's tiles carry the new height
    lon, lat = feat["geometry"]["coordinates"][0][0][0]
    x, y = lonlat_tile(lon, lat, 16)
    fs = mapbox_vector_tile.decode(client.get(f"/tiles/buildings/16/{x}/{y}.pbf?scenario=tower").content)["buildings"]["features"]
    assert [f["properties"]["height_m"] for f in fs if f["properties"]["building_id"] == "B000010"] == [150]
    sc = client.get("/api/scenarios/tower").json()
    assert len(sc["edits"]) == 1 and sc["edits"][0]["op"] == "modify"
    assert client.post("/api/scenarios/tower/edits", json={"op": "remove", "layer": "buildings"}).status_code == 400
    assert client.post("/api/scenarios/tower/edits", json={"op": "remove", "layer": "nope", "ids": ["x"]}).status_code == 404
    assert client.post("/api/scenarios/ghost/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1}).status_code == 404
    assert client.post("/api/scenarios/tower/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1.5}).status_code == 201
    assert client.get("/api/scenarios/tower").json()["params"] == {"traffic_demand_scale": 1.5}
    assert client.delete("/api/scenarios/tower").status_code == 200
    assert "tower" not in [s["name"] for s in client.get("/api/scenarios").json()]


def test_undo_takes_back_the_latest_edit_and_children_follow_their_parent(client):
    # a planner could not take back a wrong edit from the map; and a parent's edit left its children's
    # cached tiles as they were
    def tile_height(scenario):
        fs = mapbox_vector_tile.decode(client.get(f"/tiles/buildings/16/{x}/{y}.pbf?scenario={scenario}").content)
        return [f["properties"]["height_m"] for f in fs["buildings"]["features"] if f["properties"]["building_id"] == "B000010"]

    feat = client.get("/api/layers/buildings/features/B000010").json()
    old_h = feat["properties"]["height_m"]
    lon, lat = feat["geometry"]["coordinates"][0][0][0]
    x, y = lonlat_tile(lon, lat, 16)
    assert client.post("/api/scenarios", json={"name": "p"}).status_code == 201
    assert client.post("/api/scenarios", json={"name": "c", "parent": "p"}).status_code == 201
    r = client.delete("/api/scenarios/p/edits/last")
    assert r.status_code == 409 and "no edits" in r.json()["detail"]
    assert tile_height("c") == [round(old_h)]  # cached now
    edit = {"op": "modify", "layer": "buildings", "features": _fc(({"building_id": "B000010", "height_m": 150.0}, None))}
    r = client.post("/api/scenarios/p/edits", json=edit)
    assert r.status_code == 201 and r.json()["created"]
    assert tile_height("c") == [150]  # the child shows its parent's edit at once
    r = client.delete("/api/scenarios/c/edits/last")
    assert r.status_code == 409 and "parent" in r.json()["detail"]  # its parent's edits are undone on the parent
    assert client.post("/api/scenarios/p/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1}).status_code == 201
    r = client.delete("/api/scenarios/p/edits/last")
    assert r.status_code == 200, r.text
    assert r.json()["undone"]["op"] == "set_param" and r.json()["edits"] == 1
    assert client.get("/api/scenarios/p").json()["params"] == {}
    r = client.delete("/api/scenarios/p/edits/last")
    assert r.json()["undone"] == {"op": "modify", "targets": ["buildings"], "rows": 1, "created": r.json()["undone"]["created"]}
    assert tile_height("p") == [round(old_h)] and tile_height("c") == [round(old_h)]
    listed = {s["name"]: s for s in client.get("/api/scenarios").json()}
    assert listed["p"]["edits"] == 0 and listed["p"]["last_edited"]  # the undo is the scenario's latest change
    assert client.delete("/api/scenarios/nope/edits/last").status_code == 404
    assert client.delete("/api/scenarios/base/edits/last").status_code == 409  # the city itself is never edited


def _fc(*features):
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": g} for p, g in features]}


def test_scenario_edits_are_checked_and_pages_follow_them(client):
    # a value of the wrong type, a geometry of the wrong kind or not in lon/lat is refused (400) and
    # recorded nowhere; before, one bad value broke every later read of the layer in that scenario
    assert client.post("/api/scenarios", json={"name": "s"}).status_code == 201
    assert client.post("/api/scenarios", json={"name": "diff"}).status_code == 422  # the diff route's name
    feat = client.get("/api/layers/buildings/features/B000001").json()
    ring = feat["geometry"]["coordinates"][0]
    bad = [
        {"op": "modify", "layer": "buildings", "features": _fc(({"building_id": "B000001", "height_m": "very tall"}, None))},
        {"op": "add", "layer": "buildings", "features": _fc(({"building_id": "N1", "height_m": "tall"},
                                                             {"type": "Polygon", "coordinates": ring}))},
        {"op": "add", "layer": "buildings", "features": _fc(({"building_id": "N1"}, {"type": "Point", "coordinates": ring[0][0]}))},
        {"op": "add", "layer": "buildings", "features": _fc(({"building_id": "N1"}, {"type": "Polygon", "coordinates": [
            [[1e10, 1e10], [1e10 + 1, 1e10], [1e10, 1e10 + 1], [1e10, 1e10]]]}))},
    ]
    for edit in bad:
        r = client.post("/api/scenarios/s/edits", json=edit)
        assert r.status_code == 400, (edit, r.text)
    assert client.get("/api/scenarios/s").json()["edits"] == []
    r = client.post("/api/scenarios/s/edits", json={"op": "close_roads", "polygon": {"type": "Polygon", "coordinates": [[]]}})
    assert r.status_code == 400
    # an added feature appears once, on its page, and filters see the whole scenario layer
    n = next(x["count"] for x in client.get("/api/layers").json() if x["name"] == "buildings")
    add = {"op": "add", "layer": "buildings", "features": _fc(({"building_id": "ZZ_NEW", "height_m": 999.0, "use": "school"},
                                                               {"type": "Polygon", "coordinates": ring}))}
    assert client.post("/api/scenarios/s/edits", json=add).status_code == 201
    ids, offset = [], 0
    while offset is not None:
        page = client.get(f"/api/layers/buildings/features?scenario=s&limit=100&offset={offset}&columns=building_id").json()
        assert page["numberReturned"] <= 100
        ids += [f["properties"]["building_id"] for f in page["features"]]
        offset = page["next_offset"]
    assert len(ids) == n + 1 and len(set(ids)) == n + 1 and ids[-1] == "ZZ_NEW"
    tall = client.get("/api/layers/buildings/features?scenario=s&filter=height_m>=999&columns=building_id").json()
    assert [f["properties"]["building_id"] for f in tall["features"]] == ["ZZ_NEW"]
    schools = client.get("/api/layers/buildings/features?scenario=s&filter=use=school&limit=10000").json()
    base_schools = client.get("/api/layers/buildings/features?filter=use=school&limit=10000").json()
    assert schools["numberReturned"] == base_schools["numberReturned"] + 1
    # a whole-world lon/lat box is clipped to where the twin's CRS is defined: it holds the whole city
    world = client.get("/api/layers/buildings/features?bbox=-180,-90,180,90&limit=10000&columns=building_id").json()
    assert world["numberReturned"] == n
    assert client.get("/api/layers/buildings/features?bbox=-170,-80,-160,-70").json()["numberReturned"] == 0


def test_concurrent_edits_keep_order_and_never_outlive_their_scenario(client):
    from concurrent.futures import ThreadPoolExecutor

    assert client.post("/api/scenarios", json={"name": "busy"}).status_code == 201
    with ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(lambda i: client.post("/api/scenarios/busy/edits", json={
            "op": "set_param", "key": ("traffic_demand_scale", "traffic_closed_links")[i % 2],
            "value": (i / 4, "576684245")[i % 2]}).status_code, range(24)))
    assert codes == [201] * 24
    seqs = [e["seq"] for e in client.get("/api/scenarios/busy").json()["edits"]]
    assert len(seqs) == 24 and len(set(seqs)) == 24
    # a delete racing with edits: afterwards no edit of the old scenario survives into a new one of that name

    def edit(i):
        if i == 3:
            return client.delete("/api/scenarios/busy").status_code
        return client.post("/api/scenarios/busy/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": i}).status_code

    with ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(edit, range(8)))
    assert set(codes) <= {200, 201, 404}
    assert client.post("/api/scenarios", json={"name": "busy"}).status_code == 201
    assert client.get("/api/scenarios/busy").json()["edits"] == []


def test_job_params_cannot_set_the_run_or_scenario_and_are_checked_at_once(client):
    for params in ({"run": "flood-someone-elses"}, {"scenario": "levee"}, {"progress": None}):
        r = client.post("/api/jobs", json={"engine": "flood", "params": params})
        assert r.status_code == 400 and "set by the server" in r.json()["detail"], r.text
    for engine in ("flood", "traffic", "crowd"):
        r = client.post("/api/jobs", json={"engine": engine, "params": {"bogus": 1}})
        assert r.status_code == 400 and "no parameter(s) ['bogus']" in r.json()["detail"], r.text
    assert client.get("/api/jobs").json() == []  # nothing was queued


def test_scenario_raise_ground_changes_the_dem(client):
    meta = client.get("/api/rasters/dem/meta").json()
    w, s, e, n = meta["bounds"]
    cx, cy = (w + e) / 2, (s + n) / 2
    d = 0.001
    poly = {"type": "Polygon", "coordinates": [[[cx - d, cy - d], [cx + d, cy - d], [cx + d, cy + d], [cx - d, cy + d], [cx - d, cy - d]]]}
    client.post("/api/scenarios", json={"name": "levee2"})
    r = client.post("/api/scenarios/levee2/edits", json={"op": "raise_ground", "polygon": poly, "delta": 2.5})
    assert r.status_code == 201, r.text
    a = client.get("/api/rasters/dem/value", params={"lon": cx, "lat": cy}).json()["value"]
    b = client.get("/api/rasters/dem/value", params={"lon": cx, "lat": cy, "scenario": "levee2"}).json()["value"]
    assert b - a == pytest.approx(2.5, abs=1e-4)


# ------------------------------------------------------------------ jobs
def _dem_stats_engine(twin, *, scenario, run, params, progress):
    """A real (small) analysis job: mean and max ground slope of the scenario's DEM, saved as a result."""
    dem = twin.raster("dem", scenario=scenario)
    gy, gx = np.gradient(dem.masked(), dem.res[1], dem.res[0])
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    for k in range(4):
        progress(k, 4)
        time.sleep(0.05)
    out = {"mean_slope_deg": float(np.nanmean(slope)), "max_slope_deg": float(np.nanmax(slope))}
    twin.save_result(scenario, run, "dem_stats", out)
    if params.get("fail"):
        raise ValueError("asked to fail")
    progress(4, 4)
    return out


def test_job_runs_reports_progress_and_saves_results(client):
    state = client.app.state.twin_state
    state.jobs.register("dem_stats", _dem_stats_engine)
    assert "dem_stats" in client.get("/api/jobs/engines").json()
    r = client.post("/api/jobs", json={"engine": "dem_stats", "scenario": "base"})
    assert r.status_code == 202
    job = r.json()
    with client.stream("GET", job["events_url"]) as s:
        text = "".join(s.iter_text())
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1]["status"] == "done" and events[-1]["progress"] == 1.0
    assert "event: end" in text
    st = client.get(f"/api/jobs/{job['id']}").json()
    dem = state.twin.raster("dem")
    gy, gx = np.gradient(dem.masked(), dem.res[1], dem.res[0])
    assert st["summary"]["max_slope_deg"] == pytest.approx(float(np.degrees(np.arctan(np.nanmax(np.hypot(gx, gy))))))
    res = client.get("/api/results?scenario=base").json()
    assert any(e["run"] == job["run"] and e["name"] == "dem_stats" for e in res)


def test_job_failure_and_bad_engine(client):
    state = client.app.state.twin_state
    state.jobs.register("dem_stats", _dem_stats_engine)
    job = client.post("/api/jobs", json={"engine": "dem_stats", "params": {"fail": True}}).json()
    for _ in range(200):
        st = client.get(f"/api/jobs/{job['id']}").json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert st["status"] == "failed" and "asked to fail" in st["error"]
    r = client.post("/api/jobs", json={"engine": "warp_drive"})
    assert r.status_code == 400 and "warp_drive" in r.json()["detail"]
    r = client.post("/api/jobs", json={"engine": "dem_stats", "scenario": "ghost"})
    assert r.status_code == 400 and "no scenario 'ghost'" in r.json()["detail"]
    assert client.post("/api/jobs", json={"engine": "Bad Name"}).status_code == 422


# ------------------------------------------------------------------ BIM
def test_bim_check_flow(shared_client, ifc_path):
    with open(ifc_path, "rb") as fh:
        r = shared_client.post("/api/bim/checks", files={"ifc": ("box.ifc", fh, "application/octet-stream")},
                               data={"ruleset": "residential_r2"})
    assert r.status_code == 201, r.text
    rep = r.json()
    rules = {x["rule"]: x for x in rep["report"]["results"]}
    # the box: 3 storeys of 3.0 m plus a 0.3 m roof slab = 9.3 m (bim_import.samples.BoxBuilding.height_m)
    assert rules["max_height_m"]["measured"] == pytest.approx(9.3, abs=0.01) and rules["max_height_m"]["passed"]
    assert rep["building"]["footprint"]["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert shared_client.get(rep["glb_url"]).content[:4] == b"glTF"
    html = shared_client.get(rep["report_url"]).text
    assert "Compliance report" in html
    assert rep["id"] in [c["id"] for c in shared_client.get("/api/bim/checks").json()]


def test_bim_upload_validation(city, ifc_path):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, max_upload_mb=0.01)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        with open(ifc_path, "rb") as fh:
            big = c.post("/api/bim/checks", files={"ifc": ("box.ifc", fh.read() * 3, "application/octet-stream")})
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        bad = c.post("/api/bim/checks", files={"ifc": ("x.ifc", b"PK\x03\x04 not a step file", "application/zip")})
        assert bad.status_code == 400 and "ISO-10303-21" in bad.json()["detail"]
        nors = c.post("/api/bim/checks", files={"ifc": ("x.ifc", b"ISO-10303-21;\n", "text/plain")},
                      data={"ruleset": "nope"})
        assert nors.status_code == 400 and "no shipped rule set" in nors.json()["detail"]
        badyaml = c.post("/api/bim/checks", files={"ifc": ("x.ifc", b"ISO-10303-21;\n", "text/plain"),
                                                   "rules": ("r.yaml", b"rules: [unclosed", "text/yaml")})
        assert badyaml.status_code == 400 and "YAML" in badyaml.json()["detail"]
        broken = c.post("/api/bim/checks", files={"ifc": ("x.ifc", b"ISO-10303-21;\nHEADER;garbage", "text/plain")})
        assert 400 <= broken.status_code < 500, broken.text
        assert "Traceback" not in broken.text
        assert "twin-bim-" not in broken.text and "/tmp" not in broken.text  # names the upload, not the server's path
        for rules in (b"rules: 5", b"rules: [1, 2]", b"rules: abc", b"rules: {max_height_m: true}", b"crs: 5"):
            r = c.post("/api/bim/checks", files={"ifc": ("x.ifc", b"ISO-10303-21;\n", "text/plain"),
                                                 "rules": ("r.yaml", rules, "text/yaml")})
            assert r.status_code == 400, (rules, r.text)
            assert "must be" in r.json()["detail"], (rules, r.text)


# ------------------------------------------------------------------ access
def test_roles_and_tokens(city, ifc_path):
    from fastapi.testclient import TestClient

    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ("viewer", "planner", "regulator", "admin")}
        meta_values = json.dumps(st.get_meta())
    assert not any(t.split("_", 2)[2] in meta_values for t in tok.values())  # only hashes are stored

    def h(role):
        return {"Authorization": f"Bearer {tok[role]}"}

    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        r = c.get("/api/layers")
        assert r.status_code == 401 and "twin token create" in r.json()["detail"]
        assert c.get("/api/layers", headers={"Authorization": "Bearer rt_00000000_" + "x" * 40}).status_code == 401
        assert c.get("/api/layers", headers=h("viewer")).status_code == 200
        assert c.get("/api/whoami", headers=h("regulator")).json()["role"] == "regulator"
        r = c.post("/api/scenarios", json={"name": "s1"}, headers=h("viewer"))
        assert r.status_code == 403 and "planner" in r.json()["detail"]
        assert c.post("/api/scenarios", json={"name": "s1"}, headers=h("planner")).status_code == 201
        assert c.post("/api/scenarios", json={"name": "s2"}, headers=h("regulator")).status_code == 403
        assert c.post("/api/jobs", json={"engine": "x"}, headers=h("viewer")).status_code == 403
        with open(ifc_path, "rb") as fh:
            data = fh.read()
        assert c.post("/api/bim/checks", files={"ifc": ("b.ifc", data)}, headers=h("planner")).status_code == 403
        assert c.post("/api/bim/checks", files={"ifc": ("b.ifc", data)}, headers=h("regulator")).status_code == 201
        # EventSource cannot send headers: the token may come as a query parameter
        assert c.get(f"/api/layers?access_token={tok['viewer']}").status_code == 200
        assert c.get(f"/api/layers?access%5Ftoken={tok['viewer']}").status_code == 200  # keys are decoded
        # ... for reads only: a change must carry its token in the header (a URL ends up in logs and histories)
        r = c.post(f"/api/scenarios?access_token={tok['admin']}", json={"name": "s3"})
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"]
        assert c.get("/tiles/buildings/15/0/0.pbf").status_code == 401
        assert c.get("/").status_code == 200  # the page itself loads, then asks for a token


def test_non_loopback_needs_auth(city):
    from twin_core.errors import AuthError
    from viewer.app import create_app
    from viewer.server import check_bind
    from viewer.settings import Settings

    with pytest.raises(AuthError, match="auth off"):
        create_app(Settings(store=city, host="0.0.0.0", auth="off"))
    with pytest.raises(AuthError, match="no access token"):
        check_bind(Settings(store=city, host="0.0.0.0"))
    check_bind(Settings(store=city, host="127.0.0.1"))  # loopback is fine without tokens


def test_required_auth_without_tokens_refuses_everyone(city):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, auth="required")), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        assert c.get("/api/scene").status_code == 401


def test_openapi_lists_every_router(shared_client):
    paths = shared_client.get("/openapi.json").json()["paths"]
    for p in ("/api/layers", "/tiles/{layer}/{z}/{x}/{y}.pbf", "/api/rasters/{name}/image.png", "/api/meshes",
              "/api/scenarios", "/api/jobs", "/api/jobs/{job_id}/events", "/api/bim/checks", "/api/sensors/latest",
              "/api/results/{scenario}/{run}/{name}/trajectories"):
        assert p in paths, p


@pytest.mark.slow
def test_flood_job_through_the_real_adapter(client):
    """POST a flood run; its depth snapshots become a time series on the map with point values."""
    from pyproj import Transformer

    r = client.post("/api/jobs", json={"engine": "flood", "params": {"storm": "20y", "duration": "10min",
                                                                    "snapshot_interval": "2min"}})
    assert r.status_code == 202, r.text
    job = r.json()
    for _ in range(1200):
        st = client.get(f"/api/jobs/{job['id']}").json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert st["status"] == "done", st
    assert st["summary"]["max_depth_m"] > 0
    snap = next(e for e in client.get("/api/results?scenario=base").json()
                if e["run"] == job["run"] and e["name"] == "depth_snapshots")
    assert snap["kind"] == "array" and len(snap["steps"]) >= 2
    m = client.get(f"/api/results/base/{job['run']}/depth_snapshots/meta?step={len(snap['steps']) - 1}").json()
    assert m["steps"] == len(snap["steps"]) and m["style"] == "depth"
    # the value endpoint reads the same cell the engine wrote
    state = client.app.state.twin_state
    arr = state.twin.load_result("base", job["run"], "depth_snapshots")
    meta = snap["meta"]
    k = arr.shape[0] - 1
    r_, c_ = np.unravel_index(np.nanargmax(arr[k]), arr[k].shape)
    a, b, c0, d, e, f0 = meta["transform"][:6]
    x, y = c0 + (c_ + 0.5) * a, f0 + (r_ + 0.5) * e
    lon, lat = Transformer.from_crs(meta["crs"], "EPSG:4326", always_xy=True).transform(x, y)
    v = client.get(f"/api/results/base/{job['run']}/depth_snapshots/value", params={"lon": lon, "lat": lat, "step": k}).json()
    assert v["value"] == pytest.approx(float(arr[k][r_, c_]), rel=1e-6)
    png = client.get(f"/api/results/base/{job['run']}/depth_snapshots/image.png?step={k}")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


@pytest.mark.slow
def test_crowd_job_trajectories_for_the_map(client):
    """A crowd run on the plaza; its trajectories come back as one path per agent, in time order."""
    areas = client.get("/api/scene").json()["areas"]
    plaza = next(a for a in areas if a["kind"] == "plaza")
    job = client.post("/api/jobs", json={"engine": "crowd", "params": {"area": plaza["area_id"], "agents": 30,
                                                                      "until": 60}}).json()
    for _ in range(1200):
        st = client.get(f"/api/jobs/{job['id']}").json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert st["status"] == "done", st
    # the job's summary is the run's summary (it was the text "<bound method CrowdRun.summary ...>")
    assert st["summary"]["agents"] == 30 and st["summary"]["engine"] == "crowd", st["summary"]
    state = client.app.state.twin_state
    raw = state.twin.load_result("base", job["run"], "trajectories")
    tr = client.get(f"/api/results/base/{job['run']}/trajectories/trajectories").json()
    assert tr["count"] == raw["agent"].nunique() == 30
    one = tr["trips"][0]
    assert one["timestamps"] == sorted(one["timestamps"])
    assert len(one["path"]) == int((raw["agent"].astype(str) == one["id"]).sum())
    thin = client.get(f"/api/results/base/{job['run']}/trajectories/trajectories?max_points=100").json()
    # every k-th sample of each path (rounded up per path) plus each last one: at most max_points + 2 per path
    assert 2 * 30 <= sum(len(t["path"]) for t in thin["trips"]) <= 100 + 2 * 30


def test_crowd_job_cut_short_reports_its_summary(client):
    """A run stopped before everybody left has no evacuation time (NaN in Python): the job's summary must
    still be JSON (null), not a 500 on every poll of the job."""
    areas = client.get("/api/scene").json()["areas"]
    plaza = next(a for a in areas if a["kind"] == "plaza")
    job = client.post("/api/jobs", json={"engine": "crowd", "params": {"area": plaza["area_id"], "agents": 30,
                                                                      "until": 3}}).json()
    st = _wait_job(client, job)
    assert st["status"] == "done", st
    assert st["summary"]["evacuation_time_s"] is None and st["summary"]["evacuated"] < 30
    assert client.get("/api/jobs").status_code == 200
    # the page follows a job by its server-sent events and JSON.parse()s each one: a NaN there ("NaN" is no
    # JSON) was dropped, so the page showed the finished job as running for ever
    with client.stream("GET", job["events_url"]) as s:
        text = "".join(s.iter_text())

    def strict(c):
        raise ValueError(f"{c} is not JSON")

    events = [json.loads(line[6:], parse_constant=strict) for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1]["status"] == "done" and events[-1]["summary"]["evacuation_time_s"] is None


def _wait_job(client, job: dict) -> dict:
    for _ in range(3000):
        st = client.get(f"/api/jobs/{job['id']}").json()
        if st["status"] in ("done", "failed"):
            return st
        time.sleep(0.1)
    return st


def test_traffic_job_gives_trips_and_link_loads(client):
    """A mesoscopic traffic run: vehicle paths for the TripsLayer, v/c per link in the result layer's tiles."""
    job = client.post("/api/jobs", json={"engine": "traffic", "params": {"mode": "simulate", "until": 600}}).json()
    st = _wait_job(client, job)
    assert st["status"] == "done", st
    assert st["summary"]["engine"] == "traffic" and st["summary"]["sim_time_s"] == 600, st["summary"]
    state = client.app.state.twin_state
    raw = state.twin.load_result("base", job["run"], "trajectories")
    tr = client.get(f"/api/results/base/{job['run']}/trajectories/trajectories").json()
    assert tr["count"] == min(raw["vehicle_id"].nunique(), 5000) > 0
    loads = next(e for e in client.get("/api/results").json() if e["run"] == job["run"] and e["name"] == "link_loads")
    fields = client.get(f"/tiles/{loads['ref']}.json").json()["vector_layers"][0]["fields"]
    assert {"link_id", "vc", "volume"} <= set(fields)
    bad = client.post("/api/jobs", json={"engine": "traffic", "params": {"mode": "teleport"}})
    assert bad.status_code == 422 and "teleport" in bad.json()["detail"]  # refused before it is queued


def test_access_job_from_the_map(client):
    # the command centre asks which buildings an ambulance reaches within 10 minutes
    assert "access" in client.get("/api/jobs/engines").json()
    job = client.post("/api/jobs", json={"engine": "access", "params": {"from_kind": "hospital", "within": "10min"}})
    assert job.status_code == 202, job.text
    st = _wait_job(client, job.json())
    assert st["status"] == "done", st
    s = st["summary"]
    assert s["engine"] == "access" and s["buildings"] > 0 and 0 < s["within"] <= s["buildings"]
    rows = client.get(f"/api/results/base/{job.json()['run']}/access_buildings/rows?limit=5").json()
    assert {"building_id", "time_s", "within"} <= set(rows["columns"])
    fire = _wait_job(client, client.post("/api/jobs", json={"engine": "access", "params": {}}).json())
    assert fire["status"] == "done" and fire["summary"]["from_kind"] == "fire_station", fire  # by its standard
    assert fire["summary"]["within_s"] == 240.0
    bad = _wait_job(client, client.post("/api/jobs", json={"engine": "access", "params": {"from_kind": "police", "within": "8min"}}).json())
    assert bad["status"] == "failed" and "no 'police' in the pois layer" in bad["error"]


def test_flood_job_on_the_measured_rain(client):
    # the command centre runs a flood on what the rain gauges measured (the map's "measured rain" button)
    from datetime import datetime, timedelta, timezone

    # an hour of readings ending an hour ago, in Beijing time: the server checks readings on the real clock (at
    # most cim.sensors.MAX_AGE old), so fixed dates would be refused a year on
    cst = timezone(timedelta(hours=8))
    until = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0).astimezone(cst)
    r = client.post("/api/sensors/readings", json={"readings": [
        {"sensor_id": "RG01", "time": (until - timedelta(minutes=60 - m)).isoformat(), "value": 30.0}
        for m in range(0, 60, 5)]})
    assert r.status_code in (200, 201), r.text
    job = client.post("/api/jobs", json={"engine": "flood", "params": {
        "rain_from_sensors": "30min", "rain_until": until.isoformat(), "until": "40min"}}).json()
    st = _wait_job(client, job)
    assert st["status"] == "done", st
    storm = st["summary"]["storm"]
    assert storm["formula"].startswith("observed rain") and storm["total_mm"] == pytest.approx(15.0)
    assert storm["gauges"] == ["RG01"] and st["summary"]["sim_time_s"] == pytest.approx(2400.0)
    # a window the gauges did not cover fails with the reason, as the map shows it in the job's row
    gap = client.post("/api/jobs", json={"engine": "flood", "params": {
        "rain_from_sensors": "2h", "rain_until": until.isoformat()}}).json()
    st = _wait_job(client, gap)
    assert st["status"] == "failed" and "no rain gauge reported from" in st["error"], st


# ------------------------------------------------------------------ sensors, tiles (bug hunt)
def _sensor(client, sid):
    r = client.get("/api/sensors/latest")
    assert r.status_code == 200, r.text
    return next(f["properties"] for f in r.json()["features"] if f["properties"]["sensor_id"] == sid)


def test_sensor_latest_is_by_instant_and_bad_values_are_unknown(client):
    """The latest reading compares times as instants (not as strings), a table without times takes the last
    row (not the largest value), and a reading that is not a number is 'unknown', not a 400."""
    import pandas as pd

    state = client.app.state.twin_state
    sid = state.twin.layer("sensors")["sensor_id"].iloc[0]

    def put(df):
        state.store.write_table("sensor_readings", df)
        return _sensor(client, sid)

    # 01:30Z is later than 08:00+08:00 (= 00:00Z) though it sorts first as text
    p = put(pd.DataFrame({"sensor_id": [sid, sid], "time": ["2026-07-01T08:00:00+08:00", "2026-07-01T01:30:00Z"],
                          "value": [1.0, 2.0]}))
    assert (p["value"], p["time"]) == (2.0, "2026-07-01T01:30:00Z")
    p = put(pd.DataFrame({"sensor_id": [sid, sid], "value": [5.0, 1.0]}))  # no time column: the last row
    assert (p["value"], p["time"]) == (1.0, None)
    for bad in ("high", float("nan")):
        p = put(pd.DataFrame({"sensor_id": [sid, sid], "time": ["2026-07-01T08:00:00+08:00", "2026-07-01T08:05:00+08:00"],
                              "value": [1.0, bad]}))
        assert p["value"] is None and p["status"] == "unknown" and p["simulated"] is False, (bad, p)
    p = put(pd.DataFrame({"sensor_id": [sid], "time": pd.to_datetime(["2026-07-01T08:05:00+08:00"]), "value": [3.0]}))
    assert p["value"] == 3.0 and pd.Timestamp(p["time"]) == pd.Timestamp("2026-07-01T00:05:00Z") and "T" in p["time"]


@pytest.mark.parametrize("order", [("sensor_id", "time", "value"), ("time", "value", "sensor_id")])
def test_sensor_polls_read_only_the_new_readings(client, order):
    """Polling /api/sensors/latest on a big feed does not read the whole table again: only what was appended
    (whatever the order of the table's columns: with 'time' first, every poll read the whole table)."""
    import numpy as np
    import pandas as pd

    state = client.app.state.twin_state
    ids = state.twin.layer("sensors")["sensor_id"].to_numpy()
    n = 20_000
    rng = np.random.default_rng(1)
    t0 = pd.Timestamp("2026-07-01T00:00:00+08:00")
    state.store.write_table("sensor_readings", pd.DataFrame({
        "sensor_id": ids[rng.integers(0, len(ids), n)],
        "time": (t0 + pd.to_timedelta(rng.permutation(n), unit="s")).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "value": rng.random(n)})[list(order)])
    assert client.get("/api/sensors/latest").status_code == 200
    raw = state.store.raw
    rows_read = []
    real = raw.read_table

    def counting(*a, **kw):
        out = real(*a, **kw)
        rows_read.append(len(out))
        return out

    raw.read_table = counting
    try:
        state.store.write_table("sensor_readings", pd.DataFrame({
            "sensor_id": [ids[0]], "time": ["2026-08-01T00:00:00+08:00"], "value": [99.0]})[list(order)],
            mode="append")
        assert _sensor(client, ids[0])["value"] == 99.0
        assert client.get("/api/sensors/latest").status_code == 200
    finally:
        del raw.read_table
    assert max(rows_read) <= 10, rows_read


def test_tile_numbers_match_the_postgis_rounding(client):
    """Floats in GeoPackage tiles are rounded like ST_AsMVT's round(v::numeric, 1): 0.15 -> 0.2, not Python's 0.1."""
    state = client.app.state.twin_state
    links = state.twin.layer("road_links").head(8)[["link_id", "geometry"]].copy()
    links["vc"] = [0.05, 0.15, 0.25, 0.35, 0.45, 0.85, 0.95, -0.25]
    state.twin.save_result("base", "rnd", "link_flows", links)
    ref = next(e["ref"] for e in client.get("/api/results").json() if e["name"] == "link_flows" and e["run"] == "rnd")
    got = {}
    for z, x, y in city_tiles(client.get("/api/scene").json()["bounds"], 13):
        c = client.get(f"/tiles/{ref}/{z}/{x}/{y}.pbf").content
        if c:
            got.update({f["properties"]["link_id"]: f["properties"]["vc"] for f in mapbox_vector_tile.decode(c)[ref]["features"]})
    want = dict(zip(links["link_id"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 1.0, -0.3]))
    assert got == want


def test_loopback_server_answers_only_loopback_host_names(city):
    # without tokens everybody local is admin; a web page reaching the port through DNS rebinding
    # (Host: evil.example) could drive it
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        assert c.get("/api/layers").status_code == 200
        assert c.get("/api/layers", headers={"Host": "127.0.0.1:8765"}).status_code == 200
        assert c.get("/api/layers", headers={"Host": "localhost:8765"}).status_code == 200
        assert c.get("/api/layers", headers={"Host": "evil.example:8765"}).status_code == 400
        assert c.post("/api/scenarios", json={"name": "x"}, headers={"Host": "evil.example"}).status_code == 400
        # a single-label name (the test client's default) can be made to resolve to 127.0.0.1 on a local network
        assert c.get("/api/layers", headers={"Host": "testserver"}).status_code == 400


@pytest.mark.parametrize("host, header", [("127.0.0.2", "127.0.0.2:8765"), ("0:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]:8765")])
def test_loopback_server_answers_to_the_address_it_is_bound_to(city, host, header):
    # any 127.0.0.0/8 or ::1 address is loopback; bound to 127.0.0.2 the server refused every request to it
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, host=host, prewarm=False)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        assert c.get("/api/layers", headers={"Host": header}).status_code == 200
        assert c.get("/api/layers", headers={"Host": "evil.example:8765"}).status_code == 400


def test_query_tokens_are_hidden_in_the_access_log():
    import logging

    from viewer.app import _RedactTokens

    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:5000", "GET", "/api/results/x/y/z/image.png?step=2&access_token=rt_ab_secret",
                             "1.1", 200), None)
    assert _RedactTokens().filter(rec)
    assert "secret" not in rec.getMessage() and "access_token=***" in rec.getMessage() and "step=2" in rec.getMessage()


def test_percent_encoded_query_token_keys_are_hidden_too():
    # the server decodes query keys, so '?access%5Ftoken=' authenticates like '?access_token=' (see
    # test_roles_and_tokens); the log, which shows the raw query, showed its value
    import logging

    from viewer.app import _RedactTokens

    for key in ("access%5Ftoken", "access%5ftoken", "%61ccess_token"):
        rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                ("127.0.0.1:5000", "GET", f"/api/layers?x=1&{key}=rt_ab_secret&y=2", "1.1", 200), None)
        assert _RedactTokens().filter(rec)
        msg = rec.getMessage()
        assert "secret" not in msg and f"{key}=***" in msg and "x=1" in msg and "y=2" in msg, msg


def test_locked_store_evaluates_properties_under_its_lock():
    # Store.crs is a property that reads the meta table; read without the lock (the tile warm-up thread
    # asks twin.crs) it ran SQL on the shared connection while a request wrote: "database table is locked"
    import threading

    from viewer.state import LockedStore

    lock = threading.RLock()

    class Store:
        @property
        def crs(self):
            return lock._is_owned()

        def write(self):
            return lock._is_owned()

    st = LockedStore(Store(), lock)
    assert st.crs is True and st.write() is True
