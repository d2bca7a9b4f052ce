"""A regulator places a submitted model on the map: POST /api/bim/checks with site_lon/site_lat (and rotation_deg).

Real submissions often say nothing usable about where they stand (Revit's default site in Chicago, no
georeference at all); the check needs the parcel, so the map lets the user pick the site. Bad sites get a 400
that says what is wrong.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

DUPLEX = os.path.join(os.environ.get("TWIN_IFC_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                                   "shared", "data", "ifc")),
                      "Ifc2x3_Duplex_Architecture.ifc")
if not os.path.isfile(DUPLEX):
    DUPLEX = "/work/shared/data/ifc/Ifc2x3_Duplex_Architecture.ifc"


@pytest.fixture(scope="module")
def box_far_away(tmp_path_factory) -> bytes:
    """A 3-storey box whose own georeference puts it 80 km from the sample city (inside the CRS's area)."""
    from bim_import.samples import BoxBuilding, write_box_building

    p = write_box_building(BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0, name="far"),
                           tmp_path_factory.mktemp("site") / "far.ifc")
    with open(p, "rb") as fh:
        return fh.read()


def _centre(city: str) -> tuple[float, float, float]:
    """lon, lat and terrain height in the middle of the city's largest parcel."""
    from cim.store import open_store
    from viewer.geo import transformer

    s = open_store(city)
    try:
        parcels = s.read_layer("parcels")
        p = parcels.geometry[parcels.geometry.area.idxmax()].representative_point()
        x, y = p.x, p.y
        dem = s.read_raster("dem")
        c, r = ~dem.transform @ (x, y)
        z = float(dem.data[int(r), int(c)])
        lon, lat = transformer(s.crs, "EPSG:4326").transform(x, y)
        return lon, lat, z
    finally:
        s.close()


def _post(client, data: bytes, name="model", **form):
    return client.post("/api/bim/checks", files={"ifc": (f"{name}.ifc", data, "application/octet-stream")},
                       data={"ruleset": "residential_r2", **{k: str(v) for k, v in form.items()}})


def test_a_picked_site_places_the_model_there_on_the_ground(client, city, box_far_away):
    lon, lat, z = _centre(city)
    r = _post(client, box_far_away, site_lon=lon, site_lat=lat)
    assert r.status_code == 201, r.text
    b = r.json()["building"]
    # the box's origin is its south-west corner; the reported origin lies within the 20 m x 10 m box
    d_m = np.hypot((b["origin"][0] - lon) * 111_320 * np.cos(np.radians(lat)), (b["origin"][1] - lat) * 110_540)
    assert d_m < 25, (b["origin"], lon, lat)
    assert b["ground_elev_m"] == pytest.approx(z, abs=0.01)  # on the terrain, not at 0 m (the city is ~500 m up)
    # without the site the same model is checked where its file says: 80 km away, no parcel of this city
    far = _post(client, box_far_away)
    assert far.status_code == 400, far.text
    assert "(at 500010.0, 3390005.0 in EPSG:4544) stands on no parcel" in far.text
    assert "press 'Pick site' and click the parcel" in far.text
    assert r.json()["parcel_id"] != ""


def test_a_site_off_every_parcel_says_to_pick_one_inside(client, city, box_far_away):
    from cim.store import open_store
    from viewer.geo import transformer

    s = open_store(city)
    try:
        b, parcels = s.raster_info("dem")["bounds"], s.read_layer("parcels")
        crs = s.crs
    finally:
        s.close()
    import shapely

    # a point in a street: the box's middle (10 m east, 5 m north of its origin) on no parcel
    free = next((x, y) for x in np.linspace(b[0] + 50, b[2] - 50, 80) for y in np.linspace(b[1] + 50, b[3] - 50, 80)
                if not parcels.sindex.query(shapely.box(x + 9, y + 4, x + 11, y + 6), predicate="intersects").size)
    lon, lat = transformer(crs, "EPSG:4326").transform(*free)
    r = _post(client, box_far_away, site_lon=lon, site_lat=lat)
    assert r.status_code == 400
    assert "stands on no parcel" in r.text and "pick the site inside a parcel" in r.text, r.text
    assert ".gpkg" not in r.text and "/tmp" not in r.text  # the twin, not the server's file


def test_rotation_turns_the_footprint(client, city, box_far_away):
    import shapely

    lon, lat, _ = _centre(city)
    fp = []
    for rot in (0, 90):
        r = _post(client, box_far_away, site_lon=lon, site_lat=lat, rotation_deg=rot)
        assert r.status_code == 201, r.text
        g = shapely.geometry.shape(r.json()["building"]["footprint"]["features"][0]["geometry"])
        x0, y0, x1, y1 = g.bounds
        fp.append(((x1 - x0) * 111_320 * np.cos(np.radians(lat)), (y1 - y0) * 110_540))
    (w0, h0), (w90, h90) = fp
    assert w0 == pytest.approx(20, abs=0.5) and h0 == pytest.approx(10, abs=0.5)   # 20 m east-west
    assert w90 == pytest.approx(10, abs=0.5) and h90 == pytest.approx(20, abs=0.5)  # turned a quarter


def test_a_model_placed_in_another_continent_says_how_to_place_it(client):
    if not os.path.isfile(DUPLEX):
        pytest.skip("no Ifc2x3_Duplex_Architecture.ifc in ../shared/data/ifc")
    with open(DUPLEX, "rb") as fh:
        data = fh.read()
    r = _post(client, data, name="duplex")
    assert r.status_code == 400
    msg = r.json()["detail"]
    assert "lon -87.6" in msg and "Pick site" in msg and "site_lon" in msg, msg
    assert ".gpkg" not in msg and "/tmp" not in msg
    assert r.json()["error"] == "GeoreferenceError"


@pytest.mark.parametrize("form, words", [
    ({"site_lon": 104.05}, "both site_lon and site_lat"),
    ({"site_lat": 30.6}, "both site_lon and site_lat"),
    ({"site_lon": "nan", "site_lat": 30.6}, "finite"),
    ({"site_lon": 104.05, "site_lat": "inf"}, "finite"),
    ({"site_lon": 200, "site_lat": 30.6}, "longitude -180..180"),
    ({"site_lon": 116.4, "site_lat": 39.9}, "outside the twin's terrain"),  # Beijing
    ({"site_lon": 104.05, "site_lat": 30.6, "rotation_deg": 1000}, "rotation_deg"),
    ({"site_lon": "east", "site_lat": 30.6}, "site_lon"),
])
def test_bad_sites_are_refused_with_the_reason(client, box_far_away, form, words):
    r = _post(client, box_far_away, **form)
    assert r.status_code in (400, 422), r.text
    assert "/tmp" not in r.text and ".gpkg" not in r.text  # no server paths
    assert words in r.text, r.text
    assert client.get("/api/bim/checks").json() == []  # nothing recorded
