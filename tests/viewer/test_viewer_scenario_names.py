"""A scenario named in Chinese through the map server: create, edit, read its layers, tiles, rasters and results,
delete, with the name percent-encoded in paths and query strings (as the page's encodeURIComponent sends it)."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import mapbox_vector_tile
import numpy as np
import pytest

NAME = "二环路封闭"
FLOOD = "暴雨50年"
NFC_CAFE, NFD_CAFE = "caf\u00e9_plan", "cafe\u0301_plan"


@pytest.fixture
def cn_client(city):
    """The city with a scenario '暴雨50年' holding a flood result, and a client over it."""
    from fastapi.testclient import TestClient

    from twin_core.twin import Twin
    from viewer.app import create_app
    from viewer.settings import Settings

    with Twin.open(city) as twin:
        twin.scenarios.create(FLOOD, "五十年一遇暴雨")
        depth = np.stack([np.full(twin.raster("dem").shape, v, dtype="float32") for v in (0.0, 0.5)])
        twin.save_result(FLOOD, "r1", "flood_depth", depth, meta={"times_s": [0, 600], "grid": "dem"})
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c


def lonlat_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _path_of(url: str) -> str:
    """A URL the server hands out: ASCII only (non-ASCII percent-encoded), relative to the server."""
    assert url.isascii(), url
    return url


def test_create_edit_read_and_delete_a_chinese_scenario(cn_client):
    c = cn_client
    q = quote(NAME)
    r = c.post("/api/scenarios", json={"name": NAME, "description": "二环路施工封闭"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == NAME
    assert NAME in [s["name"] for s in c.get("/api/scenarios").json()]
    # the path percent-encoded (as encodeURIComponent sends it) and as the raw characters
    got = c.get(f"/api/scenarios/{q}")
    assert got.status_code == 200, got.text
    assert got.json()["name"] == NAME and got.json()["description"] == "二环路施工封闭"
    assert c.get(f"/api/scenarios/{NAME}").json()["name"] == NAME

    feat = c.get("/api/layers/buildings/features/B000010").json()
    old_h = feat["properties"]["height_m"]
    edit = {"op": "modify", "layer": "buildings", "features": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"building_id": "B000010", "height_m": 150.0}, "geometry": None}]}}
    r = c.post(f"/api/scenarios/{q}/edits", json=edit)
    assert r.status_code == 201, r.text
    assert r.json()["scenario"] == NAME
    r = c.post(f"/api/scenarios/{q}/edits", json={"op": "set_param", "key": "traffic_closed_links", "value": "576684245"})
    assert r.status_code == 201, r.text
    assert c.get(f"/api/scenarios/{q}").json()["params"] == {"traffic_closed_links": "576684245"}

    # layers, scene, diff with the name in the query string
    f = c.get(f"/api/layers/buildings/features/B000010?scenario={q}").json()
    assert f["properties"]["height_m"] == 150.0
    f = c.get("/api/layers/buildings/features/B000010", params={"scenario": NAME}).json()
    assert f["properties"]["height_m"] == 150.0
    assert c.get("/api/layers/buildings/features/B000010").json()["properties"]["height_m"] == old_h
    fc = c.get(f"/api/layers/buildings/features?scenario={q}&filter=building_id=B000010").json()
    assert fc["features"][0]["properties"]["height_m"] == 150.0
    scene = c.get(f"/api/scene?scenario={q}").json()
    assert scene["scenario"] == NAME and NAME in scene["scenarios"]
    d = c.get(f"/api/scenarios/diff?a=base&b={q}").json()
    assert d["b"] == NAME and [x["feature_id"] for x in d["changes"] if x["target"] == "buildings"] == ["B000010"]

    # the TileJSON hands out tile URLs with the name encoded, and they serve the scenario's heights
    tj = c.get(f"/tiles/buildings.json?scenario={q}").json()
    url = _path_of(tj["tiles"][0])
    assert parse_qs(urlsplit(url).query)["scenario"] == [NAME]
    lon, lat = feat["geometry"]["coordinates"][0][0][0]
    x, y = lonlat_tile(lon, lat, 16)
    tile = c.get(url.replace("{z}", "16").replace("{x}", str(x)).replace("{y}", str(y)))
    assert tile.status_code == 200
    fs = mapbox_vector_tile.decode(tile.content)["buildings"]["features"]
    assert [f["properties"]["height_m"] for f in fs if f["properties"]["building_id"] == "B000010"] == [150]

    r = c.delete(f"/api/scenarios/{q}")
    assert r.status_code == 200 and r.json() == {"deleted": NAME}
    r = c.get(f"/api/scenarios/{q}")
    assert r.status_code == 404 and NAME in r.json()["detail"]
    assert c.get(f"/tiles/buildings.json?scenario={q}").status_code == 404


def test_raster_and_result_urls_of_a_chinese_scenario_are_encoded_and_work(cn_client):
    c = cn_client
    q = quote(FLOOD)
    m = c.get(f"/api/rasters/dem/meta?style=hillshade&scenario={q}")
    assert m.status_code == 200, m.text
    img = _path_of(m.json()["image"])
    assert parse_qs(urlsplit(img).query)["scenario"] == [FLOOD]
    r = c.get(img)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"

    cat = c.get(f"/api/results?scenario={q}").json()
    assert [(e["scenario"], e["run"], e["name"], e["steps"]) for e in cat] == [(FLOOD, "r1", "flood_depth", [0, 600])]
    meta = c.get(f"/api/results/{q}/r1/flood_depth/meta?step=1")
    assert meta.status_code == 200, meta.text
    img = _path_of(meta.json()["image"])
    assert urlsplit(img).path == f"/api/results/{q}/r1/flood_depth/image.png"
    r = c.get(img)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    w, s, e, n = meta.json()["bounds"]
    v = c.get(f"/api/results/{q}/r1/flood_depth/value", params={"lon": (w + e) / 2, "lat": (s + n) / 2, "step": 1})
    assert v.status_code == 200 and v.json()["value"] == pytest.approx(0.5)


def test_bad_and_reserved_names_are_refused_with_the_reason(cn_client):
    c = cn_client
    for name, words in [("二环路 封闭", "U+0020 SPACE"), ("a\u200db", "U+200D ZERO WIDTH JOINER"),
                        ("a\u202eb", "RIGHT-TO-LEFT OVERRIDE"), ("road:closed", "COLON"), ("v1.2", "FULL STOP"),
                        ("_x", "starts with '_'"), ("雨" * 64, "64 characters")]:
        r = c.post("/api/scenarios", json={"name": name})
        assert r.status_code == 422, (name, r.text)
        assert words in r.json()["detail"] and "letters and digits of any script" in r.json()["detail"], r.text
    for name in ("base", "BASE", "diff", "ba\u017fe", "di\ufb00"):
        r = c.post("/api/scenarios", json={"name": name})
        assert r.status_code == 422 and "reserved" in r.json()["detail"], (name, r.text)
    assert c.post("/api/scenarios", json={"name": FLOOD}).status_code == 409  # exists already
    names = [s["name"] for s in c.get("/api/scenarios").json()]
    assert names == ["levee", FLOOD] or sorted(names) == sorted(["levee", FLOOD])


def test_a_name_typed_two_ways_reaches_one_scenario(cn_client):
    c = cn_client
    r = c.post("/api/scenarios", json={"name": NFD_CAFE, "parent": FLOOD})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == NFC_CAFE and r.json()["parent"] == FLOOD
    assert c.post("/api/scenarios", json={"name": NFC_CAFE}).status_code == 409  # the same name
    qd = quote(NFD_CAFE)
    assert c.get(f"/api/scenarios/{qd}").json()["name"] == NFC_CAFE
    assert c.post(f"/api/scenarios/{qd}/edits", json={"op": "set_param", "key": "traffic_demand_scale", "value": 1}).status_code == 201
    assert c.get(f"/api/scenarios/{quote(NFC_CAFE)}").json()["params"] == {"traffic_demand_scale": 1}
    assert c.get(f"/tiles/buildings.json?scenario={qd}").status_code == 200
    assert c.get(f"/api/scene?scenario={qd}").json()["scenario"] == NFC_CAFE
    assert c.delete(f"/api/scenarios/{qd}").json() == {"deleted": NFC_CAFE}
    assert NFC_CAFE not in [s["name"] for s in c.get("/api/scenarios").json()]


def _mean_ground_engine(twin, *, scenario, run, params, progress):
    dem = twin.raster("dem", scenario=scenario)
    out = {"mean_ground_m": float(np.nanmean(dem.masked()))}
    twin.save_result(scenario, run, "dem_stats", out)
    return out


def test_a_job_on_a_scenario_typed_another_way_saves_its_results_under_the_stored_name(cn_client):
    c = cn_client
    c.app.state.twin_state.jobs.register("dem_stats", _mean_ground_engine)
    assert c.post("/api/scenarios", json={"name": NFC_CAFE}).status_code == 201
    r = c.post("/api/jobs", json={"engine": "dem_stats", "scenario": NFD_CAFE})  # the name typed another way
    assert r.status_code == 202, r.text
    job = r.json()
    for _ in range(400):
        job = c.get(f"/api/jobs/{job['id']}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert job["status"] == "done" and job["scenario"] == NFC_CAFE, job
    cat = c.get(f"/api/results?scenario={quote(NFC_CAFE)}").json()
    assert [(e["run"], e["name"]) for e in cat] == [(job["run"], "dem_stats")]
    r = c.post("/api/jobs", json={"engine": "dem_stats", "scenario": FLOOD})
    assert r.status_code == 202 and r.json()["scenario"] == FLOOD


def test_the_page_encodes_scenario_names_in_the_urls_it_builds():
    """app.js puts scenario names (and run and result names) into URLs only through encodeURIComponent."""
    js = (Path(__file__).resolve().parents[2] / "viewer" / "static" / "app.js").read_text(encoding="utf-8")
    raw = re.findall(r"\$\{[^}]*\.scenario\}|scenario=\$\{scenario\}|\+ *scenario\b", js)
    assert not raw, f"app.js builds URLs with unencoded scenario names: {raw}"
    raw_results = re.findall(r"/api/results/\$\{", js)
    assert not raw_results, "app.js builds /api/results/ URLs from unencoded scenario/run/name parts"
