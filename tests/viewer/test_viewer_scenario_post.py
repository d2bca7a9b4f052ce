"""POST /api/scenarios for a name that exists: a short message a map user can act on (no Python advice)."""

from __future__ import annotations


def test_posting_an_existing_name_says_so_in_the_map_users_words(client):
    c = client
    assert c.post("/api/scenarios", json={"name": "levee_2m", "description": "a 2 m levee"}).status_code == 201
    assert c.post("/api/scenarios/levee_2m/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 2}).status_code == 201
    assert c.post("/api/scenarios/levee_2m/edits", json={"op": "set_param", "key": "traffic_closed_links", "value": ["576684245"]}).status_code == 201
    r = c.post("/api/scenarios", json={"name": "levee_2m", "description": "another"})
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == ("a scenario 'levee_2m' exists already (2 edits); pick another name or "
                                  "delete it first")
    # nothing changed
    rows = {s["name"]: s for s in c.get("/api/scenarios").json()}
    assert rows["levee_2m"]["description"] == "a 2 m levee" and rows["levee_2m"]["edits"] == 2


def test_an_existing_name_without_edits_and_in_another_spelling(client):
    c = client
    assert c.post("/api/scenarios", json={"name": "caf\u00e9_plan"}).status_code == 201
    r = c.post("/api/scenarios", json={"name": "cafe\u0301_plan"})  # the same name in NFD
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert detail == "a scenario 'caf\u00e9_plan' exists already (0 edits); pick another name or delete it first"
    assert "exist_ok" not in detail and "Python" not in detail


def _fc(*features):
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": p, "geometry": g} for p, g in features]}


def test_a_shape_drawn_outside_the_crs_area_is_refused_in_the_map_users_words(client):
    """The core's message tells Python to call gdf.to_crs; the map's edit form gets where the shape lies and
    to draw inside the city (the drawing was in lon/lat: reprojecting is the map's work, not the user's)."""
    c = client
    assert c.post("/api/scenarios", json={"name": "far_shelter"}).status_code == 201
    far = {"op": "add", "layer": "pois",
           "features": _fc(({"poi_id": "P_FAR", "kind": "shelter"}, {"type": "Point", "coordinates": [80.0, 30.0]}))}
    r = c.post("/api/scenarios/far_shelter/edits", json=far)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    from cim.crs import area_text, resolve_crs

    assert detail.startswith("the drawn shape for 'pois' ('P_FAR') lies at lon/lat (80, 30, 80, 30), outside the "
                             "area this twin's map covers (its CRS CGCS2000 / 3-degree Gauss-Kruger CM 105E is for "
                             f"{area_text(resolve_crs('EPSG:4544'))})"), detail
    assert detail.endswith("; draw inside the city. Nothing was recorded"), detail
    assert "to_crs" not in detail and "gdf" not in detail and "reproject" not in detail
    assert c.get("/api/scenarios/far_shelter").json()["edits"] == []
    # a feature moved there by a modify is refused alike, and several are counted
    two = {"op": "modify", "layer": "pois", "features": _fc(
        *[({"poi_id": pid}, {"type": "Point", "coordinates": [80.0 + k, 30.0]}) for k, pid in
          enumerate(c.get("/api/layers/pois/features?limit=2&columns=poi_id").json()["features"][i]["properties"]
                    ["poi_id"] for i in range(2))])}
    r = c.post("/api/scenarios/far_shelter/edits", json=two)
    assert r.status_code == 400, r.text
    # where they were drawn, in the degrees drawn (the projected box taken back to lon/lat said (80, 29.81, ...))
    assert r.json()["detail"].startswith("the drawn 2 shapes for 'pois' (") and " lie at lon/lat (80, 30, 81, 30)," \
        in r.json()["detail"], r.json()["detail"]
    assert c.get("/api/scenarios/far_shelter").json()["edits"] == []


def test_one_closure_of_several_links_is_one_edit_in_every_answer(client):
    """The map counts edits as the planner made them and the undo takes them back: closing the roads of an area
    is one edit however many links it closes (the list said one row a link: "5 edits" for one closure)."""
    c = client
    assert c.post("/api/scenarios", json={"name": "closure"}).status_code == 201
    feats = c.get("/api/layers/road_links/features?limit=5").json()["features"]
    pts = [p for f in feats for p in f["geometry"]["coordinates"]]
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    w, s, e, n = min(lons) - 1e-4, min(lats) - 1e-4, max(lons) + 1e-4, max(lats) + 1e-4
    poly = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    r = c.post("/api/scenarios/closure/edits", json={"op": "close_roads", "polygon": poly})
    assert r.status_code == 201, r.text
    closed = r.json()["result"]
    assert len(closed) >= 2 and r.json()["edits"] == 1
    r = c.post("/api/scenarios/closure/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1})
    assert r.json()["edits"] == 2
    row = {x["name"]: x for x in c.get("/api/scenarios").json()}["closure"]
    assert (row["edits"], row["rows"]) == (2, len(closed) + 1)
    assert len(c.get("/api/scenarios/closure").json()["edits"]) == len(closed) + 1  # the log's rows, as before
    assert c.delete("/api/scenarios/closure/edits/last").json()["edits"] == 1
    r = c.post("/api/scenarios", json={"name": "closure"})
    assert r.json()["detail"].startswith("a scenario 'closure' exists already (1 edit);")
    u = c.delete("/api/scenarios/closure/edits/last").json()
    assert u["undone"]["rows"] == len(closed) and u["edits"] == 0
